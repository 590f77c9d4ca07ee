"""Pairs per second on a GPU: style inference and batched native registration at 512².

One command, for a machine with CUDA (falls back to the CPU with ``--device cpu`` to check
that it runs):

    PYTHONPATH=python python benchmarks/bench_gpu.py [--size 512] [--batch 16] [--device cuda]

* style: the shipped model on ``--batch`` LOM images (one after the other and as one batch
  tensor), images per second;
* registration: :func:`styleunwarp.registration.native.register_batch` on ``--batch``
  perfect-style synthetic pairs (same size), pipeline defaults (accurate mode, LM, float32 on
  CUDA), pairs per second and mean TRE.

Target of issue 14: ≥ 100 pairs/s at 512².
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--mode", default="accurate")
    a = ap.parse_args()
    dev = torch.device(a.device)
    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.registration.native import register_batch
    from styleunwarp.style.data import normalize_input
    from styleunwarp.style.infer import StyleTransfer
    from styleunwarp.synth import make_pair
    from styleunwarp.transform import displacement_error

    pairs = [make_pair((a.size, a.size), seed=12000 + i) for i in range(a.batch)]
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}), torch {torch.__version__}, "
          f"{a.batch} pairs of {a.size}²")

    st = StyleTransfer.load_default(device=dev)
    st(pairs[0].lom)  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    for p in pairs:
        st(p.lom)
    _sync(dev)
    one_by_one = a.batch / (time.perf_counter() - t0)
    x = torch.from_numpy(np.stack([normalize_input(p.lom, 1) for p in pairs])).to(dev)
    net = st._network()
    with torch.inference_mode():
        net(x[:1].contiguous(memory_format=torch.channels_last))
        _sync(dev)
        t0 = time.perf_counter()
        net(x.contiguous(memory_format=torch.channels_last))
        _sync(dev)
    batched = a.batch / (time.perf_counter() - t0)
    print(f"style: {one_by_one:.1f} images/s one by one (with numpy I/O), {batched:.1f} images/s as one batch")

    params = PIPELINE_DEFAULTS.with_(mode=a.mode)
    tg = [p.cbs.astype(np.float64) for p in pairs]
    sr = [p.cbs_like_lom.astype(np.float64) for p in pairs]
    register_batch(tg[:2], sr[:2], params, device=dev)  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    rs = register_batch(tg, sr, params, device=dev)
    _sync(dev)
    sec = time.perf_counter() - t0
    tre = [float(displacement_error(r.direct, p.truth, (a.size, a.size)).mean()) for r, p in zip(rs, pairs)]
    print(f"registration ({a.mode}): {a.batch / sec:.1f} pairs/s ({sec:.2f} s for the batch), mean TRE {np.mean(tre):.3f} px, "
          f"failed {sum(r.info['failed'] for r in rs)}")


if __name__ == "__main__":
    main()
