"""train --unaligned: the trust rule on real transform files, pseudo-aligned pairs, the loop end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from styleunwarp.io import read_image, write_tiff
from styleunwarp.style.trust import Outcome, disagreement_px, verdict
from styleunwarp.transform import affine_elastic, write_elastic


def _outcome(root: Path, name: str, shift: float, *, rep="none", backend="native", moved=True, ncc=0.2,
             shape=(80, 80), source_shape=(80, 80)) -> Outcome:
    """A registration folder as register_pair leaves it: its direct map (a shift) and metrics."""
    d = root / name
    d.mkdir(parents=True)
    write_elastic(affine_elastic(np.array([[1.0, 0.0, shift], [0.0, 1.0, 0.0]]), 4, shape), d / "direct_transf.txt")
    m = {"cbs_shape": list(shape), "lom_shape": list(source_shape), "styled_ncc_after": ncc,
         "transform": {"folded_fraction": 0.0, "consistency_error": 0.1},
         "coarse": {"chosen": {"method": "similarity" if moved else "identity"}},
         "elastic": {"kept": "start"}, "seconds": {"total": 1.0}, "tre": {"mean": 99.0, "p95": 99.0}}
    (d / "metrics.json").write_text(json.dumps(m))
    o = Outcome.read(f"{rep}->{backend}[{name}]", rep, backend, d)
    assert o is not None
    return o


def test_trust_needs_two_independent_chains_that_agree(tmp_path):
    a = _outcome(tmp_path, "a", 10.0, backend="elastix")
    b = _outcome(tmp_path, "b", 11.0, rep="shipped", backend="native")
    far = _outcome(tmp_path, "far", 16.0, rep="shipped")
    same = _outcome(tmp_path, "same", 10.5, backend="elastix")  # another elastix run: not independent
    assert disagreement_px(a, b) == pytest.approx(1.0, abs=0.05)
    assert verdict([a, b]).trusted and "agree within 1.00 px" in verdict([a, b]).reason
    assert not verdict([a, far]).trusted and "disagree by 6.00 px" in verdict([a, far]).reason
    assert not verdict([a, same]).trusted
    assert verdict([far, a, b]).trusted  # the agreeing two are found among three
    assert a.tier == "bad"  # graded from the NCC (0.2) without the truth: the metrics' TRE (poor) is never read


def test_one_representation_through_two_backends_needs_the_graders_word(tmp_path):
    """They share the coarse step (a wrong coarse alignment too): both must be graded decent or better."""
    a = _outcome(tmp_path, "a", 10.0, backend="elastix")
    b = _outcome(tmp_path, "b", 10.5, backend="native")
    assert a.tier == b.tier == "bad" and not verdict([a, b]).trusted
    g1 = _outcome(tmp_path, "g1", 10.0, backend="elastix", ncc=0.5)
    g2 = _outcome(tmp_path, "g2", 10.5, backend="native", ncc=0.45)
    v = verdict([g1, g2])
    assert v.trusted and set(v.agreeing) == {g1.chain, g2.chain}


def test_two_chains_that_both_kept_the_identity_prove_nothing(tmp_path):
    a = _outcome(tmp_path, "a", 0.0, backend="elastix", moved=False)
    b = _outcome(tmp_path, "b", 0.0, rep="shipped", backend="native", moved=False, ncc=0.9)
    assert not verdict([a, b]).trusted
    good = verdict([a, b], rule="agree-or-good")  # a single chain the grader calls good, when asked for
    assert good.trusted and good.chosen is b and "graded good" in good.reason
    with pytest.raises(ValueError):
        verdict([a, b], rule="nope")


def test_pseudo_pair_is_the_source_on_the_target_grid_cropped_to_its_overlap(tmp_path):
    from styleunwarp.pipeline.pairing import PairSpec
    from styleunwarp.style.unaligned import write_pseudo_pair
    from styleunwarp.transform import warp_image

    rng = np.random.default_rng(0)
    lom = (rng.random((80, 80, 3)) * 255).astype(np.uint8)  # colour
    cbs = (rng.random((80, 80)) * 255).astype(np.float32)
    write_tiff(tmp_path / "c.tif", cbs)
    o = _outcome(tmp_path, "reg", 10.0)
    write_tiff(o.folder / "registered.tif", warp_image(lom, o.direct, (80, 80)))
    assert write_pseudo_pair(PairSpec("p", tmp_path / "l.tif", tmp_path / "c.tif"), o, tmp_path / "pairs")
    s, t = read_image(tmp_path / "pairs" / "lom" / "p.tif").data, read_image(tmp_path / "pairs" / "cbs" / "p.tif").data
    assert s.shape[:2] == t.shape[:2] and s.ndim == 3 and s.shape[1] <= 70  # the 10 px the source lacks are cut
    np.testing.assert_allclose(t, cbs[:, : t.shape[1]])
    assert np.abs(s[5:-5, 5:-5].astype(float) - lom[5:-5, 15:15 + t.shape[1] - 10].astype(float)).mean() < 2
    tiny = _outcome(tmp_path, "tiny", 60.0)
    assert not write_pseudo_pair(PairSpec("q", tmp_path / "l.tif", tmp_path / "c.tif"), tiny, tmp_path / "pairs2")


def _unaligned_folder(root: Path, n: int, side: int = 96) -> Path:
    """Two-modality pairs (a gamma and noise), each source moved by a known smooth deformation;
    plus a corrupt pair and a file without a partner."""
    from scipy.ndimage import gaussian_filter

    from styleunwarp.style.heldout import make_cases

    root.mkdir(parents=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        t = gaussian_filter(rng.normal(size=(side, side)), 2.5)
        t = ((t - t.min()) / (t.max() - t.min()) * 200 + 20).astype(np.float32)
        s = (255.0 * (t / 255.0) ** 1.7 + rng.normal(0, 2, t.shape)).astype(np.float32)
        c = make_cases([(f"p{i}", s, t)], 2, seed=5)[1]
        write_tiff(root / f"p{i}_LOM.tif", c.source)
        write_tiff(root / f"p{i}_CBS.tif", c.target)
    (root / "broken_LOM.tif").write_bytes(b"not an image")
    write_tiff(root / "broken_CBS.tif", np.ones((side, side), np.float32))
    (root / "lonely_LOM.tif").write_bytes(b"x")
    return root


@pytest.mark.slow
def test_train_unaligned_learns_resumes_and_register_uses_it(tmp_path):
    """The loop end to end on real files: round 0 trusts the pairs two chains agree on, a round
    trains on them, the card tells the story; a rerun recomputes nothing; register --model works."""
    pytest.importorskip("torch")
    pytest.importorskip("itk")
    from click.testing import CliRunner

    from styleunwarp.cli import main
    from styleunwarp.style.unaligned import UnalignedConfig, train_unaligned

    pairs = _unaligned_folder(tmp_path / "pairs", 3)
    # a generous budget: the loop ends by itself (every pair trusted -> one training round, candidates
    # "none" only, so no network is trained); a tight one would make the test depend on the machine's load
    out = tmp_path / "m"
    cfg = UnalignedConfig(max_minutes=20.0, kinds=("none",), starting=("none->elastix", "none->native[similarity=mind]"),
                          cases_per_pair=1, min_train_minutes=0.5)
    card = train_unaligned(pairs, out, cfg)
    ua = card["unaligned"]
    assert ua["learned_without_aligned_pairs"] and sorted(ua["starting_chains"]) == sorted(cfg.starting)
    assert [f["name"] for f in ua["files"]] == ["broken", "p0", "p1", "p2"]
    assert any("lonely_LOM.tif" in s for s in ua["skipped_files"]) and any("broken_LOM.tif" in s for s in ua["skipped_files"])
    rows = ua["rounds"]
    assert rows[0]["round"] == 0 and rows[0]["pairs"] == 3 and rows[0]["trusted"] >= 2, rows
    assert len(rows) >= 2 and ua["delivered"]["round"] >= 1 and ua["warning"] is None, ua
    assert (out / "rounds" / "00" / "pairs" / "lom").is_dir() and (out / "chain.json").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}

    r = CliRunner().invoke(main, ["train", str(pairs), "--unaligned", "--out", str(out), "--max-minutes", "20"])
    assert r.exit_code == 0, r.output
    assert "round 0: finished before, read back" in r.output and "round 1: finished before" in r.output
    assert "trusted" in r.output and "broken_LOM.tif" in r.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == stamps  # nothing recomputed
    again = json.loads((out / "chain.json").read_text())["unaligned"]
    assert again["rounds"] == rows
    assert (again["delivered"]["round"], again["delivered"]["chain"]) == (ua["delivered"]["round"], ua["delivered"]["chain"])

    r = CliRunner().invoke(main, ["register", str(pairs / "p0_LOM.tif"), str(pairs / "p0_CBS.tif"), "--model", str(out),
                                  "--out", str(tmp_path / "reg")])
    assert r.exit_code == 0, r.output
    assert "model chain" in r.output and (tmp_path / "reg" / "metrics.json").is_file()


def test_train_unaligned_names_a_bad_pairs_argument(tmp_path):
    from click.testing import CliRunner

    from styleunwarp.cli import main

    (tmp_path / "x.txt").write_text("hi")
    r = CliRunner().invoke(main, ["train", str(tmp_path / "x.txt"), "--unaligned", "--out", str(tmp_path / "m")])
    assert r.exit_code != 0 and "x.txt" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["train", str(tmp_path / "empty"), "--unaligned", "--out", str(tmp_path / "m")])
    assert r.exit_code != 0 and "no LOM/CBS pair" in r.output


def test_progress_eta_names_the_round_and_the_budgets_end():
    import time

    from styleunwarp.style.unaligned import Progress

    p = Progress(print, seconds=[30.0, 90.0, 60.0], left=4, deadline=time.monotonic() + 600.0)
    text = p.eta()
    assert text.startswith("4 left in this round, ETA 4.0 min; the run ends by ")
    assert text.endswith("at the latest (10 min of budget left)")
    assert Progress(print).eta() == "ETA unknown"
