"""Style transfer: networks, tiled inference, weights, training, CLI, shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from styleunwarp.errors import InputError  # noqa: E402
from styleunwarp.io import read_image, write_tiff  # noqa: E402
from styleunwarp.style import (  # noqa: E402
    Architecture, PatchDiscriminator, StyleTransfer, TrainConfig, UNetGenerator, load_model, save_model, train,
)
from styleunwarp.style.infer import inference_network  # noqa: E402
from styleunwarp.style.data import find_pairs, normalize_input, sample_batch, LoadedPair  # noqa: E402
from styleunwarp.style.networks import init_weights  # noqa: E402
from styleunwarp.style.weights import new_card  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

TINY = Architecture(base=4, depth=2)


def _gen(arch: Architecture = TINY, seed: int = 0) -> UNetGenerator:
    torch.manual_seed(seed)
    g = UNetGenerator(arch)
    init_weights(g, gain=0.2)  # larger than pix2pix's 0.02 so that an untrained net shows structure
    # give BatchNorm non-trivial running statistics, as after training
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return g.eval()


def _image(shape=(96, 96), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from scipy.ndimage import gaussian_filter

    return (gaussian_filter(rng.normal(size=shape), 2) * 400 + 128).astype(np.float32)


# ----------------------------------------------------------------------------- networks
def test_generator_and_discriminator_shapes():
    g = _gen(Architecture(base=4, depth=3))
    y = g(torch.randn(2, 1, 64, 40))
    assert y.shape == (2, 1, 64, 40)
    assert float(y.detach().abs().max()) <= 1.0
    with pytest.raises(ValueError, match="multiple of 8"):
        g(torch.randn(1, 1, 60, 64))
    d = PatchDiscriminator(2, base=8)
    out = d(torch.randn(2, 1, 256, 256), torch.randn(2, 1, 256, 256))
    assert out.shape == (2, 1, 30, 30)  # the 70x70 PatchGAN's patch grid on 256² inputs
    g3 = UNetGenerator(Architecture(in_channels=3, base=4, depth=2)).eval()
    assert g3(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_architecture_validation():
    with pytest.raises(ValueError):
        Architecture(in_channels=2)
    with pytest.raises(ValueError):
        Architecture.from_dict({"base": 4, "bogus": 1})
    with pytest.raises(ValueError):
        Architecture.from_dict({"base": "4"})
    assert Architecture.from_dict(TINY.as_dict()) == TINY


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_inference_any_dtype_and_size(dtype):
    st = StyleTransfer(_gen(), tile=64, overlap=16)
    img = _image((50, 77))
    img = (img - img.min()) / (img.max() - img.min())
    scale = {np.uint8: 255, np.uint16: 65535}.get(dtype, 1.0)
    out = st((img * scale).astype(dtype))
    assert out.shape == (50, 77) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 255.0 and out.std() > 0.5
    # per-image normalisation: 8-bit, 16-bit and float versions of one image agree
    ref = st(img.astype(np.float64))
    assert np.abs(out - ref).mean() < 1.0


def test_inference_rgb_input():
    img = _image((40, 48))
    rgb = np.stack([img, img * 0.9, img * 0.8], axis=2)
    gray_model = StyleTransfer(_gen(), tile=64)
    assert gray_model(rgb).shape == (40, 48)
    rgb_model = StyleTransfer(_gen(Architecture(in_channels=3, base=4, depth=2)), tile=64)
    assert rgb_model(rgb).shape == (40, 48)
    assert rgb_model(img).shape == (40, 48)  # gray given to an RGB model is repeated
    with pytest.raises(InputError, match="constant"):
        gray_model(np.full((32, 32), 7.0))
    with pytest.raises(InputError, match="NaN"):
        gray_model(np.where(np.eye(32) > 0, np.nan, img[:32, :32]))
    with pytest.raises(InputError, match="shape"):
        gray_model(np.zeros((4, 4, 4, 4)))


def test_single_tile_equals_untiled_forward():
    g = _gen()
    img = _image((64, 64))
    st = StyleTransfer(g, tile=64, overlap=16, precision="fp32", views=1)
    x = normalize_input(img)
    with torch.inference_mode():
        direct = g(torch.from_numpy(x)[None])[0, 0].numpy()
    expected = np.clip((direct + 1) * 127.5, 0, 255)
    # the inference copy fuses BatchNorm into the convolutions and runs channels-last: the
    # same function, rounded differently (float32)
    np.testing.assert_allclose(st(img), expected.astype(np.float32), rtol=0, atol=1e-3)
    # bfloat16 convolutions (the default on CPUs that have them): close, and deterministic
    half = StyleTransfer(g, tile=64, overlap=16, precision="bf16", views=1)
    assert half.uses_bf16 and not st.uses_bf16
    out = half(img)
    assert np.abs(out - expected).max() < 2.0 and np.abs(out - expected).mean() < 0.5
    np.testing.assert_array_equal(out, half(img))
    with pytest.raises(ValueError, match="precision"):
        StyleTransfer(g, precision="fp16")
    with torch.inference_mode():
        fused = inference_network(g)(torch.from_numpy(x)[None].contiguous(memory_format=torch.channels_last))
    assert float((fused[0, 0] - torch.from_numpy(direct)).abs().max()) < 1e-5
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in inference_network(g).modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())  # the model itself is untouched


def test_views_average_the_dihedral_group_and_make_the_map_equivariant():
    """Eight views: the mean of the single-view outputs of the image turned and mirrored, each
    turned back; so turning or mirroring the input turns or mirrors the output. Four views
    (mirrors and the half turn) are equivariant under those; one view is the network as it is."""
    g = _gen()
    img = _image((64, 64), seed=5)
    one = StyleTransfer(g, tile=64, overlap=16, precision="fp32", views=1)
    four = StyleTransfer(g, tile=64, overlap=16, precision="fp32", views=4)
    eight = StyleTransfer(g, tile=64, overlap=16, precision="fp32", views=8)
    assert StyleTransfer(g).views == 8
    outs = []
    for k in range(4):
        for mirrored in (False, True):
            v = np.rot90(img, k)[:, ::-1] if mirrored else np.rot90(img, k)
            out = one._run(normalize_input(np.ascontiguousarray(v)))
            outs.append(np.rot90(out[:, ::-1] if mirrored else out, -k))
    expected = np.clip((np.mean(outs, 0) + 1) * 127.5, 0, 255)
    got = eight(img)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    np.testing.assert_allclose(eight(np.rot90(img)), np.rot90(got), rtol=0, atol=1e-3)
    np.testing.assert_allclose(eight(img[:, ::-1]), got[:, ::-1], rtol=0, atol=1e-3)
    np.testing.assert_allclose(four(img[::-1]), four(img)[::-1], rtol=0, atol=1e-3)
    np.testing.assert_allclose(four(np.rot90(img, 2)), np.rot90(four(img), 2), rtol=0, atol=1e-3)
    assert np.abs(one(np.rot90(img)) - np.rot90(one(img))).max() > 0.5  # an untrained network has no symmetry
    assert np.abs(four(np.rot90(img)) - np.rot90(four(img))).max() > 0.5  # four views do not cover the quarter turn
    with pytest.raises(ValueError, match="views"):
        StyleTransfer(g, views=3)


def _seam_score(out: np.ndarray, cuts: list[int]) -> float:
    """Mean |column step| at the tile cuts divided by the median column step elsewhere."""
    steps = np.abs(np.diff(out.astype(np.float64), axis=1)).mean(axis=0)  # steps[c-1] = |out[:, c] - out[:, c-1]|
    at = np.array([steps[c - 1] for c in cuts])
    return float(at.mean() / np.median(steps))


def test_tiled_matches_untiled_without_seams():
    g = _gen()
    img = _image((64, 192), seed=3)
    whole = StyleTransfer(g, tile=256, overlap=0, views=1)(img)  # fits in one tile (one view: the tiling alone)
    tiled = StyleTransfer(g, tile=64, overlap=32, views=1)(img)  # 5 tiles along x, blended
    diff = np.abs(tiled - whole)
    assert diff.mean() < 0.02 * whole.std(), diff.mean()
    # the tiles start at 0, 32, 64, 96, 128: the blended output has no step at any cut
    cuts = [32, 64, 96, 128]
    assert _seam_score(tiled, cuts) < _seam_score(whole, cuts) + 0.1
    # and the check is sensitive: abutting tiles (no overlap, no blending) do leave seams
    hard = StyleTransfer(g, tile=64, overlap=0, views=1)(img)
    assert _seam_score(hard, [64, 128]) > _seam_score(whole, [64, 128]) + 0.2
    assert np.abs(hard - whole).mean() > 5 * diff.mean()


def test_deterministic_and_batch():
    g = _gen()
    st = StyleTransfer(g, tile=64, overlap=16)
    img = _image((80, 100))
    a, b = st(img), st(img)
    np.testing.assert_array_equal(a, b)
    outs = st.batch([img, img[:40, :50]])
    np.testing.assert_array_equal(outs[0], a)
    assert outs[1].shape == (40, 50)
    assert not g.training


# ----------------------------------------------------------------------------- weights
def test_save_load_round_trip(tmp_path):
    g = _gen()
    card = new_card(TINY, validation={"l1": 1.0})
    w = save_model(tmp_path / "m", g, card)
    assert w.name == "model.safetensors" and (tmp_path / "m" / "model.json").is_file()
    card2 = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card2["normalization"]["method"] == "percentile" and card2["architecture"]["base"] == 4
    assert len(card2["weights_sha256"]) == 64
    g2, card3, path = load_model(tmp_path / "m")
    for k, v in g.state_dict().items():
        assert torch.equal(v, g2.state_dict()[k]), k
    img = _image((70, 70))
    np.testing.assert_array_equal(StyleTransfer(g, tile=64)(img), StyleTransfer.load(tmp_path / "m", tile=64)(img))
    # a bare weights file (no card beside it) loads from the card kept in its metadata
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(w.read_bytes())
    np.testing.assert_array_equal(StyleTransfer.load(bare, tile=64)(img), StyleTransfer(g, tile=64)(img))
    # the card file itself is a valid handle too
    assert StyleTransfer.load(tmp_path / "m" / "model.json").arch == TINY


def test_bad_weights_files(tmp_path):
    from safetensors.torch import save_file

    g = _gen()
    w = save_model(tmp_path / "ok", g, new_card(TINY))
    data = w.read_bytes()
    cases = {}
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    cases[trunc] = "safetensors"
    rnd = tmp_path / "random.safetensors"
    rnd.write_bytes(np.random.default_rng(0).bytes(5000))
    cases[rnd] = "safetensors"
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    cases[empty] = "safetensors"
    foreign = tmp_path / "foreign.safetensors"
    save_file({"fc.weight": torch.zeros(3, 3)}, str(foreign))
    cases[foreign] = "not a styleunwarp"
    # right format, wrong keys: a card saying depth 3 for depth-2 weights
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "model.safetensors").write_bytes(data)
    card = json.loads((tmp_path / "ok" / "model.json").read_text())
    card["architecture"]["depth"] = 3
    (wrong / "model.json").write_text(json.dumps(card))
    cases[wrong / "model.safetensors"] = "missing tensors"
    # wrong shapes: a card saying base 5
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    (shapes / "model.safetensors").write_bytes(data)
    card["architecture"]["depth"] = 2
    card["architecture"]["base"] = 5
    (shapes / "model.json").write_text(json.dumps(card))
    cases[shapes / "model.safetensors"] = "shape"
    # corrupt and foreign cards
    badjson = tmp_path / "badjson"
    badjson.mkdir()
    (badjson / "model.safetensors").write_bytes(data)
    (badjson / "model.json").write_text("{not json")
    cases[badjson / "model.json"] = "JSON"
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(data)
    (other / "model.json").write_text(json.dumps({"format": "something-else"}))
    cases[other / "model.json"] = "not a styleunwarp"
    # non-finite weights
    nan = tmp_path / "nan"
    sd = {k: v.clone() for k, v in g.state_dict().items()}
    sd["stem.0.weight"][0, 0, 0, 0] = float("nan")
    g_nan = _gen()
    g_nan.load_state_dict(sd)
    save_model(nan, g_nan, new_card(TINY))
    cases[nan / "model.safetensors"] = "NaN"
    # weights replaced behind the card's back (valid file, other values)
    swapped = tmp_path / "swapped"
    save_model(swapped, _gen(seed=1), new_card(TINY))
    (swapped / "model.safetensors").write_bytes(save_model(tmp_path / "other_w", _gen(seed=2), new_card(TINY)).read_bytes())
    cases[swapped / "model.safetensors"] = "sha256"
    for path, words in cases.items():
        target = path.parent if path.name in ("model.safetensors", "model.json") else path
        with pytest.raises(InputError, match=words) as err:
            StyleTransfer.load(target)
        assert err.value.path == str(path), (path, err.value)
    with pytest.raises(InputError, match="does not exist"):
        StyleTransfer.load(tmp_path / "nope")


def test_load_default_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEUNWARP_MODELS", str(tmp_path))
    with pytest.raises(InputError, match="not installed"):
        StyleTransfer.load_default()


# ----------------------------------------------------------------------------- training
def _pairs(root: Path, n: int = 3, size: int = 64) -> Path:
    from styleunwarp.synth import make_pair

    for sub in ("lom", "cbs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = make_pair((size, size), seed=100 + i, deform=False, grain_size=16, name=f"p{i}")
        write_tiff(root / "lom" / f"{p.name}.tif", p.lom)
        write_tiff(root / "cbs" / f"{p.name}.tif", p.cbs)
    return root


def test_find_pairs_folder_and_manifest(tmp_path):
    root = _pairs(tmp_path / "pairs", n=2, size=32)
    write_tiff(root / "lom" / "lonely.tif", np.ones((32, 32), np.float32))
    found, problems = find_pairs(root)
    assert [p.name for p in found] == ["p0", "p1"]
    assert len(problems) == 1 and "lonely" in problems[0]
    csv = tmp_path / "m.csv"
    csv.write_text("lom,cbs\npairs/lom/p0.tif,pairs/cbs/p0.tif\npairs/lom/x.tif,pairs/cbs/p1.tif\n")
    found, problems = find_pairs(csv)
    assert [p.name for p in found] == ["p0"] and "line 3" in problems[0]
    with pytest.raises(InputError, match="cbs"):
        find_pairs(root / "lom")


def test_sample_batch_applies_same_augmentation():
    x = np.arange(2 * 40 * 40, dtype=np.float32).reshape(1, 80, 40)[:, :40]
    pair = LoadedPair("a", x, x * 2)
    xb, yb = sample_batch([pair], np.random.default_rng(1), 16, 16)
    assert xb.shape == (16, 1, 16, 16)
    np.testing.assert_array_equal(yb, xb * 2)
    # rotations/flips are drawn: not every crop has the original orientation
    assert any((np.diff(c[0], axis=1) != 1).any() for c in xb)


def _cfg(**kw) -> TrainConfig:
    base = dict(mode="unet", epochs=3, seed=1, crop=32, batch_size=2, steps_per_epoch=6, lr=2e-3,
                val_fraction=0.34, arch=TINY)
    base.update(kw)
    return TrainConfig(**base)


def test_training_reduces_loss_checkpoints_and_resumes(tmp_path):
    pairs = _pairs(tmp_path / "pairs")
    full = train(pairs, tmp_path / "full", _cfg(), progress=False)
    hist = full["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3] and full["stopped"] == "done"
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert all(np.isfinite(h["val_l1"]) and -1 <= h["val_ssim"] <= 1 for h in hist)
    for f in ("model.safetensors", "model.json", "checkpoint_latest.pt", "history.json"):
        assert (tmp_path / "full" / f).is_file(), f
    card = json.loads((tmp_path / "full" / "model.json").read_text())
    assert card["training"]["mode"] == "unet" and card["validation"]["l1"] == min(h["val_l1"] for h in hist)
    assert card["training_data"]["validation"] and card["styleunwarp_version"]
    assert card["target"]["kind"] == "edges" and StyleTransfer.load(tmp_path / "full").target_kind == "edges"
    # interrupted after 2 epochs, then resumed to 3: identical to the uninterrupted run
    train(pairs, tmp_path / "part", _cfg(epochs=2), progress=False)
    res = train(pairs, tmp_path / "part", _cfg(epochs=3), resume=True, progress=False)
    assert [h["epoch"] for h in res["history"]] == [1, 2, 3]
    a = torch.load(tmp_path / "full" / "checkpoint_latest.pt", weights_only=True)["generator"]
    b = torch.load(tmp_path / "part" / "checkpoint_latest.pt", weights_only=True)["generator"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_gan_mode_and_time_limit(tmp_path):
    pairs = _pairs(tmp_path / "pairs", n=2)
    res = train(pairs, tmp_path / "gan", _cfg(mode="gan", target="cbs", epochs=1, steps_per_epoch=2, val_fraction=0.5),
                progress=False)
    assert StyleTransfer.load(tmp_path / "gan").target_kind == "cbs"
    ck = torch.load(tmp_path / "gan" / "checkpoint_latest.pt", weights_only=True)
    assert "discriminator" in ck and res["steps_done"] == 2
    assert "LSGAN" in json.loads((tmp_path / "gan" / "model.json").read_text())["training"]["loss"]
    # far more epochs than 3 s allow on any machine: the time limit must stop it
    res = train(pairs, tmp_path / "t", _cfg(epochs=100_000, max_minutes=0.05), progress=False)
    assert res["stopped"] == "time" and res["epochs_done"] < 100_000
    assert (tmp_path / "t" / "model.safetensors").is_file()
    StyleTransfer.load(tmp_path / "t")


def test_time_limit_progress_is_honest(tmp_path, capsys):
    """Under --max-minutes the bar's total is what fits in the time, and the last line counts a partial epoch."""
    import time as _time

    from styleunwarp.cli.train import summary_line
    from styleunwarp.style.train import _steps_within

    now = _time.monotonic()
    assert _steps_within(now + 10.2, 1.0, 5, 5, 0, 1000) == 6  # 8 steps of time, minus one epoch end
    assert _steps_within(now + 10.2, 1.0, 20, 20, 3, 1000) == 11
    assert _steps_within(now + 1e6, 1.0, 5, 5, 0, 40) == 40  # never beyond the epochs asked for
    pairs = _pairs(tmp_path / "pairs", n=2)
    res = train(pairs, tmp_path / "t", _cfg(epochs=100_000, max_minutes=0.05, steps_per_epoch=10**6), progress=True)
    err = capsys.readouterr().err
    last = [ln for ln in err.replace("\r", "\n").splitlines() if "step" in ln][-1]
    n = res["steps_done"]
    assert f"{n}/{n} " in last, last
    assert res["epochs_done"] == 0 and res["partial_steps"] == n > 0
    line = summary_line(res, "l1 1")
    assert line.startswith(f"stopped at the time limit: 0 complete epochs + {n}/{10**6} steps of epoch 1 ({n} steps)")
    assert "best epoch 1 (partial)" in line


def test_resume_rejects_corrupt_checkpoint(tmp_path):
    pairs = _pairs(tmp_path / "pairs", n=2, size=32)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "checkpoint_latest.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="checkpoint"):
        train(pairs, tmp_path / "m", _cfg(), resume=True, progress=False)


# ----------------------------------------------------------------------------- CLI
def test_cli_train_and_style(tmp_path):
    from click.testing import CliRunner

    from styleunwarp.cli import main

    pairs = _pairs(tmp_path / "pairs", n=2, size=32)
    write_tiff(pairs / "cbs" / "orphan.tif", np.ones((32, 32), np.float32))
    r = CliRunner().invoke(main, ["train", str(pairs), "--out", str(tmp_path / "m"), "--target", "edges", "--epochs", "1",
                                  "--crop", "32", "--batch-size", "2", "--steps-per-epoch", "2", "--base", "4",
                                  "--depth", "2", "--no-progress", "--val-fraction", "0.5", "--appearance", "0.5"])
    assert r.exit_code == 0, r.output
    assert "orphan" in r.output and "done: 1 complete epochs (2 steps)" in r.output
    assert json.loads((tmp_path / "m" / "model.json").read_text())["training"]["appearance"] == 0.5
    r = CliRunner().invoke(main, ["train", str(pairs), "--out", str(tmp_path / "auto"), "--appearance", "0.5"])
    assert r.exit_code == 2 and "--appearance" in r.output and "edges|cbs only" in r.output
    r = CliRunner().invoke(main, ["train", str(pairs), "--out", str(tmp_path / "auto"), "--align-weight", "1"])
    assert r.exit_code == 2 and "--align-weight" in r.output and "edges|cbs only" in r.output
    r = CliRunner().invoke(main, ["train", str(pairs), "--out", str(tmp_path / "auto"), "--loss", "l2"])
    assert r.exit_code == 2 and "--loss" in r.output and "edges|cbs only" in r.output
    assert not (tmp_path / "auto").exists()
    lom = pairs / "lom" / "p0.tif"
    r = CliRunner().invoke(main, ["style", str(lom), "--model", str(tmp_path / "m"), "-o", str(tmp_path / "one.tif")])
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "one.tif").data.shape == (32, 32)
    r = CliRunner().invoke(main, ["style", str(lom), str(pairs / "lom" / "p1.tif"), "--model",
                                  str(tmp_path / "m" / "model.safetensors"), "-o", str(tmp_path / "many")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["p0.tif", "p1.tif"]
    r = CliRunner().invoke(main, ["style", str(pairs / "cbs" / "p0.tif"), "--prepare-target", "--model",
                                  str(tmp_path / "m"), "-o", str(tmp_path / "target.tif")])
    assert r.exit_code == 0, r.output
    from styleunwarp.style.data import target_representation

    np.testing.assert_allclose(read_image(tmp_path / "target.tif").data,
                               target_representation(read_image(pairs / "cbs" / "p0.tif").data, "edges"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    r = CliRunner().invoke(main, ["style", str(lom), "--model", str(bad), "-o", str(tmp_path / "x.tif")])
    assert r.exit_code != 0 and "bad.safetensors" in r.output


# ----------------------------------------------------------------------------- shipped model
def test_shipped_model_styles_synthetic_lom_cbs_like():
    from styleunwarp.style.infer import DEFAULT_MODEL, models_dir
    from styleunwarp.synth import make_pair

    if not (models_dir() / DEFAULT_MODEL / "model.safetensors").is_file():
        pytest.skip(f"no shipped model in {models_dir() / DEFAULT_MODEL}")
    st = StyleTransfer.load_default()
    assert st.card["training_data"]["pairs"] >= 10
    raw_r, styled_r = [], []
    for seed in (987654, 987655):  # seeds never used for the shipped model's training pairs
        p = make_pair((256, 256), seed=seed, deform=False)
        target = st.prepare_target(p.cbs)  # what registration compares the styled LOM with
        styled = st(p.lom)
        raw_r.append(np.corrcoef(p.lom.ravel(), target.ravel())[0, 1])
        styled_r.append(np.corrcoef(styled.ravel(), target.ravel())[0, 1])
    assert np.mean(styled_r) > 0.5 and np.mean(styled_r) > np.mean(raw_r) + 0.4, (raw_r, styled_r)


def test_target_representations():
    from styleunwarp.style.data import target_representation
    from styleunwarp.synth import make_pair

    p = make_pair((64, 64), seed=5, deform=False, grain_size=16)
    c = target_representation(p.cbs, "cbs")
    e = target_representation(p.cbs, "edges")
    assert c.shape == e.shape == (64, 64) and c.dtype == e.dtype == np.float32
    assert 0 <= e.min() and e.max() <= 255 and 0 <= c.min() and c.max() <= 255
    # the boundary map is bright where the CBS grey changes, dark inside grains
    from scipy import ndimage

    step = ndimage.gaussian_gradient_magnitude(p.cbs.astype(np.float64), 1.5)
    assert np.corrcoef(e.ravel(), step.ravel())[0, 1] > 0.9
    with pytest.raises(ValueError):
        target_representation(p.cbs, "nope")
    st = StyleTransfer(_gen(), card={"target": {"kind": "edges"}})
    np.testing.assert_array_equal(st.prepare_target(p.cbs), e)
    assert StyleTransfer(_gen()).target_kind == "cbs"


def test_inference_threads_are_restored_and_do_not_change_the_output():
    g = _gen()
    img = _image((64, 64))
    before = torch.get_num_threads()
    one = StyleTransfer(g, tile=64)(img)
    assert torch.get_num_threads() == before
    torch.set_num_threads(2)
    try:
        np.testing.assert_array_equal(StyleTransfer(g, tile=64)(img), one)  # one thread whatever the caller's
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        StyleTransfer(g, threads=0)


def test_training_can_start_from_another_models_weights(tmp_path):
    """``init`` fine-tunes: with lr 0 the saved convolutions are the init model's; a model of
    another architecture or target is refused, naming the file."""
    pairs = _pairs(tmp_path / "pairs", n=2, size=32)
    train(pairs, tmp_path / "a", _cfg(epochs=1, steps_per_epoch=2), progress=False)
    train(pairs, tmp_path / "b", _cfg(epochs=1, steps_per_epoch=2, lr=0.0), init=tmp_path / "a", progress=False)
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    convs = [k for k in wa if k.endswith("weight") and wa[k].ndim == 4]
    assert convs and all(torch.equal(wa[k], wb[k]) for k in convs)
    card = json.loads((tmp_path / "b" / "model.json").read_text())
    card_a = json.loads((tmp_path / "a" / "model.json").read_text())
    assert str(tmp_path / "a") in card["training"]["init"]["model"]
    assert card["training"]["init"]["weights_sha256"] == card_a["weights_sha256"]
    # a resumed fine-tune keeps its lineage (the card written by any later best carries it)
    train(pairs, tmp_path / "b", _cfg(epochs=2, steps_per_epoch=2, lr=0.0), resume=True, progress=False)
    ckpt = torch.load(tmp_path / "b" / "checkpoint_latest.pt", weights_only=True)
    assert int(ckpt["epoch"]) == 2 and json.loads(ckpt["init"]) == card["training"]["init"]
    fresh = train(pairs, tmp_path / "c", _cfg(epochs=1, steps_per_epoch=2, lr=0.0), progress=False)
    wc = load_file(fresh["model"])
    assert not all(torch.equal(wa[k], wc[k]) for k in convs)
    other = Architecture(in_channels=1, base=8, depth=3)
    with pytest.raises(InputError, match="architecture") as err:
        train(pairs, tmp_path / "d", _cfg(arch=other), init=tmp_path / "a", progress=False)
    assert "model" in str(err.value)
    with pytest.raises(InputError, match="target"):
        train(pairs, tmp_path / "e", _cfg(target="cbs"), init=tmp_path / "a", progress=False)


def test_alignment_weight_trains_and_keeps_the_best_by_local_shift(tmp_path):
    """With ``align_weight`` the loss has the alignment term, every epoch records ``val_align_px``,
    and the model kept is the epoch with the shortest one (not the lowest L1)."""
    pairs = _pairs(tmp_path / "pairs", n=3, size=64)
    res = train(pairs, tmp_path / "a", _cfg(epochs=3, align_weight=1.0), progress=False)
    hist = res["history"]
    assert all(np.isfinite(h["val_align_px"]) and h["val_align_px"] >= 0 for h in hist)
    card = json.loads((tmp_path / "a" / "model.json").read_text())
    assert "align_weight*alignment_loss" in card["training"]["loss"] and card["training"]["align_weight"] == 1.0
    assert card["validation"]["align_px"] == min(h["val_align_px"] for h in hist)
    with pytest.raises(ValueError, match="align weight"):
        _cfg(align_weight=-1.0)
    # a checkpoint config written before the option existed still loads
    old = _cfg().as_dict()
    del old["align_weight"]
    assert TrainConfig.from_dict(old).align_weight == 0.0


def test_l2_loss_learns_the_conditional_mean_and_is_recorded(tmp_path):
    """``loss="l2"``: the squared difference, minimised by the mean where L1 is minimised by the median
    (a target that shows a structure in 3 of 10 cases: L1 predicts nothing there, L2 predicts 0.3); the
    model kept is the epoch with the lowest validation MSE, and the card says so."""
    from styleunwarp.style.train import pixel_loss

    y = torch.tensor([1.0, 1.0, 1.0] + [0.0] * 7)
    for kind, best in (("l1", 0.0), ("l2", 0.3)):
        c = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([c], lr=0.05)
        for _ in range(400):
            opt.zero_grad()
            pixel_loss(c.expand(10), y, kind).backward()
            opt.step()
        assert abs(c.item() - best) < 0.03, (kind, c.item())
    pairs = _pairs(tmp_path / "pairs")
    res = train(pairs, tmp_path / "l2", _cfg(loss="l2"), progress=False)
    hist = res["history"]
    assert all(np.isfinite(h["val_mse"]) for h in hist)
    card = json.loads((tmp_path / "l2" / "model.json").read_text())
    assert card["training"]["loss"].startswith("L2") and card["training"]["loss"].endswith("L2(gradients)")
    assert card["validation"]["mse"] == min(h["val_mse"] for h in hist)
    with pytest.raises(ValueError, match="loss"):
        _cfg(loss="huber")
    old = _cfg().as_dict()
    del old["loss"]  # a checkpoint written before the option: resumes as L1
    assert TrainConfig.from_dict(old).loss == "l1"


def _shale_pair():
    from conftest import data_skip_reason, real_data

    files = real_data("petrography-bse-se", "*/shale_0010.png")
    if len(files) != 2:
        pytest.skip(data_skip_reason("petrography-bse-se", "*/shale_0010.png"))
    bse, se = sorted(files)  # bse/ before se/
    return read_image(bse).data.astype(np.float32), read_image(se).data.astype(np.float32)


def test_an_aligned_pair_of_two_sizes_is_brought_onto_the_targets_grid_when_it_shows_one_field(tmp_path):
    """A real shale BSE/SE pair (aligned) whose source was recorded with half the pixels: resampled onto
    the target's grid by the pixel sizes, or by the aspect ratio without them; refused (naming the
    file) where the pixel sizes or the aspect ratio show another field."""
    from scipy import ndimage

    from styleunwarp.quality import ncc
    from styleunwarp.style.data import PairFiles, load_pair, source_on_target_grid

    src, tgt = _shale_pair()
    h, w = tgt.shape[:2]
    small = ndimage.zoom(src, 0.5, order=3, grid_mode=True, mode="grid-mirror")
    cases = {"px": (write_tiff(tmp_path / "small_px.tif", small, pixel_size=0.2), write_tiff(tmp_path / "tgt_px.tif", tgt, pixel_size=0.1)),
             "nopx": (write_tiff(tmp_path / "small.tif", small), write_tiff(tmp_path / "tgt.tif", tgt))}
    for kind, (s_path, t_path) in cases.items():
        moved, how = source_on_target_grid(read_image(s_path), read_image(t_path))
        assert moved.shape == tgt.shape and moved.dtype == np.float32, kind
        assert how is not None and ("by the pixel sizes" if kind == "px" else "by the aspect ratio") in how
        inner = (slice(8, h - 8), slice(8, w - 8))
        assert ncc(moved[inner], src[inner]) > 0.9, kind  # the same field, at the target's sampling
        pair = load_pair(PairFiles("p", s_path, t_path), 1, "edges")
        assert pair.x.shape == (1, h, w) and pair.y.shape == (1, h, w)

    same, how = source_on_target_grid(read_image(cases["nopx"][1]), read_image(cases["nopx"][1]))
    assert how is None and same.shape == tgt.shape

    wrong_px = write_tiff(tmp_path / "small_wrong_px.tif", small, pixel_size=0.3)  # 1.5x the target's field
    with pytest.raises(InputError, match="small_wrong_px.tif.*must show one field"):
        source_on_target_grid(read_image(wrong_px), read_image(cases["px"][1]))
    cropped = write_tiff(tmp_path / "cropped.tif", small[:, : small.shape[1] // 2])  # another aspect ratio, no pixel sizes
    with pytest.raises(InputError, match="cropped.tif.*another aspect ratio"):
        source_on_target_grid(read_image(cropped), read_image(cases["nopx"][1]))


def test_training_skips_an_unusable_pair_with_its_file_and_trains_on_the_others(tmp_path):
    pairs = _pairs(tmp_path / "pairs", n=2)
    write_tiff(pairs / "lom" / "flat.tif", np.full((96, 96), 7.0, np.float32))
    write_tiff(pairs / "cbs" / "flat.tif", _image(seed=9))
    res = train(pairs, tmp_path / "m", _cfg(epochs=1, steps_per_epoch=1, val_fraction=0.5), progress=False)
    assert any("flat.tif" in p and "constant" in p for p in res["skipped"])
    assert res["steps_done"] == 1 and (tmp_path / "m" / "model.safetensors").is_file()
    only_flat = tmp_path / "only"
    for sub in ("lom", "cbs"):
        (only_flat / sub).mkdir(parents=True)
    write_tiff(only_flat / "lom" / "flat.tif", np.full((96, 96), 7.0, np.float32))
    write_tiff(only_flat / "cbs" / "flat.tif", _image(seed=9))
    with pytest.raises(InputError, match="no usable aligned pair.*flat.tif"):
        train(only_flat, tmp_path / "m2", _cfg(epochs=1, steps_per_epoch=1), progress=False)
