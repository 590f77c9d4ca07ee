"""``shared``: a learned common code of the two modalities (CoMIR-like).

Two small fully convolutional networks, one per modality, map each image to a ``D``-channel
code per pixel. They are trained jointly on aligned pairs with a symmetric InfoNCE loss
(Pielawski et al. 2020, "CoMIR"): the code of a source pixel must be closer (in squared
Euclidean distance, the critic CoMIR uses, so that SSD registration can compare codes) to the
code of the target pixel at the same place than to the codes of the other sampled pixels.
With ``SharedConfig.align_weight > 0`` the loss adds :func:`styleunwarp.style.alignment.alignment_loss`
of the two codes (all channels sharing one shift per window): how far a registration of the codes
would move the aligned crop. Rotation and flip equivariance come from augmentation: both crops of a pair get the same
random 90° rotation and flip. For the (grey) registration backends the code is reduced to one
channel by its first principal component, computed on the training codes and stored with the
weights; both images use the same projection, each then stretched to 0..255 on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..alignment import alignment_loss
from . import Representation

WEIGHTS = "shared.safetensors"


@dataclass(frozen=True)
class SharedConfig:
    """Network and training hyper-parameters (stored in the card)."""

    code_channels: int = 4
    width: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    crop: int = 96
    batch_size: int = 4
    samples: int = 256  # pixels sampled per batch (spread over its crops) for InfoNCE
    temperature: float = 0.5
    lr: float = 1e-3
    align_weight: float = 0.0  # weight of style.alignment.alignment_loss of the two codes (0: InfoNCE only)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SharedConfig":
        d = dict(d)
        d["dilations"] = tuple(int(v) for v in d.get("dilations", cls.dilations))
        return cls(**d)


class Encoder(nn.Module):
    """Dilated 3x3 convolutions (receptive field ~ 2·Σ dilations + 1 px), no normalisation
    layers (a tile is processed like the same region of the whole image)."""

    def __init__(self, in_channels: int, cfg: SharedConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for d in cfg.dilations:
            layers += [nn.Conv2d(c, cfg.width, 3, padding=d, dilation=d, padding_mode="reflect"), nn.LeakyReLU(0.1)]
            c = cfg.width
        layers.append(nn.Conv2d(c, cfg.code_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _input(image: np.ndarray, channels: int) -> np.ndarray:
    from ..data import normalize_input

    return normalize_input(image, channels)


def infonce(zs: torch.Tensor, zt: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows of ``zs`` and ``zt`` (N, D); critic: −squared distance."""
    logits = -torch.cdist(zs, zt).pow(2) / temperature
    labels = torch.arange(zs.shape[0], device=zs.device)
    return 0.5 * (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels))


class Shared(Representation):
    """Two trained encoders and the projection of their code to one grey channel."""

    kind = "shared"
    trainable = True

    def __init__(self, source_net: Encoder, target_net: Encoder, source_channels: int, target_channels: int,
                 cfg: SharedConfig, projection: np.ndarray | None = None) -> None:
        self.source_net, self.target_net = source_net.eval(), target_net.eval()
        self.source_channels, self.target_channels = source_channels, target_channels
        self.cfg = cfg
        self.projection = np.ones(cfg.code_channels) / math.sqrt(cfg.code_channels) if projection is None else np.asarray(projection, np.float64)

    # ------------------------------------------------------------------ inference
    def codes(self, image: np.ndarray, side: str) -> np.ndarray:
        """The ``(D, H, W)`` code of a source (``side="source"``) or target image."""
        net, ch = (self.source_net, self.source_channels) if side == "source" else (self.target_net, self.target_channels)
        x = torch.from_numpy(_input(image, ch))[None]
        with torch.inference_mode():
            return net(x)[0].numpy()

    def _grey(self, code: np.ndarray) -> np.ndarray:
        """The code projected on its principal direction, percentile-stretched to 0..255 per image:
        a briefly trained pair of encoders leaves an offset and a gain between the two
        modalities' codes (measured on shale: means 140 vs 49 on one scale), which SSD cannot
        absorb; the per-image stretch removes them."""
        from ...io import normalize

        return normalize(np.tensordot(self.projection, code, axes=1))

    def represent(self, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._grey(self.codes(source, "source")), self._grey(self.codes(target, "target"))

    # ------------------------------------------------------------------ files
    def save(self, folder: Path) -> dict:
        from safetensors.torch import save_file

        from ...io import atomic_path

        state = {f"source.{k}": v.detach().cpu().contiguous() for k, v in self.source_net.state_dict().items()}
        state.update({f"target.{k}": v.detach().cpu().contiguous() for k, v in self.target_net.state_dict().items()})
        state["projection"] = torch.from_numpy(self.projection.astype(np.float64))
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp), metadata={"format": "styleunwarp.shared/1"})
        return {"kind": self.kind, "weights": WEIGHTS, "source_channels": self.source_channels,
                "target_channels": self.target_channels, "config": self.cfg.as_dict(),
                "projection": "first principal component of the training codes (tensor 'projection')"}

    @classmethod
    def from_card(cls, folder: Path, section: dict) -> "Shared":
        from safetensors import safe_open

        from ...errors import InputError

        path = folder / WEIGHTS
        try:
            cfg = SharedConfig.from_dict(section["config"])
            sc, tc = int(section["source_channels"]), int(section["target_channels"])
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                state = {k: fh.get_tensor(k) for k in fh.keys()}
            src, tgt = Encoder(sc, cfg), Encoder(tc, cfg)
            src.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("source.")}, strict=True)
            tgt.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("target.")}, strict=True)
            proj = state["projection"].double().numpy()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means the files do not fit
            raise InputError(path, f"cannot load the shared representation ({type(exc).__name__}: {exc})") from exc
        if any(not torch.isfinite(t).all() for t in state.values()):
            raise InputError(path, "shared representation weights contain NaN or infinite values")
        return cls(src, tgt, sc, tc, cfg, proj)


def _crops(pairs: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, n: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for _ in range(n):
        x, y = pairs[int(rng.integers(len(pairs)))]
        h, w = x.shape[1:]
        c = min(crop, h, w)
        i, j = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
        cx, cy = x[:, i:i + c, j:j + c], y[:, i:i + c, j:j + c]
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        cx, cy = np.rot90(cx, k, axes=(1, 2)), np.rot90(cy, k, axes=(1, 2))
        if flip:
            cx, cy = cx[:, :, ::-1], cy[:, :, ::-1]
        xs.append(np.ascontiguousarray(cx))
        ys.append(np.ascontiguousarray(cy))
    c = min(a.shape[1] for a in xs)
    return np.stack([a[:, :c, :c] for a in xs]), np.stack([a[:, :c, :c] for a in ys])


def train_shared(pairs: list[tuple[np.ndarray, np.ndarray]], source_channels: int, *, seconds: float,
                 cfg: SharedConfig | None = None, seed: int = 0, max_steps: int | None = None,
                 snapshots: int = 2) -> tuple[list[Shared], dict]:
    """Train the two encoders on aligned ``(source, target)`` image pairs for about ``seconds``.

    Returns ``snapshots`` representations taken at equal fractions of the time (the last
    at the end), so the caller can choose the checkpoint by registration accuracy, and a
    summary (steps, loss history).
    """
    cfg = cfg or SharedConfig()
    torch.manual_seed(seed)
    data = [(_input(s, source_channels), _input(t, 1)) for s, t in pairs]
    src, tgt = Encoder(source_channels, cfg), Encoder(1, cfg)
    opt = torch.optim.Adam(list(src.parameters()) + list(tgt.parameters()), lr=cfg.lr)
    t0 = time.monotonic()
    marks = [seconds * (k + 1) / snapshots for k in range(snapshots)]
    out: list[Shared] = []
    history: list[dict] = []
    step, losses = 0, []
    while marks:
        rng = np.random.default_rng([seed, step, 5])
        xb, yb = _crops(data, rng, cfg.batch_size, cfg.crop)
        zs, zt = src(torch.from_numpy(xb)), tgt(torch.from_numpy(yb))
        b, d, h, w = zs.shape
        k = max(1, min(cfg.samples // b, h * w))  # pixels of every crop pooled: other crops give easy negatives
        idx = torch.from_numpy(np.concatenate([i * h * w + rng.choice(h * w, size=k, replace=False) for i in range(b)]))
        loss = infonce(zs.permute(0, 2, 3, 1).reshape(-1, d)[idx], zt.permute(0, 2, 3, 1).reshape(-1, d)[idx], cfg.temperature)
        if cfg.align_weight > 0:
            loss = loss + cfg.align_weight * alignment_loss(zs, zt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        elapsed = time.monotonic() - t0
        if step % 20 == 0:
            history.append({"step": step, "loss": float(np.mean(losses[-20:])), "seconds": round(elapsed, 1)})
        if elapsed >= marks[0] or (max_steps is not None and step >= max_steps * (len(out) + 1) // snapshots):
            marks.pop(0)
            out.append(_snapshot(src, tgt, source_channels, cfg, data))
            src.train(), tgt.train()
    return out, {"steps": step, "seconds": round(time.monotonic() - t0, 1), "history": history,
                 "final_loss": float(np.mean(losses[-20:])) if losses else None}


def _snapshot(src: Encoder, tgt: Encoder, source_channels: int, cfg: SharedConfig,
              data: list[tuple[np.ndarray, np.ndarray]]) -> Shared:
    """Frozen copies of the encoders with the code's principal direction."""
    import copy

    s, t = copy.deepcopy(src).eval(), copy.deepcopy(tgt).eval()
    codes = []
    with torch.inference_mode():
        for x, y in data[:4]:
            cs = s(torch.from_numpy(x[:, :256, :256])[None])[0].reshape(cfg.code_channels, -1)
            ct = t(torch.from_numpy(y[:, :256, :256])[None])[0].reshape(cfg.code_channels, -1)
            codes += [cs.numpy(), ct.numpy()]
    allc = np.concatenate(codes, axis=1).astype(np.float64)
    centred = allc - allc.mean(axis=1, keepdims=True)
    _, vecs = np.linalg.eigh(centred @ centred.T)
    proj = vecs[:, -1]
    proj = proj if proj.sum() >= 0 else -proj
    return Shared(s, t, source_channels, 1, cfg, proj)


__all__ = ["Encoder", "Shared", "SharedConfig", "infonce", "train_shared"]
