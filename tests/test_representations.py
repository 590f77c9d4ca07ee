"""Representations, held-out cases, chains chosen by TRE (train --target auto), register --model's chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from styleunwarp.errors import InputError  # noqa: E402
from styleunwarp.io import write_tiff  # noqa: E402
from styleunwarp.quality import ncc  # noqa: E402
from styleunwarp.style.chain import Chain, load_chain, load_representation, resolve_backend, write_chain_card  # noqa: E402
from styleunwarp.style.heldout import make_cases  # noqa: E402
from styleunwarp.style.representations import KINDS, load, similarity  # noqa: E402
from styleunwarp.style.representations.raw import Raw  # noqa: E402
from styleunwarp.style.representations.shared import SharedConfig, train_shared  # noqa: E402
from styleunwarp.transform import warp_image  # noqa: E402

SHALE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "petrography-bse-se"


def _texture(shape=(96, 96), seed=0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    t = gaussian_filter(rng.normal(size=shape), 2.5)
    return ((t - t.min()) / (t.max() - t.min()) * 200 + 20).astype(np.float32)


def _pair(seed: int, shape=(96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """A two-modality aligned pair: the source is the target with inverted contrast and a gamma."""
    t = _texture(shape, seed)
    s = 255.0 * (1.0 - t / 255.0) ** 1.7 + np.random.default_rng(seed + 100).normal(0, 2, shape)
    return s.astype(np.float32), t


def _pairs_folder(root: Path, n: int, shape=(96, 96)) -> Path:
    for sub in ("lom", "cbs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s, t = _pair(i, shape)
        write_tiff(root / "lom" / f"p{i}.tif", s)
        write_tiff(root / "cbs" / f"p{i}.tif", t)
    return root


def test_heldout_cases_are_undone_by_their_truth():
    s, t = _pair(0, (128, 128))
    cases = make_cases([("p", s, t)], 3, seed=1)
    assert [c.kind for c in cases] == ["near-identity", "misaligned", "misaligned"]
    for c in cases:
        back = warp_image(c.source, c.truth, t.shape)
        inner = (slice(16, -16), slice(16, -16))
        assert np.abs(back[inner] - s[inner]).mean() < 1.5  # the truth maps the deformed source back
        assert not np.allclose(c.source, s)
    moved = [np.abs(warp_image(s, c.truth, t.shape)[16:-16, 16:-16] - s[16:-16, 16:-16]).mean() for c in cases]
    assert moved[0] < moved[1] and moved[0] < moved[2]  # the first one is near the identity


def test_raw_representation_and_similarity_prefer_alignment():
    s, t = _pair(2)
    a, b = Raw().represent(s, t)
    assert a.dtype == np.float32 and a.shape == t.shape and 0 <= a.min() and a.max() <= 255 and b.max() > 200
    aligned = similarity(a, b)
    shifted = similarity(np.roll(a, 4, axis=1), b)
    assert aligned > shifted
    assert Raw().similarity(a, b) == aligned
    rgb = np.stack([s, s * 0.5, s * 0.2], axis=-1)
    assert Raw().represent(rgb, t)[0].shape == t.shape


def test_registry_names_every_kind():
    assert set(KINDS) >= {"none", "cbs", "edges", "shared"}
    with pytest.raises(InputError, match="unknown representation"):
        load(Path("."), {"kind": "nope"})


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_shared_code_learns_a_common_code_and_round_trips(tmp_path):
    pairs = [_pair(i) for i in range(3)]
    cfg = SharedConfig(code_channels=2, width=8, dilations=(1, 2, 1), crop=48, batch_size=2, samples=128)
    snaps, summary = train_shared(pairs, 1, seconds=60, cfg=cfg, max_steps=150, snapshots=2)
    assert len(snaps) == 2 and summary["steps"] == 150
    rep = snaps[-1]
    s, t = _pair(7)  # held out
    a, b = rep.represent(s, t)
    assert a.shape == b.shape == t.shape and a.dtype == np.float32
    assert ncc(a, b) > 0.6, "the two encoders should map the inverted-contrast pair to one code"
    assert ncc(a, b) > ncc(*Raw().represent(s, t))  # raw: anti-correlated
    section = rep.save(tmp_path)
    again = load(tmp_path, json.loads(json.dumps(section)))
    np.testing.assert_array_equal(again.represent(s, t)[0], a)
    (tmp_path / section["weights"]).write_bytes(b"garbage")
    with pytest.raises(InputError, match="shared.safetensors"):
        load(tmp_path, section)


def test_shared_code_with_the_alignment_loss_trains_and_records_it(tmp_path):
    """``align_weight`` enters the loss (same seed and crops: InfoNCE alone is reproduced exactly,
    the weighted run differs) and is kept in the card."""
    pairs = [_pair(i) for i in range(3)]
    base = dict(code_channels=2, width=8, dilations=(1, 2, 1), crop=48, batch_size=2, samples=128)

    def trained(**kw):
        return train_shared(pairs, 1, seconds=1e9, cfg=SharedConfig(**base, **kw), max_steps=40, snapshots=1)[0][-1]

    s, t = _pair(7)
    plain, again, aligned = trained(), trained(align_weight=0.0), trained(align_weight=5.0)
    np.testing.assert_array_equal(plain.codes(s, "source"), again.codes(s, "source"))
    assert not np.array_equal(plain.codes(s, "source"), aligned.codes(s, "source"))
    section = aligned.save(tmp_path)
    assert load(tmp_path, json.loads(json.dumps(section))).cfg.align_weight == 5.0


def test_chain_card_and_backend_resolution(tmp_path):
    chain = Chain("none", "elastix", {"grid_spacing": 48.0})
    write_chain_card(tmp_path, chain, Raw().save(tmp_path), candidates=[])
    assert load_chain(tmp_path) == chain
    assert isinstance(load_representation(tmp_path), Raw)
    # the chain's backend unless --backend was given; user options win; style none ignores the chain
    assert resolve_backend(tmp_path, "model", "bunwarpj", {}, None, False)[:3] == ("elastix", {"grid_spacing": 48.0}, None)
    assert resolve_backend(tmp_path, "model", "native", {"similarity": "nmi"}, None, True)[:3] == ("native", {"similarity": "nmi"}, None)
    assert resolve_backend(tmp_path, "none", "bunwarpj", {}, None, False)[3] is None
    assert load_chain(None) is None and load_chain(tmp_path / "elsewhere") is None
    (tmp_path / "chain.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="chain.json"):
        load_chain(tmp_path)


def test_style_images_follows_the_chain(tmp_path):
    from styleunwarp.pipeline.pair import style_images

    s, t = _pair(3)
    write_chain_card(tmp_path, Chain("none", "native", {"similarity": "nmi"}), Raw().save(tmp_path))
    a, b, info = style_images(s, t, tmp_path, "model")
    ra, rb = Raw().represent(s, t)
    np.testing.assert_array_equal(a, ra)
    np.testing.assert_array_equal(b, rb)
    assert info["representation"] == "none" and info["model"].endswith("chain.json")
    with pytest.raises(ValueError):
        style_images(s, t, tmp_path, "bogus")


@pytest.mark.slow
def test_train_auto_then_register_uses_the_chain(tmp_path):
    """The CLI end to end: train --target auto on inverted-contrast pairs chooses a chain by TRE
    (raw images fail SSD here, MI/NMI or a shared code succeed); register --model uses it."""
    pytest.importorskip("itk")
    from click.testing import CliRunner

    from styleunwarp.cli import main
    from styleunwarp.transform import write_elastic

    pairs = _pairs_folder(tmp_path / "pairs", 4)
    write_tiff(pairs / "lom" / "bad.tif", np.ones((40, 40), np.float32))  # constant: nothing to learn
    write_tiff(pairs / "cbs" / "bad.tif", np.ones((50, 50), np.float32))
    noise = np.random.default_rng(2).random((50, 60)).astype(np.float32)
    write_tiff(pairs / "lom" / "apart.tif", noise[:, :40])  # another aspect ratio than its target: two fields
    write_tiff(pairs / "cbs" / "apart.tif", noise[:, :50])
    r = CliRunner().invoke(main, ["train", str(pairs), "--out", str(tmp_path / "m"), "--max-minutes", "1.5"])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "m" / "chain.json").read_text())
    assert card["candidates"] and all("tre_px" in c for c in card["candidates"])
    assert card["chain"]["backend"] in ("elastix", "native")
    assert card["winner"]["within_5px"] >= 1
    s, t = _pair(11)
    case = make_cases([("x", s, t)], 2, seed=3)[1]
    write_tiff(tmp_path / "lom.tif", case.source)
    write_tiff(tmp_path / "cbs.tif", case.target)
    write_elastic(case.truth, tmp_path / "truth.txt")
    r = CliRunner().invoke(main, ["register", str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--model",
                                  str(tmp_path / "m"), "--out", str(tmp_path / "reg"), "--truth", str(tmp_path / "truth.txt")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "reg" / "metrics.json").read_text())
    assert m["backend"] == card["chain"]["backend"] and m["representation"] == card["representation"]["kind"]
    assert "model chain" in r.output
    skipped = card["training_data"]["skipped_files"]
    assert any("bad.tif" in m and "constant" in m for m in skipped)
    assert any("apart.tif" in m and "another aspect ratio" in m for m in skipped)


@pytest.mark.slow
@pytest.mark.skipif(not SHALE.is_dir(), reason="real data ../shared/data/petrography-bse-se absent")
def test_shared_code_on_real_shale_pairs():
    """BSE and SE of real shale: a briefly trained shared code correlates on a held-out pair."""
    from styleunwarp.io import read_image, to_gray

    names = sorted(p.name for p in (SHALE / "se").glob("*.png"))[:4]
    pairs = [(to_gray(read_image(SHALE / "se" / n).data), to_gray(read_image(SHALE / "bse" / n).data)) for n in names]
    cfg = SharedConfig(width=8, dilations=(1, 2, 4, 2, 1), crop=64, batch_size=4, samples=128)
    snaps, _ = train_shared(pairs[:3], 1, seconds=60, cfg=cfg, max_steps=150, snapshots=1)
    a, b = snaps[0].represent(pairs[3][0][:200, :200], pairs[3][1][:200, :200])
    assert ncc(a, b) > 0.5


def test_cli_style_renders_a_chain_folders_representation(tmp_path):
    from click.testing import CliRunner

    from styleunwarp.cli import main
    from styleunwarp.io import read_image

    s, t = _pair(4)
    write_tiff(tmp_path / "lom.tif", s)
    (tmp_path / "m").mkdir()
    write_chain_card(tmp_path / "m", Chain("none", "elastix"), Raw().save(tmp_path))
    r = CliRunner().invoke(main, ["style", str(tmp_path / "lom.tif"), "--model", str(tmp_path / "m"), "-o", str(tmp_path / "o.tif")])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(read_image(tmp_path / "o.tif").data, Raw().represent(s, s)[0])


def test_training_pairs_named_like_batch(tmp_path):
    from styleunwarp.style.data import find_pairs

    for i in range(2):
        s, t = _pair(i, (32, 32))
        write_tiff(tmp_path / f"a{i}_LOM.tif", s)
        write_tiff(tmp_path / f"a{i}_CBS.tif", t)
    write_tiff(tmp_path / "lonely_LOM.tif", s)
    found, problems = find_pairs(tmp_path)
    assert [f.name for f in found] == ["a0", "a1"] and found[0].cbs.name == "a0_CBS.tif"
    assert len(problems) == 1 and "lonely" in problems[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="sub-folders"):
        find_pairs(tmp_path / "empty")


def test_heldout_crop_avoids_an_empty_centre():
    from styleunwarp.style.heldout import busiest_window

    img = np.zeros((300, 300), np.float32)
    img[:100, 200:] = _texture((100, 100))  # structure only in the top-right corner
    assert busiest_window(img, 128) == (0, 172)
    flat = _texture((300, 300))
    assert busiest_window(flat, 128) == (86, 86)  # the centre unless another window is clearly busier
    cases = make_cases([("p", img, img)], 1, max_side=128)
    assert cases[0].target.std() > 10


def test_held_out_windows_grow_where_the_target_is_sparse():
    """Dense targets keep the smallest window; a few bright blobs on a dark ground get a larger one."""
    from styleunwarp.style.heldout import EVAL_SIDES, eval_side_for, structured_tiles

    dense = _texture((600, 600))
    assert structured_tiles(dense, 256) == 64 and eval_side_for([dense]) == EVAL_SIDES[0]
    rng = np.random.default_rng(2)
    sparse = np.zeros((600, 600), np.float32)
    for y, x in rng.integers(40, 560, (9, 2)):  # nine nuclei of about 50 px
        yy, xx = np.ogrid[-y:600 - y, -x:600 - x]
        sparse[yy ** 2 + xx ** 2 < 25 ** 2] = 200.0
    assert structured_tiles(sparse, 256) < structured_tiles(sparse, 512)
    assert eval_side_for([sparse]) > EVAL_SIDES[0]
    assert eval_side_for([sparse, dense, dense]) == EVAL_SIDES[0]  # the median over the held-out targets
    assert eval_side_for([np.zeros((600, 600))]) == EVAL_SIDES[-1]  # nothing anywhere: the largest window


# ----------------------------------------------------------------------------- colour stays colour
def _isoluminant_rgb(shape=(64, 64), seed=3) -> np.ndarray:
    """An RGB image whose structure is all in the chroma: its BT.709 luminance is one constant."""
    from styleunwarp.io import to_gray

    p = _texture(shape, seed) - 120.0  # about -100..100
    r, b = 128.0 + 0.6 * p, 128.0 - 0.6 * p
    rgb = np.stack([r, np.zeros(shape), b], axis=2)
    lum = to_gray(rgb.astype(np.float32))
    g_w = float(to_gray(np.array([[[0.0, 1.0, 0.0]]], np.float32))[0, 0])
    rgb[..., 1] = (128.0 - lum) / g_w  # fill green so the luminance is 128 everywhere
    assert np.ptp(to_gray(rgb.astype(np.float32))) < 1e-2
    return rgb.astype(np.float32)


def test_prepare_pair_gives_a_colour_model_the_colour(tmp_path):
    """A 3-channel model, trained here, sees the LOM's colour through prepare_pair (with and
    without pixel-size matching); a grey model gets grey."""
    from styleunwarp.io import normalize, read_image, to_gray
    from styleunwarp.pipeline.grid import match_pixel_size
    from styleunwarp.pipeline.pair import prepare_pair
    from styleunwarp.style import StyleTransfer, TrainConfig, train
    from styleunwarp.style.networks import Architecture

    rgb = _isoluminant_rgb()
    data = tmp_path / "pairs"
    for sub in ("lom", "cbs"):
        (data / sub).mkdir(parents=True)
    for i in range(2):
        write_tiff(data / "lom" / f"p{i}.tif", np.clip(np.roll(rgb, 7 * i, axis=1), 0, 255).round().astype(np.uint8))
        write_tiff(data / "cbs" / f"p{i}.tif", _texture((64, 64), 3 + i))
    models = {}
    for c in (3, 1):
        cfg = TrainConfig(mode="unet", target="cbs", epochs=1, crop=32, batch_size=2, val_fraction=0.0, steps_per_epoch=2,
                          arch=Architecture(in_channels=c, base=4, depth=2))
        train(data, tmp_path / f"m{c}", cfg, progress=False)
        models[c] = StyleTransfer.load(tmp_path / f"m{c}")
        assert models[c].arch.in_channels == c
    write_tiff(tmp_path / "cbs.tif", _texture((64, 64), 9), pixel_size=0.2)
    for lom_pixel in (None, 0.4):
        lom_file = tmp_path / f"lom_{lom_pixel}.tif"
        small = rgb if lom_pixel is None else rgb[::2, ::2]  # LOM pixel twice the CBS's
        write_tiff(lom_file, np.clip(small, 0, 255).round().astype(np.uint8), pixel_size=lom_pixel)
        colour = read_image(lom_file).data
        assert colour.ndim == 3
        matched, grid = match_pixel_size(colour, lom_pixel, 0.2)
        assert matched.shape == (64, 64, 3) and grid.factor == (2.0 if lom_pixel else 1.0)
        for c, net in models.items():
            prep = prepare_pair(lom_file, tmp_path / "cbs.tif", tmp_path / f"out{c}_{lom_pixel}", model=tmp_path / f"m{c}")
            seen_colour, seen_grey = normalize(net(matched)), normalize(net(to_gray(matched)))
            assert prep.styled.shape == (64, 64)
            np.testing.assert_allclose(prep.styled, seen_colour if c == 3 else seen_grey, atol=1e-3)
            if c == 3:  # the colour made a difference: the grey rendering of this image is another image
                assert np.abs(seen_colour - seen_grey).mean() > 5.0


def test_auto_trains_its_grey_level_translation_on_the_conditional_mean(tmp_path):
    """``train --target auto``'s ``cbs`` candidate is trained with the squared difference (an L1
    translation of a sparse target learns an empty image, docs/style.md); ``edges`` stays on L1."""
    from styleunwarp.style.auto import AutoConfig
    from styleunwarp.style.representations.translation import train_translation

    losses = AutoConfig().translation_loss
    assert losses["cbs"] == "l2" and losses["edges"] == "l1"
    pairs = _pairs_folder(tmp_path / "pairs", 2, (128, 128))
    rep, res = train_translation(pairs, tmp_path / "cbs", "cbs", 1, 0.05, loss=losses["cbs"])
    card = json.loads((tmp_path / "cbs" / "model.json").read_text())
    assert card["training"]["loss"].startswith("L2") and res["history"] and "val_mse" in res["history"][-1]
    a, b = rep.represent(*_pair(5, (128, 128)))
    assert a.shape == b.shape == (128, 128) and np.isfinite(a).all()


def test_a_boundary_map_translation_fine_tuned_from_the_shipped_model(tmp_path):
    """``train_translation(init=...)`` starts from the shipped model (its architecture, a grey source
    repeated to its 3 inputs) and its card says so; without ``init`` it trains a fresh network with
    the source's channels. ``train --target auto`` does the latter unless ``edges_from_shipped``
    (measured a tie, so off: docs/representations.md)."""
    from styleunwarp.style.auto import AutoConfig, _shipped_edges_folder
    from styleunwarp.style.representations.translation import train_translation

    shipped = _shipped_edges_folder()
    if shipped is None:
        pytest.skip("the shipped boundary-map model is not installed")
    assert not AutoConfig().edges_from_shipped
    pairs = _pairs_folder(tmp_path / "pairs", 2, (128, 128))
    rep, res = train_translation(pairs, tmp_path / "edges", "edges", 1, 0.05, init=shipped)
    card = json.loads((tmp_path / "edges" / "model.json").read_text())
    ship = json.loads((shipped / "model.json").read_text())
    assert card["architecture"] == ship["architecture"] and card["architecture"]["in_channels"] == 3
    assert Path(card["training"]["init"]["model"]).resolve() == (shipped / "model.safetensors").resolve()
    assert card["training"]["init"]["weights_sha256"] == ship["weights_sha256"]
    assert card["target"]["kind"] == "edges" and res["steps_done"] >= 1
    a, b = rep.represent(*_pair(5, (128, 128)))  # a grey source through the 3-channel network
    assert a.shape == b.shape == (128, 128) and np.isfinite(a).all() and a.std() > 0
    fresh, _ = train_translation(pairs, tmp_path / "fresh", "edges", 1, 0.05)
    fresh_card = json.loads((tmp_path / "fresh" / "model.json").read_text())
    assert fresh_card["architecture"]["in_channels"] == 1 and "init" not in fresh_card["training"]
