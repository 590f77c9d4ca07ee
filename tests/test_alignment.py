"""The alignment training signal: local Gauss-Newton shifts against known sub-pixel translations."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy import ndimage  # noqa: E402

from styleunwarp.style.alignment import alignment_loss, local_shift, mean_shift_px, pyramid_shifts  # noqa: E402


def _smooth(shape=(192, 192), seed=0) -> np.ndarray:
    return ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 3)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, np.float32))[None, None]


@pytest.mark.parametrize("shift", [(0.7, -0.4), (-1.5, 0.25)])
def test_local_shift_recovers_a_known_sub_pixel_translation(shift):
    """``pred(x) = target(x - s)``: every interior window's step is ``s`` (x then y), to a few hundredths."""
    target = _smooth()
    pred = ndimage.shift(target, (shift[1], shift[0]), order=3, mode="nearest")
    s = local_shift(_t(pred), _t(target), window=64, stride=32)[0, :, 1:-1, 1:-1].reshape(2, -1).numpy()
    assert s.shape[1] >= 9
    np.testing.assert_allclose(np.median(s, axis=1), shift, atol=0.08)
    # every pyramid level sees the same translation, in full-resolution px; coarse levels overstate its
    # length (central differences of a texture near the sampling limit), never its direction
    levels = pyramid_shifts(_t(pred), _t(target), factors=(1, 2, 4, 8))
    assert len(levels) == 4
    for level in levels:
        m = level[0].reshape(2, -1).median(dim=1).values.numpy()
        assert np.dot(m, shift) / np.linalg.norm(m) / np.linalg.norm(shift) > 0.99
        assert 0.95 < np.linalg.norm(m) / np.linalg.norm(shift) < 1.6
    # exactly aligned: nothing moves; a flat pair (no structure) is not moved either
    assert mean_shift_px(_t(target), _t(target)) == 0.0
    assert mean_shift_px(_t(np.zeros((64, 64))), _t(np.zeros((64, 64)))) == 0.0


def test_loss_gradient_drives_a_learnable_shift_to_the_truth():
    """Minimising the loss over a translation of ``pred`` (through grid_sample) lands on the true shift."""
    target = _smooth(seed=1)
    true = (1.2, -0.8)
    pred = _t(ndimage.shift(target, (true[1], true[0]), order=3, mode="nearest"))
    tgt = _t(target)
    d = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([d], lr=0.05)
    h, w = tgt.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    first = None
    for _ in range(150):
        grid = torch.stack([(xs + d[0]) / (w - 1) * 2 - 1, (ys + d[1]) / (h - 1) * 2 - 1], -1)[None]
        moved = torch.nn.functional.grid_sample(pred, grid, mode="bilinear", padding_mode="border", align_corners=True)
        loss = alignment_loss(moved[..., 8:-8, 8:-8], tgt[..., 8:-8, 8:-8])
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.01 * first
    np.testing.assert_allclose(d.detach().numpy(), true, atol=0.1)


def test_robust_loss_flattens_far_shifts_and_small_images_are_one_window():
    target = _smooth((48, 40), seed=2)
    pred = ndimage.shift(target, (0, 0.5), order=3, mode="nearest")
    s = local_shift(_t(pred), _t(target))
    assert s.shape == (1, 2, 1, 1) and abs(float(s[0, 0, 0, 0]) - 0.5) < 0.1
    big = _t(ndimage.shift(_smooth(seed=3), (0, 30), order=1, mode="nearest"))
    assert float(alignment_loss(big, _t(_smooth(seed=3)), cap_px=5.0)) < 25.0
    with pytest.raises(ValueError, match="N, C, H, W"):
        local_shift(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 9, 8))


def test_channels_of_a_code_share_one_shift():
    """Two channels shifted alike give that shift; a channel without structure changes nothing."""
    a, b = _smooth(seed=4), _smooth(seed=5)
    shift = (0.6, 0.3)
    moved = [ndimage.shift(c, (shift[1], shift[0]), order=3, mode="nearest") for c in (a, b)]
    pred = torch.from_numpy(np.stack(moved).astype(np.float32))[None]
    target = torch.from_numpy(np.stack([a, b]).astype(np.float32))[None]
    s = local_shift(pred, target, window=64, stride=32)[0].reshape(2, -1).median(dim=1).values.numpy()
    np.testing.assert_allclose(s, shift, atol=0.08)
    flat = torch.zeros(1, 1, *a.shape)
    one = local_shift(_t(moved[0]), _t(a), window=64, stride=32)
    padded = local_shift(torch.cat([_t(moved[0]), flat], 1), torch.cat([_t(a), flat], 1), window=64, stride=32)
    torch.testing.assert_close(one, padded)
