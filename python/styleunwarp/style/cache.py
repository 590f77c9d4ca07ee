"""A small per-process cache of loaded representations (style models), keyed by their files.

Loading the shipped style model and building its fused inference copy costs about 0.5 s; a
batch (and every dask worker) used to pay it for every pair. :func:`cached_representation`
returns the representation already loaded in this process when the model's files are
unchanged: the key is the model's resolved path plus the name, modification time and size of
every file of its folder (or of the weights file's folder), so a retrained model is reloaded.
At most :data:`MAX_MODELS` models are kept (least recently used dropped). The cached object is
shared: callers only *use* it (``represent``); code that trains or changes a model loads its
own with :func:`styleunwarp.style.chain.load_representation`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from os import PathLike
from pathlib import Path

MAX_MODELS = 2
"""Loaded models kept per process."""

_LOCK = threading.Lock()
_CACHE: "OrderedDict[tuple, object]" = OrderedDict()


def _fingerprint(path: Path) -> tuple:
    """``(name, mtime_ns, size)`` of every file of the model's folder (recursively for a folder)."""
    files = path.rglob("*") if path.is_dir() else path.parent.iterdir()
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        if f.is_file():
            out.append((str(f.relative_to(path if path.is_dir() else path.parent)), st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def model_key(model: str | PathLike[str] | None, style: str = "model", key: str | None = None) -> tuple | None:
    """The cache key of ``model`` (``None`` = the shipped default) and representation ``key``, or
    ``None`` when it cannot be read."""
    if style == "none" or key == "none":
        return ("none",)
    from .infer import DEFAULT_MODEL, models_dir

    path = Path(model) if model is not None else models_dir() / DEFAULT_MODEL
    try:
        path = path.resolve()
        if not path.exists():
            return None
        return (str(path), style, key, _fingerprint(path))
    except OSError:
        return None


def cached_representation(model: str | PathLike[str] | None, style: str = "model", representation: str | None = None):
    """:func:`styleunwarp.style.chain.load_representation`, loaded once per process while the files are unchanged."""
    from .chain import load_representation

    key = model_key(model, style, representation)
    if key is None:  # missing model: let the loader raise its clear error
        return load_representation(model, style, representation)
    with _LOCK:
        rep = _CACHE.get(key)
        if rep is not None:
            _CACHE.move_to_end(key)
            return rep
    rep = load_representation(model, style, representation)
    with _LOCK:
        _CACHE[key] = rep
        _CACHE.move_to_end(key)
        while len(_CACHE) > MAX_MODELS:
            _CACHE.popitem(last=False)
    return rep


def clear() -> None:
    """Forget every loaded model (tests; freeing memory)."""
    with _LOCK:
        _CACHE.clear()


__all__ = ["MAX_MODELS", "cached_representation", "clear", "model_key"]
