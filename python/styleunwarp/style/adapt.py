"""Test-time adaptation: a style model fine-tuned on the one pair it is registering.

A translation model (``edges`` or ``cbs``) meets LOM looks it was not trained on; where it
misses boundaries or draws them beside the CBS's, the elastic step follows its map. Once the
chain has registered the pair, the LOM warped by that result and the target's representation
form an aligned pair of exactly this look, up to the result's error. :func:`adapt_to_pair`
fine-tunes a copy of the model on it for a few steps (masked L1 plus the gradients' L1, the
training loss of :mod:`.train`), so the model learns how this LOM draws its structure; the chain
can then register again with the adapted map. No hand-aligned pair is used.

The model cannot learn the result's error where it varies over the image (a translation-
equivariant network maps like to like everywhere), which is what makes the pair usable
despite it; a constant error, however, it can learn, so the caller must verify what the
adapted map's registration gives (``benchmarks/bench_adapt.py``, docs/style.md). The pipeline's use
of it is :mod:`styleunwarp.pipeline.adapt` (``register --adapt-steps N``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..threads import torch_threads
from ..transform import warp_image
from .data import normalize_input
from .train import gradient_loss

ADAPT_STEPS = 150
"""Fine-tuning steps per pair (batches of :data:`ADAPT_BATCH` crops of :data:`ADAPT_CROP` px). Measured for
the shipped model (335 k parameters) on an idle 2-core machine: 0.18 s per step on 2 threads, 0.26-0.30 s on
one, so about 27 s for 150 steps; 400 steps measured no better on the steel tuning set (docs/style.md)."""
ADAPT_LR = 2e-4
ADAPT_CROP = 192
ADAPT_BATCH = 4
ADAPT_MIN_VALID = 0.9
"""A crop is used only where at least this fraction of it lies inside the warped source."""


def _crops(x: np.ndarray, y: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int, crop: int,
           min_valid: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` random crops (same place, 90-degree rotation and flip) of source, target and mask."""
    h, w = valid.shape
    xs, ys, ms = [], [], []
    for _ in range(200 * batch):
        if len(xs) == batch:
            break
        i, j = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        m = valid[i:i + crop, j:j + crop]
        if m.mean() < min_valid:
            continue
        k, flip = int(rng.integers(4)), bool(rng.integers(2))

        def aug(v: np.ndarray) -> np.ndarray:
            v = np.rot90(v, k, axes=(-2, -1))
            return np.ascontiguousarray(v[..., ::-1] if flip else v)

        xs.append(aug(x[:, i:i + crop, j:j + crop]))
        ys.append(aug(y[None, i:i + crop, j:j + crop]))
        ms.append(aug(m[None].astype(np.float32)))
    if len(xs) < batch:
        raise ValueError(f"too little of the warped source lies on the target grid to adapt on ({crop} px crops "
                         f"at least {min_valid:.0%} inside)")
    return tuple(torch.from_numpy(np.stack(v)) for v in (xs, ys, ms))  # type: ignore[return-value]


def adapt_to_pair(model, source: np.ndarray, target_map: np.ndarray, direct, *, steps: int = ADAPT_STEPS,
                  lr: float = ADAPT_LR, crop: int = ADAPT_CROP, batch: int = ADAPT_BATCH, seed: int = 0,
                  edge_weight: float | None = None, threads: int | None = 2):
    """A copy of ``model`` fine-tuned on ``source`` as ``direct`` registers it to ``target_map``.

    Parameters
    ----------
    model
        A :class:`~styleunwarp.style.StyleTransfer` (left unchanged).
    source
        The source image as the model takes it (grey or RGB, any dtype), on the grid ``direct`` maps from.
    target_map
        What the model should render on the target grid, 0..255 (``model.prepare_target(cbs)``).
    direct
        Direct transform (target pixel -> source pixel): an elastic transform or a dense map.
    steps, lr, crop, batch, seed
        Adam steps (beta1 0.5), learning rate, crop side and crops per step, random seed.
    edge_weight
        Weight of the gradients' L1 (default: the model's training ``edge_weight``, else 1).
    threads
        CPU threads torch uses meanwhile (restored afterwards); None keeps torch's setting.

    Returns
    -------
    (StyleTransfer, dict)
        The adapted model (batch-norm statistics frozen at the model's) and facts:
        ``steps``, ``loss_first``, ``loss_last`` (mean of the last 10 steps), ``valid_fraction``.
    """
    from .infer import StyleTransfer

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    target_map = np.asarray(target_map, np.float32)
    if edge_weight is None:
        edge_weight = float((model.card.get("training") or {}).get("edge_weight", 1.0))
    gen = copy.deepcopy(model.generator).to("cpu")
    x = normalize_input(source, gen.arch.in_channels)
    xw = np.stack([warp_image(c, direct, target_map.shape) for c in x]).astype(np.float32)
    valid = warp_image(np.ones(x.shape[1:], np.float32), direct, target_map.shape) > 0.999
    y = target_map / 127.5 - 1.0
    crop = min(crop, *target_map.shape) // gen.arch.multiple * gen.arch.multiple
    rng = np.random.default_rng([seed, 11])
    gen.train()
    for m in gen.modules():  # one pair's crops are too few to re-estimate normalisation statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    losses: list[float] = []
    with torch_threads(threads):
        torch.manual_seed(seed)
        for _ in range(int(steps)):
            xb, yb, mb = _crops(xw, y, valid, rng, batch, crop, ADAPT_MIN_VALID)
            pred = gen(xb)
            loss = ((pred - yb).abs() * mb).sum() / mb.sum() + edge_weight * gradient_loss(pred * mb, yb * mb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    gen.eval()
    card = copy.deepcopy(model.card)
    card["adapted"] = {"steps": int(steps), "lr": lr, "crop": crop, "batch": batch, "seed": seed,
                       "note": "fine-tuned at test time on one pair as registered (styleunwarp.style.adapt)"}
    facts = {"steps": int(steps), "loss_first": losses[0], "loss_last": float(np.mean(losses[-10:])),
             "valid_fraction": float(valid.mean())}
    return StyleTransfer(gen, card, tile=model.tile, overlap=model.overlap, device="cpu", precision=model.precision,
                         threads=model.threads, views=model.views), facts


__all__ = ["ADAPT_BATCH", "ADAPT_CROP", "ADAPT_LR", "ADAPT_STEPS", "adapt_to_pair"]
