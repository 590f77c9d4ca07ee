"""Inference: any image size through overlapping tiles blended with a smooth window."""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from os import PathLike
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..threads import torch_threads
from .data import normalize_input, to_output_range
from .networks import UNetGenerator

MODELS_ENV = "STYLEUNWARP_MODELS"
DEFAULT_MODEL = "lom2cbs-synthetic"


def models_dir() -> Path:
    """``$STYLEUNWARP_MODELS`` if set, else ``models/`` of the source checkout."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "models"


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` for the block, restoring the previous state."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def inference_network(generator: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``generator`` for fast CPU/GPU inference, same function.

    Each convolution followed by an eval-mode BatchNorm is fused into one convolution (BatchNorm
    in eval mode is a per-channel affine map), and the copy runs channels-last (NHWC), the
    memory format oneDNN's and cuDNN's convolutions are fastest in: 0.56 → 0.36 s CPU per 512²
    image on one thread here (docs/native.md). The original module is untouched (its
    parameter names, and so the safetensors files, stay as they are).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(generator).eval()
    for mod in net.modules():
        conv, norm = getattr(mod, "conv", None), getattr(mod, "norm", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
            mod.conv = fuse_conv_bn_eval(conv, norm)
            mod.norm = torch.nn.Identity()
    return net.to(memory_format=torch.channels_last)


PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), read from ``/proc/cpuinfo``
    once per process (it was read again for every block inferred)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()
    except OSError:
        pass
    return False


def _state_version(module: torch.nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is modified in place (training between calls)."""
    tensors = list(module.parameters()) + list(module.buffers())
    return tuple((id(t), t._version) for t in tensors)


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weight: raised-cosine ramps over ``overlap`` px at inner edges, flat 1 elsewhere.

    The weight never reaches 0 (floor 1e-3), so every pixel is covered with a positive weight.
    """
    w = np.ones(n, np.float64)
    r = min(overlap, n // 2)
    if r > 0:
        t = (np.arange(r) + 0.5) / r
        ramp = np.maximum(0.5 - 0.5 * np.cos(np.pi * t), 1e-3)
        if not at_start:
            w[:r] = ramp
        if not at_end:
            w[n - r:] = ramp[::-1]
    return w


VIEWS = 8
"""Dihedral views of each tile the generator sees at inference, their outputs turned back and averaged.

8: the four 90 degree rotations, each also mirrored; 4: the identity, the two mirrors and the half
turn; 1: the tile as it is. The generators were trained on crops in all eight views
(:mod:`.data`), so each view is a fair input; the average is equivariant under the group, which
cancels a map's response that depends on the direction of an edge (shading, relief, an
illumination gradient). Measured (docs/style.md, "Averaged over eight views"): on LOM renderings by
two renderers not ours the fine affine start of the shipped model came 0.05-0.16 px closer to the
truth per set (10 pairs each, seeds 55 and 59-61), the worst pair 1.83 -> 1.39 px."""

DIHEDRAL = {1: ((0, False),), 4: ((0, False), (0, True), (2, False), (2, True)),
            8: tuple((k, f) for k in range(4) for f in (False, True))}
"""The views of :data:`VIEWS` as (quarter turns, mirrored left-right) pairs."""


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    s = list(range(0, size - tile, step))
    s.append(size - tile)
    return s


class StyleTransfer:
    """A trained LOM → CBS-like generator, callable on numpy images.

    ``model(image)`` takes a gray ``(H, W)`` or RGB ``(H, W, 3)`` array of any numeric dtype
    (8/16-bit, float) and any size and returns a float32 ``(H, W)`` CBS-like image in 0..255.
    Images larger than ``tile`` are processed in overlapping tiles blended with a smooth
    window. Evaluation is deterministic (eval mode, deterministic algorithms, inference mode).

    ``threads``: CPU threads torch uses during a call (restored afterwards); default 1, as the
    native registration: on this shared 2-core machine two threads took 0.58 s CPU / 0.88 s
    wall per 512² image against 0.19 / 0.29 s for one (load 8), and the output does not depend
    on the caller's thread count; ``None`` keeps torch's setting.

    ``views``: how many dihedral views of each tile are averaged (:data:`VIEWS`, default 8;
    1, 4 or 8). Eight cost eight passes (0.34 s CPU per 512² image on one thread against 0.07 s
    for one, ``benchmarks/bench_style.py --inference-only``).

    ``precision``: ``"fp32"``, ``"bf16"`` (convolutions in bfloat16 through torch's CPU
    autocast, accumulation in fp32; CPU only) or ``"auto"`` (default: bf16 on a CPU that
    computes it in hardware, :func:`native_bf16`, else fp32). On this project's AVX512-BF16
    CPU bf16 takes 0.19–0.25 s CPU per 512² image on one thread (fp32 0.36–0.42 s) and
    changes the output by at most 0.8 grey levels of 255 (mean 0.13; docs/native.md);
    results are deterministic for a given machine and precision.

    Examples
    --------
    >>> model = StyleTransfer.load_default()            # doctest: +SKIP
    >>> styled = model(lom)                              # doctest: +SKIP
    """

    def __init__(self, generator: UNetGenerator, card: dict | None = None, *, tile: int = 512,
                 overlap: int = 64, device: str | torch.device | None = None, source: Path | None = None,
                 precision: str = "auto", threads: int | None = 1, views: int = VIEWS) -> None:
        self.generator = generator.eval()
        self.card = card or {}
        self.arch = generator.arch
        m = self.arch.multiple
        if tile < m or tile % m:
            raise ValueError(f"tile must be a positive multiple of {m}, got {tile}")
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.tile, self.overlap = int(tile), min(int(overlap), int(tile) // 2)  # overlap capped at tile/2
        self.device = torch.device(device) if device is not None else (
            torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        self.generator.to(self.device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.threads = None if threads is None else int(threads)
        if views not in DIHEDRAL:
            raise ValueError(f"views must be one of {', '.join(map(str, DIHEDRAL))}, got {views}")
        self.views = int(views)
        self.source = source
        self._net: torch.nn.Module | None = None
        self._net_key: tuple | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | PathLike[str], **kwargs) -> "StyleTransfer":
        """Load from a model folder (``train``'s output), a ``.safetensors`` file or a card."""
        from .weights import load_model

        gen, card, wpath = load_model(path)
        return cls(gen, card, source=wpath, **kwargs)

    @classmethod
    def load_default(cls, **kwargs) -> "StyleTransfer":
        """The shipped model ``models/lom2cbs-synthetic`` (or under ``$STYLEUNWARP_MODELS``)."""
        path = models_dir() / DEFAULT_MODEL
        if not path.exists():
            raise InputError(path, "the default style model is not installed (train one with "
                                   "`styleunwarp train`, or set STYLEUNWARP_MODELS)")
        return cls.load(path, **kwargs)

    # ------------------------------------------------------------------ inference
    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = normalize_input(image, self.arch.in_channels)
        return to_output_range(self._run(x))

    def batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Style several images (each of its own size); returns a list of float32 arrays."""
        return [self(im) for im in images]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """The generator's output on one normalised ``(C, h, w)`` block, averaged over its
        :attr:`views` (each view's output turned back onto the block)."""
        if self.views == 1:
            return self._forward_once(x)
        acc = np.zeros(x.shape[1:], np.float64)
        for quarter_turns, mirrored in DIHEDRAL[self.views]:
            v = np.rot90(x, quarter_turns, axes=(1, 2))
            if mirrored:
                v = v[:, :, ::-1]
            out = self._forward_once(np.ascontiguousarray(v))
            if mirrored:
                out = out[:, ::-1]
            acc += np.rot90(out, -quarter_turns)
        return (acc / len(DIHEDRAL[self.views])).astype(np.float32)

    def _forward_once(self, x: np.ndarray) -> np.ndarray:
        """Generator on one normalised ``(C, h, w)`` block, padded to a multiple of 2**depth."""
        m = self.arch.multiple
        c, h, w = x.shape
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
        t = torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.uses_bf16):
            y = self._network()(t.contiguous(memory_format=torch.channels_last))[0, 0].float().cpu().numpy()
        return y[:h, :w]

    @property
    def uses_bf16(self) -> bool:
        """Whether inference runs its convolutions in bfloat16 (see ``precision``)."""
        if self.device.type != "cpu" or self.precision == "fp32":
            return False
        return self.precision == "bf16" or native_bf16()

    def _network(self) -> torch.nn.Module:
        """The fused channels-last copy of the generator, rebuilt when its weights changed."""
        key = _state_version(self.generator) + (str(self.device),)
        if self._net is None or key != self._net_key:
            self._net, self._net_key = inference_network(self.generator), key
        return self._net

    def _run(self, x: np.ndarray) -> np.ndarray:
        was_training = self.generator.training
        self.generator.eval()
        try:
            # CPU inference kernels are deterministic already; the global switch costs ~1.5 s
            # at its first use (it imports torch's compiler stack) and matters on CUDA only
            with (torch_threads(self.threads if self.device.type == "cpu" else None),
                  deterministic() if self.device.type == "cuda" else contextlib.nullcontext(), torch.inference_mode()):
                return self._tiled(x)
        finally:
            self.generator.train(was_training)

    def _tiled(self, x: np.ndarray) -> np.ndarray:
        _, h, w = x.shape
        tile, ov = self.tile, self.overlap
        if h <= tile and w <= tile:
            return self._forward(x)
        step = tile - ov
        acc = np.zeros((h, w), np.float64)
        wsum = np.zeros((h, w), np.float64)
        ys, xs = _starts(h, tile, step), _starts(w, tile, step)
        for i in ys:
            for j in xs:
                th, tw = min(tile, h - i), min(tile, w - j)
                out = self._forward(x[:, i:i + th, j:j + tw])
                wy = _ramp(th, ov, i == 0, i + th >= h)
                wx = _ramp(tw, ov, j == 0, j + tw >= w)
                wt = wy[:, None] * wx[None, :]
                acc[i:i + th, j:j + tw] += wt * out
                wsum[i:i + th, j:j + tw] += wt
        return (acc / wsum).astype(np.float32)

    @property
    def target_kind(self) -> str:
        """``"cbs"`` (output is CBS-like) or ``"edges"`` (output is the CBS's boundary map)."""
        return str((self.card.get("target") or {}).get("kind", "cbs"))

    @property
    def target_denoise(self) -> float:
        """How strongly an ``edges`` model's target is denoised (the card's ``target.denoise``,
        default :data:`~.data.EDGE_DENOISE`, also for cards written before the field existed)."""
        from .data import EDGE_DENOISE

        return float((self.card.get("target") or {}).get("denoise", EDGE_DENOISE))

    def prepare_target(self, cbs: np.ndarray, denoise: float | None = None) -> np.ndarray:
        """The CBS image in the representation this model renders LOM images into (0..255).

        Register ``model(lom)`` (moved) to ``model.prepare_target(cbs)`` (fixed). For a ``cbs``
        model this is the contrast-stretched CBS; for an ``edges`` model its boundary map,
        denoised by ``denoise`` (default :attr:`target_denoise`).
        """
        from .data import target_representation

        strength = self.target_denoise if denoise is None else float(denoise)
        return target_representation(cbs, self.target_kind, denoise=strength)

    def style_file(self, path: str | PathLike[str]) -> np.ndarray:
        from ..io import read_image

        return self(read_image(path).data)

    def __repr__(self) -> str:
        a = self.arch
        return (f"StyleTransfer(base={a.base}, depth={a.depth}, in_channels={a.in_channels}, "
                f"tile={self.tile}, overlap={self.overlap}, source={self.source})")
