"""Benchmark of the style network: inference time and memory, training throughput, usefulness.

    python benchmarks/bench_style.py [--model DIR] [--syn DATA] [--cbs DATA] [--skip-usefulness]

* inference: seconds per 512² image (median of repeats, after one warm-up) and peak memory
  (tracemalloc for Python/numpy allocations, ``ru_maxrss`` for the whole process);
* training: pairs/s (crops of the default size per second) for the shipped architecture;
* usefulness: TRE of bUnwarpJ registrations of the raw LOM and of the styled LOM to the CBS on
  held-out test pairs (``styleunwarp synth OUT --n 0 --n-test 10`` synthetic and
  ``--from-cbs`` real-CBS-based pairs), tiered good/decent/bad/poor as in DESIGN.md.

Timings on a shared machine are inflated by concurrent load: the script prints the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def bench_inference(model, repeats: int = 3) -> dict:
    from styleunwarp.synth import make_pair

    img = make_pair((512, 512), seed=424242, deform=False).lom
    model(img)  # warm-up
    times = []
    tracemalloc.start()
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(img)
        times.append(time.perf_counter() - t0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    big = make_pair((1024, 1536), seed=424243, deform=False).lom
    t0 = time.perf_counter()
    model(big)
    t_big = time.perf_counter() - t0
    return {"s_per_512": float(np.median(times)), "s_1024x1536_tiled": t_big,
            "tracemalloc_peak_mb": peak / 2**20,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bench_inference_table(model, repeats: int = 5) -> list[dict]:
    """CPU and wall seconds per 512² image (median of ``repeats``) for fp32 / bf16 and 1 / 2 threads
    (one view), then for 1, 4 and 8 dihedral views (``StyleTransfer(views=...)``, auto precision, one thread)."""
    from styleunwarp.style import StyleTransfer
    from styleunwarp.synth import make_pair

    img = make_pair((512, 512), seed=424242, deform=False).lom
    rows = []
    settings = [(p, t, 1) for p in ("fp32", "bf16", "auto") for t in (1, 2)] + [("auto", 1, v) for v in (1, 4, 8)]
    for precision, threads, views in settings:
        m = StyleTransfer(model.generator, model.card, precision=precision, threads=threads, views=views)
        m(img)  # warm-up (fused copy, oneDNN primitives)
        cpu, wall = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            m(img)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        rows.append({"precision": precision, "uses_bf16": m.uses_bf16, "threads": threads, "views": views,
                     "cpu_s": float(np.median(cpu)), "wall_s": float(np.median(wall))})
    return rows


def bench_training(arch, crop: int = 192, batch: int = 4, steps: int = 5) -> dict:
    import torch
    import torch.nn.functional as F

    from styleunwarp.style.networks import UNetGenerator, init_weights

    torch.manual_seed(0)
    g = UNetGenerator(arch)
    init_weights(g)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    x = torch.randn(batch, arch.in_channels, crop, crop)
    y = torch.randn(batch, 1, crop, crop)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = F.l1_loss(g(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    s = float(np.median(times))
    return {"crop": crop, "batch": batch, "s_per_step": s, "crops_per_s": batch / s,
            "pair_equiv_per_s": batch * crop ** 2 / 512 ** 2 / s}


def ensure_data(path: Path, args: list[str]) -> Path:
    if not (path / "test" / "lom").is_dir():
        subprocess.run([sys.executable, "-m", "styleunwarp", "synth", str(path), "--no-progress", *args], check=True)
    return path


def usefulness(model_path: str | None, data: Path, out: Path, params) -> list[dict]:
    """Raw vs styled LOM through the pipeline itself (styleunwarp.evaluation), as in docs/study-table.md."""
    from styleunwarp.evaluation import RAW, evaluate_test_set, styled

    return evaluate_test_set(data / "test", [RAW, styled(model_path)], out, params=params)


def print_table(title: str, rows: list[dict]) -> None:
    from styleunwarp.evaluation import format_summary, summarize

    print(f"\n{title}")
    for r in rows:
        if r["tier"] == "failed":
            print(f"  {r['pair']:<22}{r['variant']:<12} FAILED {r.get('error', '')[:80]}")
        else:
            print(f"  {r['pair']:<22}{r['variant']:<12}{r['tre_mean_px']:>9.2f}{r['tre_p95_px']:>8.2f} {r['tier']}")
    print(format_summary(summarize(rows)))
    sel = [r for r in rows if r["variant"] == "styled LOM"]
    good = sum(r["tier"] == "good" for r in sel)
    worst_ok = all(r["tier"] in ("good", "decent") for r in sel)
    print(f"  bar (>= 9/10 good, none below decent): {'MET' if good >= 0.9 * len(sel) and worst_ok else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    ap.add_argument("--syn", default=None, help="synthetic test data (default: generated, seed 1)")
    ap.add_argument("--cbs", default=None, help="real-CBS-based test data (default: generated, seed 2)")
    ap.add_argument("--cbs-source", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--skip-usefulness", action="store_true")
    ap.add_argument("--inference-only", action="store_true",
                    help="only the inference table: CPU and wall s per 512² for fp32/bf16/auto x 1/2 threads, and 1/4/8 views")
    ap.add_argument("--mode", default="accurate", help="bUnwarpJ mode for the usefulness table (mono, fast, accurate)")
    ap.add_argument("--max-scale", type=int, default=2, help="bUnwarpJ final deformation scale (2 Fine, 3 Very Fine)")
    ap.add_argument("--json", default=None, help="also write all results to this JSON file")
    args = ap.parse_args()

    import torch

    from styleunwarp.style import StyleTransfer

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (timings inflated by concurrent load)")
    model = StyleTransfer.load(args.model) if args.model else StyleTransfer.load_default()
    print(f"model: {model} (target kind {model.target_kind!r})")
    out: dict = {"model": str(model.source), "card_validation": model.card.get("validation")}
    if args.inference_only:
        print(f"{'precision':>9} {'bf16':>5} {'threads':>7} {'views':>5} {'CPU s':>6} {'wall s':>6}")
        for r in bench_inference_table(model):
            print(f"{r['precision']:>9} {str(r['uses_bf16']):>5} {r['threads']:>7} {r['views']:>5} {r['cpu_s']:>6.3f} {r['wall_s']:>6.3f}", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        return
    inf = bench_inference(model)
    out["inference"] = inf
    print(f"inference: {inf['s_per_512']:.3f} s per 512² image, {inf['s_1024x1536_tiled']:.2f} s for 1024x1536 "
          f"(tiled); peak tracemalloc {inf['tracemalloc_peak_mb']:.1f} MB, ru_maxrss {inf['ru_maxrss_mb']:.0f} MB")
    tr = bench_training(model.arch)
    out["training"] = tr
    print(f"training: {tr['s_per_step']:.2f} s/step of {tr['batch']}x{tr['crop']}² crops = {tr['crops_per_s']:.2f} crops/s "
          f"= {tr['pair_equiv_per_s']:.2f} 512²-pair equivalents/s")
    if not args.skip_usefulness:
        from styleunwarp.registration import PIPELINE_DEFAULTS

        params = PIPELINE_DEFAULTS.with_(mode=args.mode, max_scale_deformation=args.max_scale)
        print(f"usefulness: bUnwarpJ {params} (the pipeline: coarse-to-fine for boundary-map models)")
        tmp = Path(tempfile.gettempdir())
        syn = ensure_data(Path(args.syn) if args.syn else tmp / "styleunwarp_bench_syn", ["--n", "0", "--n-test", "10", "--seed", "1"])
        cbs = ensure_data(Path(args.cbs) if args.cbs else tmp / "styleunwarp_bench_cbs",
                          ["--n", "0", "--n-test", "10", "--seed", "2", "--from-cbs", args.cbs_source])
        for title, data in (("synthetic test pairs (seed 1)", syn), ("LOM-like renderings of real CBS (openecci)", cbs)):
            rows = usefulness(args.model, data, tmp / "styleunwarp_bench_results" / data.name, params)
            out[title] = rows
            print_table(title, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
