"""The per-process style-model cache: one load while the files are unchanged, a reload when they change."""

from __future__ import annotations

import os

import numpy as np
import torch

from styleunwarp.style import Architecture, UNetGenerator, save_model
from styleunwarp.style.cache import cached_representation, clear, model_key
from styleunwarp.style.weights import new_card


def _save(folder, seed: int):
    torch.manual_seed(seed)
    g = UNetGenerator(Architecture(base=4, depth=2)).eval()
    return save_model(folder, g, new_card(Architecture(base=4, depth=2)))


def test_a_model_is_loaded_once_and_reloaded_when_its_files_change(tmp_path):
    clear()
    _save(tmp_path / "m", 0)
    img = np.random.default_rng(0).uniform(0, 255, (32, 32)).astype(np.float32)
    a = cached_representation(tmp_path / "m")
    assert cached_representation(tmp_path / "m") is a
    out_a = a.represent(img, img)[0]
    w = _save(tmp_path / "m", 1)  # retrained in place: new weights
    st = os.stat(w)
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime even on coarse clocks
    b = cached_representation(tmp_path / "m")
    assert b is not a
    assert not np.allclose(b.represent(img, img)[0], out_a)
    assert cached_representation(tmp_path / "m", "none") is not b
    assert model_key(tmp_path / "missing") is None
    clear()
