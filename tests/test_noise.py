"""Noise estimation and the denoising before a boundary map (styleunwarp.noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from styleunwarp.noise import denoise, noise_sigma

REAL_CBS = Path(__file__).resolve().parents[2] / "shared" / "data" / "openecci-cbs"


def _steps(shape=(128, 128)) -> np.ndarray:
    """Four flat 'grains' with a linear illumination ramp."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    grains = np.where(x < 64, 0.2, 0.8) + np.where(y < 50, 0.0, -0.5)
    return grains + 0.002 * x


@pytest.mark.parametrize("sd", [0.02, 0.1, 0.3])
def test_noise_sigma_recovers_the_noise_of_a_structured_image(sd):
    rng = np.random.default_rng(0)
    clean = _steps()
    assert noise_sigma(clean) < 0.01  # steps and ramps are not noise
    assert noise_sigma(clean + rng.normal(0, sd, clean.shape)) == pytest.approx(sd, rel=0.1)


def test_noise_sigma_rejects_what_is_not_an_image():
    with pytest.raises(ValueError, match="2-D"):
        noise_sigma(np.zeros((2, 10)))


def test_denoise_flattens_noise_and_keeps_the_steps():
    from scipy import ndimage

    rng = np.random.default_rng(1)
    noisy = _steps() + rng.normal(0, 0.1, (128, 128))
    out = denoise(noisy, 1.5)
    assert noise_sigma(out) < 0.3 * noise_sigma(noisy)
    # the boundary map still peaks on the grain boundary (x = 63.5), now far above the interior
    edge = ndimage.gaussian_gradient_magnitude(out, 1.5)
    assert abs(edge[60:70, 20:110].mean(axis=0).argmax() + 20 - 63.5) <= 1
    inside = edge[60:120, 5:50]
    assert edge[60:120, 62:66].mean() > 5 * inside.mean()
    np.testing.assert_array_equal(denoise(noisy, 0), noisy)
    with pytest.raises(ValueError, match="strength"):
        denoise(noisy, -1)


def test_real_cbs_boundary_map_is_cleaner_inside_grains_after_denoising():
    """On real SEM-CBS images the target boundary map's grain interiors lose most of their
    noise texture relative to the boundaries (what the registration should see)."""
    from styleunwarp.style.data import target_representation
    from styleunwarp.synth.fromcbs import cbs_edges, read_cbs

    files = sorted(REAL_CBS.glob("*.tif*"))[:2] if REAL_CBS.is_dir() else []
    if not files:
        pytest.skip(f"real CBS images absent ({REAL_CBS})")
    for f in files:
        cbs = read_cbs(f)[:512, :512]
        boundary = cbs_edges(cbs)
        from scipy import ndimage

        near = ndimage.binary_dilation(boundary, iterations=1)
        far = ~ndimage.binary_dilation(boundary, iterations=8)
        contrast = {}
        for strength in (0.0, 1.5):
            e = target_representation(cbs, "edges", denoise=strength)
            contrast[strength] = e[near].mean() / e[far].mean()
        assert contrast[1.5] > 1.3 * contrast[0.0], (f.name, contrast)


def test_edges_model_checks_its_elastic_result_on_the_undenoised_map():
    """Registration fits the denoised boundary map; the never-worse check measures on the map
    as recorded (the one its margin was calibrated on), and says so in its facts."""
    import torch

    from styleunwarp.io import normalize
    from styleunwarp.pipeline.chain import keep_or_undo
    from styleunwarp.registration.result import Registration
    from styleunwarp.style.data import target_representation
    from styleunwarp.style.infer import StyleTransfer
    from styleunwarp.style.networks import Architecture, UNetGenerator
    from styleunwarp.style.representations.translation import Translation
    from styleunwarp.synth import make_pair
    from styleunwarp.transform import identity_elastic

    torch.manual_seed(0)
    gen = UNetGenerator(Architecture(in_channels=1, base=4, depth=3))
    p = make_pair((64, 64), seed=5, deform=False, grain_size=16)
    noisy = p.cbs + np.random.default_rng(0).normal(0, 20, p.cbs.shape).astype(np.float32)
    edges = Translation(StyleTransfer(gen, card={"target": {"kind": "edges", "denoise": 1.5}}))
    reference = edges.reference_target(noisy)
    np.testing.assert_allclose(reference, normalize(target_representation(noisy, "edges", denoise=0.0)), atol=1e-4)
    assert not np.allclose(reference, edges.represent(p.lom, noisy)[1], atol=1.0)
    assert Translation(StyleTransfer(gen, card={"target": {"kind": "edges", "denoise": 0}})).reference_target(noisy) is None
    assert Translation(StyleTransfer(gen, card={"target": {"kind": "cbs"}})).reference_target(noisy) is None

    target = edges.represent(p.lom, noisy)[1]
    shifted = np.roll(target, 2, axis=1)
    identity = identity_elastic(4, target.shape)
    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.structure import gradient_gain

    reg = Registration(identity, None, target.shape, target.shape, "test", PIPELINE_DEFAULTS, 0.0)
    facts = keep_or_undo(target, shifted, reg, reference=reference)[3]
    assert facts["check_on"] == "reference target" and facts["kept"] == "start"
    common = shifted != 0
    on_reference, on_target = gradient_gain(shifted, shifted, reference, common)[0], gradient_gain(shifted, shifted, target, common)[0]
    assert facts["gradient_start"] == pytest.approx(on_reference, abs=2e-3) and abs(on_reference - on_target) > 1e-2  # not the target's
    assert keep_or_undo(target, shifted, reg)[3]["check_on"] == "registered target"
    with pytest.raises(ValueError, match="reference"):
        keep_or_undo(target, shifted, reg, reference=reference[:10])
