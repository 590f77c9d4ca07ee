"""Training on aligned LOM/CBS pairs: pix2pix (``gan``) or a plain U-Net (``unet``).

Losses (docs/style.md):

* ``gan``: pix2pix with the least-squares GAN loss (LSGAN, more stable than BCE on tiny
  data sets): generator ``MSE(D(x, G(x)), 1) + l1_weight * |G(x) - y|`` (``l1_weight`` 100),
  discriminator ``0.5 * (MSE(D(x, y), 1) + MSE(D(x, G(x)), 0))``; plus ``edge_weight`` times
  the L1 of the finite-difference gradients if ``edge_weight > 0``.
* ``unet``: ``|G(x) - y| + edge_weight * |∇G(x) - ∇y|`` (no discriminator).
* ``loss="l2"`` (both modes): squared differences instead of absolute ones in the pixel and
  gradient terms. An L1 model predicts the conditional median of the target given the source, an
  L2 model its conditional mean; on a sparse target (fluorescence patches, thin boundaries) the
  median is empty wherever the structure is less than even odds, the mean shows it faintly. The
  model kept is then the epoch with the lowest validation mean squared error (``val_mse``).
* both: plus ``align_weight`` times :func:`styleunwarp.style.alignment.alignment_loss` if
  ``align_weight > 0``: the robust squared length (px^2) of the Gauss-Newton translation step of
  each 128 px window at four pyramid levels of ``G(x)`` onto ``y``, i.e. how far a registration driven by the squared
  difference would move the aligned crop. A model trained with it is scored for keeping by that
  length on the validation pairs (``val_align_px``), not by L1.

Every step draws its crops from ``numpy.random.default_rng([seed, epoch, step])`` and there
is no other randomness after initialisation, so a run resumed from ``checkpoint_latest.pt``
reproduces the uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .alignment import alignment_loss, mean_shift_px
from .data import EDGE_DENOISE, EDGE_SIGMA, TARGETS, LoadedPair, find_pairs, load_pair, sample_batch, to_output_range
from .networks import Architecture, PatchDiscriminator, UNetGenerator, count_parameters, init_weights

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint_latest.pt"
KEPT_BY = {"l1": "l1", "l2": "mse"}
"""Pixel losses of ``TrainConfig.loss`` (absolute differences: the conditional median; squared: the
conditional mean), each with the validation metric that chooses the model kept."""
LOSSES = tuple(KEPT_BY)
HISTORY = "history.json"


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and the card)."""

    mode: str = "unet"
    target: str = "edges"
    epochs: int = 40
    max_minutes: float | None = None
    seed: int = 0
    crop: int = 256
    batch_size: int = 4
    val_fraction: float = 0.1
    steps_per_epoch: int | None = None  # default: about one crop per crop-sized area per image
    lr: float | None = None  # default: 1e-3 for ``unet``, 2e-4 (pix2pix) for ``gan``
    beta1: float = 0.5
    l1_weight: float = 100.0
    edge_weight: float = 1.0
    align_weight: float = 0.0
    loss: str = "l1"  # "l1" (conditional median) or "l2" (conditional mean): the pixel and gradient terms
    disc_base: int = 32
    appearance: float = 0.0  # probability of a random look for a training crop's source (style.appearance)
    arch: Architecture = field(default_factory=Architecture)

    def __post_init__(self) -> None:
        if self.mode not in ("gan", "unet"):
            raise ValueError(f"mode must be 'gan' or 'unet', got {self.mode!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.crop % self.arch.multiple:
            raise ValueError(f"crop {self.crop} must be a multiple of 2**depth = {self.arch.multiple}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch size must be >= 1")
        if self.lr is None:
            self.lr = 1e-3 if self.mode == "unet" else 2e-4
        if not 0.0 <= self.appearance <= 1.0:
            raise ValueError(f"appearance must be a probability in [0, 1], got {self.appearance}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.align_weight < 0:
            raise ValueError(f"align weight must be >= 0, got {self.align_weight}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val fraction must be in [0, 1), got {self.val_fraction}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = self.arch.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d.setdefault("align_weight", 0.0)  # checkpoints written before the option existed
        d.setdefault("loss", "l1")
        d["arch"] = Architecture.from_dict(d["arch"])
        return cls(**d)


def target_card(kind: str) -> dict:
    """The card's ``target`` section: what the model renders and how to prepare the CBS."""
    if kind == "edges":
        return {"kind": "edges", "sigma": EDGE_SIGMA, "denoise": EDGE_DENOISE,
                "description": "Gaussian gradient magnitude (sigma px) of the percentile-stretched CBS (after total "
                               "variation denoising of weight denoise x the CBS's noise sd when denoise > 0), stretched to 0..255; "
                               "register model(LOM) to StyleTransfer.prepare_target(CBS)"}
    return {"kind": "cbs", "description": "the percentile-stretched CBS image (CBS-like rendering)"}


def pixel_loss(a: torch.Tensor, b: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute (``"l1"``) or squared (``"l2"``) difference of two images."""
    return F.l1_loss(a, b) if kind == "l1" else F.mse_loss(a, b)


def gradient_loss(a: torch.Tensor, b: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute (``"l1"``, default) or squared (``"l2"``) difference of the two images'
    finite-difference gradients (x and y summed)."""
    dxa, dxb = a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1]
    dya, dyb = a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :]
    return pixel_loss(dxa, dxb, kind) + pixel_loss(dya, dyb, kind)


def validate(gen: UNetGenerator, pairs: list[LoadedPair], device: torch.device) -> dict:
    """Mean L1 and mean squared error (0..255 units), SSIM, PSNR (data range 255) and local shift
    (``align_px``) on whole images."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from .infer import StyleTransfer

    if not pairs:
        return {}
    st = StyleTransfer(gen, tile=512, overlap=64, device=device, views=1)  # a training monitor: one pass each
    l1, mse, ssim, psnr, shift = [], [], [], [], []
    for p in pairs:
        pred = to_output_range(st._run(p.x))
        true = to_output_range(np.clip(p.y[0], -1, 1))
        l1.append(float(np.abs(pred - true).mean()))
        mse.append(float(np.square(pred - true).mean()))
        ssim.append(float(structural_similarity(true, pred, data_range=255.0)))
        psnr.append(float(peak_signal_noise_ratio(true, pred, data_range=255.0)))
        shift.append(mean_shift_px(torch.from_numpy(pred)[None, None], torch.from_numpy(true)[None, None]))
    gen.train()
    return {"l1": float(np.mean(l1)), "mse": float(np.mean(mse)), "ssim": float(np.mean(ssim)), "psnr": float(np.mean(psnr)),
            "align_px": float(np.mean(shift))}


def _save_checkpoint(out: Path, state: dict) -> None:
    from ..io import atomic_path

    with atomic_path(out / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise InputError(path, f"cannot read the training checkpoint ({type(exc).__name__}: {exc})") from exc


def _steps_within(deadline: float, step_time: float, left_in_epoch: int, steps_per_epoch: int, done: int, total: int) -> int:
    """Steps a run with a time limit will reach: ``done`` plus what fits before ``deadline``.

    Keeps the progress bar honest (its total and ETA) when the time limit, not the epoch
    count, ends training. Each epoch end costs about two steps' time (validation and
    checkpoint), as the stopping rule assumes.
    """
    if step_time <= 0:
        return total
    more = int(max(0.0, deadline - time.monotonic() - 2 * step_time) / step_time)
    if more > left_in_epoch:
        more -= 2 * (1 + (more - left_in_epoch) // steps_per_epoch)
        more = max(left_in_epoch, more)
    return int(min(total, done + more))


def _start_from(gen: UNetGenerator, init: str | PathLike[str], cfg: TrainConfig) -> dict:
    """Load ``init``'s generator weights into ``gen`` (fine-tuning); returns what was loaded, for the card."""
    from .weights import load_model

    source, card, path = load_model(init)
    if source.arch != cfg.arch:
        raise InputError(path, f"its architecture {source.arch.as_dict()} is not this training's {cfg.arch.as_dict()}")
    kind = (card.get("target") or {}).get("kind", "cbs")
    if kind != cfg.target:
        raise InputError(path, f"it was trained for target {kind!r}, this training is for {cfg.target!r}")
    gen.load_state_dict(source.state_dict())
    return {"model": str(path), "weights_sha256": card.get("weights_sha256")}


def train(
    pairs: str | PathLike[str],
    out: str | PathLike[str],
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    init: str | PathLike[str] | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    data_description: str | None = None,
) -> dict:
    """Train a generator on aligned pairs and write a model folder.

    Parameters
    ----------
    pairs
        ``PAIRS/{lom,cbs}/NAME.tif`` or a CSV manifest with ``lom,cbs`` columns.
    out
        Model folder: ``model.safetensors`` + ``model.json`` (the best epoch by validation
        L1, by validation ``align_px`` when ``align_weight > 0``, or by training loss without a
        validation split), ``checkpoint_latest.pt`` (full
        state for ``resume``), ``history.json``.
    config
        Hyper-parameters; with ``resume`` the checkpoint's config is used (``epochs`` and
        ``max_minutes`` may be changed).
    resume
        Continue from ``out/checkpoint_latest.pt`` if it exists.
    init
        Start the generator from this model's weights (a model folder or ``.safetensors``;
        fine-tuning) instead of random ones. Its architecture and target must be the
        config's. Ignored where ``resume`` finds a checkpoint. Validation and the best epoch
        start afresh, on this data.

    Returns
    -------
    dict
        ``{"epochs_done" (complete epochs), "partial_steps" (steps of an unfinished epoch), "steps_done", "stopped" ("done" | "time"), "best", "history",
        "model"}``.
    """
    from ..io import atomic_write_text
    from .infer import deterministic
    from .weights import new_card, save_model

    t_start = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config or TrainConfig()
    ckpt_path = out / CHECKPOINT
    ckpt = None
    if resume and ckpt_path.is_file():
        ckpt = _load_checkpoint(ckpt_path)
        try:
            old = TrainConfig.from_dict(json.loads(ckpt["config"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(ckpt_path, f"checkpoint has no valid config ({exc})") from exc
        old.epochs, old.max_minutes = cfg.epochs, cfg.max_minutes
        cfg = old
    dev = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))

    files, problems = find_pairs(pairs)
    loaded = []
    for pf in files:  # a pair that cannot be used is reported with its file and skipped; the others train
        try:
            loaded.append(load_pair(pf, cfg.arch.in_channels, cfg.target))
        except InputError as exc:
            log.warning("%s; skipped", exc)
            problems.append(f"{exc}; skipped")
    if not loaded:
        raise InputError(pairs, "no usable aligned pair: " + "; ".join(problems[-3:]))
    order = np.random.default_rng([cfg.seed, 7]).permutation(len(loaded))
    n_val = int(round(cfg.val_fraction * len(loaded))) if len(loaded) >= 2 else 0
    n_val = min(max(n_val, 1 if cfg.val_fraction > 0 and len(loaded) >= 2 else 0), len(loaded) - 1)
    val = [loaded[i] for i in order[:n_val]]
    trn = [loaded[i] for i in order[n_val:]]
    if cfg.steps_per_epoch:
        spe = int(cfg.steps_per_epoch)
    else:
        area = sum(p.x.shape[1] * p.x.shape[2] for p in trn)
        spe = max(1, math.ceil(area / cfg.crop ** 2 / cfg.batch_size))

    torch.manual_seed(cfg.seed)
    gen = UNetGenerator(cfg.arch)
    init_weights(gen)
    disc = PatchDiscriminator(cfg.arch.in_channels + 1, cfg.disc_base) if cfg.mode == "gan" else None
    if disc is not None:
        init_weights(disc)
    gen.to(dev).train()
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = None
    if disc is not None:
        disc.to(dev).train()
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))

    epoch, step, history, best = 0, 0, [], None
    init_record = None
    if init is not None and ckpt is None:
        init_record = _start_from(gen, init, cfg)
    if ckpt is not None:
        try:
            gen.load_state_dict(ckpt["generator"])
            opt_g.load_state_dict(ckpt["opt_g"])
            if disc is not None:
                disc.load_state_dict(ckpt["discriminator"])
                opt_d.load_state_dict(ckpt["opt_d"])
            epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
            history = json.loads(ckpt["history"])
            best = json.loads(ckpt["best"])
            init_record = json.loads(ckpt.get("init", "null"))  # a resumed fine-tune keeps its lineage
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise InputError(ckpt_path, f"checkpoint does not fit this model ({exc})") from exc
        log.info("resuming at epoch %d step %d", epoch, step)

    desc = data_description or (f"{len(loaded)} aligned pairs from {Path(pairs).resolve()} "
                                f"({len(trn)} train, {len(val)} validation)")
    card_extra = {
        "target": target_card(cfg.target),
        "training": {**cfg.as_dict(), "device": str(dev), "generator_parameters": count_parameters(gen),
                     "loss": ("LSGAN + l1_weight*" if cfg.mode == "gan" else "") + cfg.loss.upper()
                     + (f" + edge_weight*{cfg.loss.upper()}(gradients)" if cfg.edge_weight > 0 else "")
                     + (" + align_weight*alignment_loss (px^2)" if cfg.align_weight > 0 else ""),
                     **({"init": init_record} if init_record else {})},
        "training_data": {"description": desc, "pairs": len(loaded), "train": [p.name for p in trn],
                          "validation": [p.name for p in val], "skipped": problems},
    }

    def snapshot(ep: int, st: int) -> dict:
        s = {"generator": gen.state_dict(), "opt_g": opt_g.state_dict(), "epoch": ep, "step": st,
             "config": json.dumps(cfg.as_dict()), "history": json.dumps(history), "best": json.dumps(best),
             "init": json.dumps(init_record)}
        if disc is not None:
            s["discriminator"] = disc.state_dict()
            s["opt_d"] = opt_d.state_dict()
        return s

    def finish_epoch(ep: int, st: int, losses: list[float], complete: bool) -> None:
        nonlocal best
        metrics = validate(gen, val, dev)
        row = {"epoch": ep + 1, "steps": st, "complete": complete,
               "train_loss": float(np.mean(losses)) if losses else None, **{f"val_{k}": v for k, v in metrics.items()},
               "minutes": round((time.monotonic() - t_start) / 60, 3)}
        history.append(row)
        score = metrics.get("align_px" if cfg.align_weight > 0 else KEPT_BY[cfg.loss], row["train_loss"])
        if score is not None and (best is None or score < best["score"]):
            best = {"score": score, **row}
            card = new_card(cfg.arch, **card_extra, validation={**metrics, "epoch": ep + 1, "steps": st,
                                                                "n_pairs": len(val)},
                            history=history)
            save_model(out, gen, card)
        nxt = (ep + 1, 0) if complete else (ep, st)
        _save_checkpoint(out, snapshot(*nxt))
        atomic_write_text(out / HISTORY, json.dumps({"history": history, "best": best}, indent=2) + "\n")
        log.info("epoch %d: %s", ep + 1, row)

    total = cfg.epochs * spe
    done = epoch * spe + step
    stopped = "done"
    deadline = None if cfg.max_minutes is None else t_start + 60.0 * cfg.max_minutes
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=min(done, total), disable=not progress, unit="step",
               desc=f"train {cfg.mode}" + ("" if deadline is None else f" (max {cfg.max_minutes:g} min)"),
               dynamic_ncols=True)
    step_time = None
    with deterministic():
        while epoch < cfg.epochs:
            losses: list[float] = []
            while step < spe:
                # leave room for validation + checkpoint (about two steps' time)
                if deadline is not None and step_time is not None and time.monotonic() + 3 * step_time > deadline:
                    stopped = "time"
                    break
                t0 = time.monotonic()
                rng = np.random.default_rng([cfg.seed, epoch, step])
                xb, yb = sample_batch(trn, rng, cfg.batch_size, cfg.crop, cfg.appearance)
                x = torch.from_numpy(xb).to(dev)
                y = torch.from_numpy(yb).to(dev)
                fake = gen(x)
                if disc is not None:
                    opt_d.zero_grad(set_to_none=True)
                    d_real = disc(x, y)
                    d_fake = disc(x, fake.detach())
                    loss_d = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real))
                                    + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
                    loss_d.backward()
                    opt_d.step()
                    d_out = disc(x, fake)
                    loss = F.mse_loss(d_out, torch.ones_like(d_out)) + cfg.l1_weight * pixel_loss(fake, y, cfg.loss)
                    if cfg.edge_weight > 0:
                        loss = loss + cfg.edge_weight * cfg.l1_weight * gradient_loss(fake, y, cfg.loss)
                else:
                    loss = pixel_loss(fake, y, cfg.loss)
                    if cfg.edge_weight > 0:
                        loss = loss + cfg.edge_weight * gradient_loss(fake, y, cfg.loss)
                if cfg.align_weight > 0:
                    loss = loss + cfg.align_weight * alignment_loss(fake, y)
                opt_g.zero_grad(set_to_none=True)
                loss.backward()
                opt_g.step()
                losses.append(float(loss.detach()))
                step += 1
                dt = time.monotonic() - t0
                step_time = dt if step_time is None else 0.8 * step_time + 0.2 * dt
                if deadline is not None:
                    bar.total = _steps_within(deadline, step_time, spe - step, spe, bar.n + 1, total)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}")
            if stopped == "time":
                if losses:
                    finish_epoch(epoch, step, losses, complete=False)
                break
            finish_epoch(epoch, step, losses, complete=True)
            epoch, step = epoch + 1, 0
    if stopped == "time":
        bar.total = bar.n  # the bar ends full at the step where the time limit stopped it
        bar.refresh()
    bar.close()
    if not (out / "model.safetensors").is_file():  # e.g. stopped before the first step
        card = new_card(cfg.arch, **card_extra, validation={}, history=history)
        save_model(out, gen, card)
    return {"epochs_done": epoch, "partial_steps": step, "steps_done": epoch * spe + step, "steps_per_epoch": spe,
            "stopped": stopped, "best": best, "skipped": problems, "history": history, "model": str(out / "model.safetensors"),
            "minutes": (time.monotonic() - t_start) / 60}
