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
