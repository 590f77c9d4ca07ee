"""The same batch with 1 and 2 local workers, side by side, with the machine's core count.

Writes N synthetic pairs (LOM-like source, CBS target) once, then runs the batch, each run
in a fresh process (interpreter, torch and JVM start included), as

    1 worker                in this process (``--workers 1``)
    2 workers               a local dask cluster, torch/BLAS threads = cores // 2 per worker (``--workers 2``)
    2 workers, all threads  the same, but every worker with as many torch threads as there are
                            cores (what the process pool of ``--workers 2`` did before)

and prints, per run: wall time, CPU time of the whole process tree (user + sys), and the
median style and registration seconds per pair from the pairs' metrics.json. Defaults are
the README's command (the shipped style model, bUnwarpJ with the pipeline's parameters).

    python benchmarks/bench_dask.py [--pairs 4] [--size 384] [--backend bunwarpj|native] [--style model|none] [--repeat 1]

``--worker-cpu`` instead measures the CPU time of one native registration (256x256, the
pipeline's parameters, one torch thread) in this process and inside a one-worker local dask
cluster: with dask's defaults, without ``MALLOC_TRIM_THRESHOLD_``, without dask's profiler,
and without both, alternating, ``--repeat`` times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "1 worker": (1, False),
    "2 workers": (2, False),
    "2 workers, all threads": (2, True),
}


def _child(args: argparse.Namespace) -> None:
    """One batch run (in its own process, so that start-up costs count)."""
    from styleunwarp.pipeline import executors
    from styleunwarp.pipeline.batch import run_batch

    if args.all_threads:  # each worker as many torch threads as cores: the old process pool's behaviour
        import styleunwarp.pipeline.executors.dask as dask_executor

        dask_executor.threads_per_worker = lambda workers, cores=None: executors.available_cores()
    summary = run_batch(args.data, args.out, workers=args.workers, backend=args.backend, style=args.style, progress=False)
    if summary.done != args.pairs:
        raise SystemExit(f"only {summary.done} of {args.pairs} pairs done: {summary.line()}")


def _one_registration(_: object = None) -> tuple[float, float, float]:
    """Wall, process CPU and this thread's CPU seconds of one native registration (after a warm-up one)."""
    import torch

    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.synth import make_pair

    torch.set_num_threads(1)
    p = make_pair((256, 256), seed=5)
    register(p.cbs, p.cbs_like_lom, PIPELINE_DEFAULTS, backend="native")
    t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
    register(p.cbs, p.cbs_like_lom, PIPELINE_DEFAULTS, backend="native")
    return time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - h0


MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"  # dask's nanny sets 65536
PROFILER = "distributed.worker.profile.enabled"  # samples the task's stack every 10 ms


def _worker_cpu(repeat: int) -> None:
    import logging

    import dask
    from distributed import Client, LocalCluster

    settings = {
        "in this process": None,
        "dask worker, dask's defaults": {},
        "dask worker, no MALLOC_TRIM": {MALLOC_TRIM: None},
        "dask worker, no profiler": {PROFILER: False},
        "dask worker, neither": {MALLOC_TRIM: None, PROFILER: False},
    }
    times: dict[str, list[tuple[float, float, float]]] = {k: [] for k in settings}
    for _ in range(repeat):
        for name, env in settings.items():
            if env is None:
                times[name].append(_one_registration())
                continue
            with dask.config.set(env), LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
                times[name].append(client.submit(_one_registration, 0, pure=False).result())
    print(f"one native registration 256x256, 1 torch thread; medians of {repeat}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'where':<34} {'wall s':>7} {'process CPU s':>14} {'task thread CPU s':>18}")
    for name, runs in times.items():
        med = [statistics.median(r[i] for r in runs) for i in range(3)]
        print(f"{name:<34} {med[0]:7.2f} {med[1]:14.2f} {med[2]:18.2f}")


def _per_pair(out: Path) -> tuple[float, float]:
    secs = [json.loads(p.read_text())["seconds"] for p in out.glob("*/metrics.json")]
    return statistics.median(s["style"] for s in secs), statistics.median(s["registration"] for s in secs)


def _run(data: Path, out: Path, workers: int, all_threads: bool, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--data", str(data), "--out", str(out), "--workers", str(workers),
           "--pairs", str(args.pairs), "--backend", args.backend, "--style", args.style] + (["--all-threads"] if all_threads else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"batch failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr}")
    style_s, reg_s = _per_pair(out)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "style": style_s, "registration": reg_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--backend", default="bunwarpj", choices=["bunwarpj", "native", "elastix"])
    ap.add_argument("--style", default="model", choices=["model", "none"])
    ap.add_argument("--repeat", type=int, default=1, help="runs of each configuration (interleaved)")
    ap.add_argument("--work", default=None, help="folder for the data and outputs (default: a temporary one)")
    ap.add_argument("--worker-cpu", action="store_true", help="CPU time of one registration in and outside dask workers")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--all-threads", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    if args.worker_cpu:
        _worker_cpu(args.repeat)
        return

    from styleunwarp.io import write_tiff
    from styleunwarp.pipeline.executors import available_cores
    from styleunwarp.synth import make_pair

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_dask_"))
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in range(args.pairs):
        p = make_pair((args.size, args.size), seed=300 + i)
        write_tiff(data / f"b{i}_LOM.tif", p.lom)
        write_tiff(data / f"b{i}_CBS.tif", p.cbs)

    cores = available_cores()
    print(f"{args.pairs} pairs of {args.size}x{args.size}, --backend {args.backend} --style {args.style}; "
          f"{cores} cores (os.cpu_count {os.cpu_count()}), load average before {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for r in range(args.repeat):
        for name, (workers, all_threads) in CONFIGS.items():
            out = work / f"out-{name.replace(' ', '').replace(',', '-')}-{r}"
            results[name].append(_run(data, out, workers, all_threads, args))
    print(f"{'configuration':<24} {'wall s':>8} {'CPU s':>8} {'style s/pair':>13} {'registration s/pair':>20}")
    for name, runs in results.items():
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        print(f"{name:<24} {med['wall']:8.1f} {med['cpu']:8.1f} {med['style']:13.2f} {med['registration']:20.2f}")
    print(f"load average after {os.getloadavg()[0]:.1f}; medians of {args.repeat} run(s) each; data and outputs in {work}")


if __name__ == "__main__":
    main()
