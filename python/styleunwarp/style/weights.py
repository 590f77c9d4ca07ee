"""Weights as safetensors plus a JSON model card; loading never unpickles.

A model folder holds ``model.safetensors`` and ``model.json`` (the card). A bare
``.safetensors`` file is loadable on its own too: the card is also stored, as JSON, in the
file's metadata (key ``styleunwarp_card``); a sibling ``NAME.json`` takes precedence.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from os import PathLike
from pathlib import Path

import torch

from .. import __version__
from ..errors import InputError
from .networks import Architecture, UNetGenerator

CARD_FORMAT = "styleunwarp.style-model/1"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "model.json"


def new_card(arch: Architecture, **sections) -> dict:
    """A model card with the fixed keys; ``sections`` add or override top-level entries."""
    from .data import NORMALIZATION

    card = {
        "format": CARD_FORMAT,
        "task": "LOM -> CBS style transfer for registration (pix2pix U-Net generator); what the output is: see 'target'",
        "architecture": {"generator": "UNetGenerator", **arch.as_dict()},
        "normalization": dict(NORMALIZATION),
        "styleunwarp_version": __version__,
        "torch_version": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    card.update(sections)
    return card


def save_model(folder: str | PathLike[str], generator: UNetGenerator, card: dict,
               weights_name: str = WEIGHTS_NAME, card_name: str = CARD_NAME) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/model.json`` atomically; return the weights path."""
    from safetensors.torch import save_file

    from ..io import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    card = dict(card)
    card.pop("weights_sha256", None)
    meta = {"format": CARD_FORMAT, "styleunwarp_card": json.dumps(card, sort_keys=True)}
    wpath = folder / weights_name
    with atomic_path(wpath) as tmp:
        save_file(state, str(tmp), metadata=meta)
    card["weights_file"] = weights_name
    card["weights_sha256"] = hashlib.sha256(wpath.read_bytes()).hexdigest()
    atomic_write_text(folder / card_name, json.dumps(card, indent=2, sort_keys=False) + "\n")
    return wpath


def _resolve(path: Path) -> tuple[Path, Path | None]:
    """(weights file, card file or None) for a model folder, a weights file or a card."""
    if path.is_dir():
        w, c = path / WEIGHTS_NAME, path / CARD_NAME
        if not w.is_file():
            cands = sorted(path.glob("*.safetensors"))
            if len(cands) != 1:
                raise InputError(path, f"model folder has no {WEIGHTS_NAME}")
            w = cands[0]
            c = w.with_suffix(".json")
        return w, (c if c.is_file() else None)
    if not path.exists():
        raise InputError(path, "model file or folder does not exist")
    if path.suffix.lower() == ".json":
        card = _read_card(path)
        w = path.parent / str(card.get("weights_file", WEIGHTS_NAME))
        if not w.is_file():
            raise InputError(path, f"the card's weights file {w.name} does not exist")
        return w, path
    c = path.with_suffix(".json")
    if not c.is_file() and path.name == WEIGHTS_NAME and (path.parent / CARD_NAME).is_file():
        c = path.parent / CARD_NAME
    return path, (c if c.is_file() else None)


def _read_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"model card is not valid JSON: {exc}") from exc
    return _check_card(card, path)


def _check_card(card, path: Path) -> dict:
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise InputError(path, f"not a styleunwarp style model card (expected format {CARD_FORMAT!r})")
    if not isinstance(card.get("architecture"), dict):
        raise InputError(path, "model card has no 'architecture' object")
    return card


def load_model(path: str | PathLike[str]) -> tuple[UNetGenerator, dict, Path]:
    """Load a generator (eval mode, CPU) from a model folder, weights file or card.

    Returns ``(generator, card, weights_path)``.

    Raises
    ------
    InputError
        Missing, corrupt, truncated or foreign weights file or card (wrong format, keys,
        shapes, dtypes or non-finite values); the error names the file.
    """
    from safetensors import SafetensorError
    from safetensors import safe_open

    wpath, cpath = _resolve(Path(path))
    try:
        with safe_open(str(wpath), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError) as exc:
        raise InputError(wpath, f"not a readable safetensors weights file ({exc})") from exc
    except Exception as exc:  # safetensors raises a few odd types on garbage headers
        raise InputError(wpath, f"not a readable safetensors weights file ({type(exc).__name__}: {exc})") from exc
    if cpath is not None:
        card = _read_card(cpath)
        card_src = cpath
    else:
        if meta.get("format") != CARD_FORMAT or "styleunwarp_card" not in meta:
            raise InputError(wpath, "safetensors file is not a styleunwarp style model (no model card "
                                    "next to it and none in its metadata)")
        try:
            card = json.loads(meta["styleunwarp_card"])
        except json.JSONDecodeError as exc:
            raise InputError(wpath, f"model card in the metadata is not valid JSON: {exc}") from exc
        card_src = wpath
        card = _check_card(card, wpath)
    sha = card.get("weights_sha256") if cpath is not None else None
    if sha and hashlib.sha256(wpath.read_bytes()).hexdigest() != sha:
        raise InputError(wpath, f"weights file does not match its model card {cpath.name} (sha256 differs): "
                                "the weights were replaced or damaged")
    arch_d = {k: v for k, v in card["architecture"].items() if k != "generator"}
    try:
        arch = Architecture.from_dict(arch_d)
    except (TypeError, ValueError) as exc:
        raise InputError(card_src, f"bad architecture in the model card: {exc}") from exc
    gen = UNetGenerator(arch)
    expected = gen.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(wpath, f"weights do not match the architecture: {len(missing)} missing tensors "
                                f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")
    for k, t in expected.items():
        s = state[k]
        if tuple(s.shape) != tuple(t.shape):
            raise InputError(wpath, f"tensor {k!r} has shape {tuple(s.shape)}, the architecture needs {tuple(t.shape)}")
        if s.dtype != t.dtype:
            raise InputError(wpath, f"tensor {k!r} has dtype {s.dtype}, expected {t.dtype}")
        if s.is_floating_point() and not torch.isfinite(s).all():
            raise InputError(wpath, f"tensor {k!r} contains NaN or infinite values")
    gen.load_state_dict(state, strict=True)
    gen.eval()
    return gen, card, wpath
