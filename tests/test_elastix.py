"""The elastix baseline backend (skipped where itk-elastix is not installed)."""

from __future__ import annotations

import pytest

from styleunwarp.quality import tre
from styleunwarp.registration import BUnwarpJParams, register
from styleunwarp.synth import make_pair

itk = pytest.importorskip("itk", reason="itk-elastix not installed (pip install itk-elastix)")


def test_elastix_recovers_a_known_deformation_and_fits_a_bunwarpj_grid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = make_pair((256, 256), seed=4)
    reg = register(p.cbs, p.cbs_like_lom, BUnwarpJParams(), backend="elastix")
    assert list(tmp_path.iterdir()) == []  # elastix leaves no files behind in the working folder
    assert reg.backend == "elastix" and reg.inverse is None
    assert reg.info["fit_rms_px"] < 0.05
    assert tre(reg.direct, p.truth, (256, 256)).mean < 1.5
