"""The second opinion: a model's next-best chains where its own result is not structure evidence, on a real shale pair."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from styleunwarp.errors import InputError
from styleunwarp.io import read_image, to_gray, write_tiff
from styleunwarp.pipeline.second_opinion import SUBFOLDER, ncc_on_representation, register_pair_verified
from styleunwarp.quality import tre
from styleunwarp.style.infer import DEFAULT_MODEL, models_dir
from styleunwarp.style.tournament import EVIDENCE_Z
from styleunwarp.style.chain import NO_CARD, TIED, Chain, alternatives, load_representation, write_chain_card
from styleunwarp.transform import ElasticTransform, affine_elastic, read_transform, write_elastic

from conftest import data_skip_reason, needs_data, real_data

SHALE = sorted(real_data("petrography-bse-se", "se/*.png"))
WEAK = Chain("none", "native", {"similarity": "ssd", "max_iter": 1})  # one step of SSD on raw BSE vs SE: stays where it starts
MIND = Chain("none", "native", {"similarity": "mind"})
SHIPPED = models_dir() / DEFAULT_MODEL


def _candidate(chain: Chain, tres: list[float]) -> dict:
    return {"chain": chain.label, **chain.as_dict(), "cases": len(tres), "within_5px": sum(t <= 5 for t in tres),
            "within_1.5px": sum(t <= 1.5 for t in tres), "median_tre_px": float(np.median(tres)), "tre_px": tres}


def test_alternatives_are_the_cards_next_best_loadable_chains(tmp_path):
    winner, nmi, shared = Chain("none", "elastix"), Chain("none", "native", {"similarity": "nmi"}), Chain("shared", "native")
    cands = [_candidate(winner, [0.5, 0.6]), _candidate(nmi, [0.9, 7.0]), _candidate(MIND, [0.7, 0.8]), _candidate(shared, [0.4, 0.5])]
    write_chain_card(tmp_path, winner, {"kind": "none"}, candidates=cands, representations={"none": {"kind": "none"}})
    assert [c.label for c in alternatives(tmp_path)] == [MIND.label, nmi.label]  # "shared" was not kept: not offered
    assert [c.label for c in alternatives(tmp_path, n=1)] == [MIND.label] and alternatives(tmp_path, n=0) == []
    assert alternatives(None) == [] and alternatives(tmp_path / "nowhere") == []
    assert load_representation(tmp_path, key="none").kind == "none"
    with pytest.raises(InputError, match="no representation 'shared'"):
        load_representation(tmp_path, key="shared")


def test_the_sharp_fit_of_a_winner_that_fits_on_blurred_maps_is_no_alternative(tmp_path):
    """train --target auto measures the winner again with its fine affine fit ending on blurred maps;
    where that won, the sharp fit of the same chain is the same registration, not a second opinion."""
    sharp = Chain("edges", "native")
    winner = replace(sharp, fine_sigmas=(4.0, 2.0))
    cands = [_candidate(sharp, [0.5, 0.7]), _candidate(MIND, [0.7, 0.9]), _candidate(winner, [0.4, 0.6])]
    write_chain_card(tmp_path, winner, {"kind": "edges"}, candidates=cands, winner=cands[2],
                     representations={"none": {"kind": "none"}, "edges": {"kind": "edges"}})
    assert [c.label for c in alternatives(tmp_path)] == [MIND.label]
    assert json.loads((tmp_path / "chain.json").read_text())["chain"]["fine_sigmas"] == [4.0, 2.0]
    assert "fine_sigmas" not in sharp.as_dict()  # cards of chains without it read as before


def test_an_alternative_that_tied_on_the_held_out_cases_is_marked(tmp_path):
    """Only the first alternative, only with the winner's counts (cases, within 5 px, within 1.5 px), and never in the card's chain entry."""
    winner, ncc = Chain("none", "native", {"similarity": "nmi"}), Chain("none", "native", {"similarity": "ncc"})
    cands = [_candidate(winner, [0.3, 0.5]), _candidate(MIND, [0.6, 0.9]), _candidate(ncc, [0.4, 1.2])]
    write_chain_card(tmp_path, winner, {"kind": "none"}, candidates=cands, winner=cands[0], representations={"none": {"kind": "none"}})
    assert [(c.label, c.every_pair) for c in alternatives(tmp_path)] == [(MIND.label, TIED), (ncc.label, "")]
    cands[1:] = [_candidate(MIND, [0.6, 1.9]), _candidate(ncc, [0.4, 1.7])]  # one case fewer within 1.5 px: told apart
    write_chain_card(tmp_path, winner, {"kind": "none"}, candidates=cands, winner=cands[0], representations={"none": {"kind": "none"}})
    assert [c.every_pair for c in alternatives(tmp_path)] == ["", ""]
    assert "every_pair" not in MIND.as_dict() and replace(MIND, every_pair=TIED) == MIND


def test_where_every_alternative_sees_what_the_winner_sees_another_representation_takes_the_last_place(tmp_path):
    """A raw winner whose next-best chains are raw too: they share its coarse search. The best chain of
    another representation that placed a held-out case within 5 px is offered last; one that placed none is not."""
    winner, nmi = Chain("none", "elastix"), Chain("none", "native", {"similarity": "nmi"})
    cbs, edges = Chain("cbs", "native"), Chain("edges", "native")
    reps = {"none": {"kind": "none"}, "cbs": {"kind": "cbs", "folder": "cbs"}, "edges": {"kind": "edges", "folder": "edges"}}
    cands = [_candidate(winner, [1.9, 2.5]), _candidate(MIND, [1.9, 2.5]), _candidate(nmi, [1.9, 2.6]),
             _candidate(edges, [1.9, 15.0]), _candidate(cbs, [3.8, 3.8])]
    write_chain_card(tmp_path, winner, {"kind": "none"}, candidates=cands, winner=cands[0], representations=reps)
    assert [(c.label, c.every_pair) for c in alternatives(tmp_path, every_representation=False)] == [(MIND.label, TIED), (cbs.label, "")]
    assert [c.label for c in alternatives(tmp_path, n=1, every_representation=False)] == [MIND.label]  # one place: the best, as before
    assert [c.label for c in alternatives(tmp_path, n=3, every_representation=False)] == [MIND.label, nmi.label, cbs.label]
    cands[-1] = _candidate(cbs, [9.0, 12.0])  # no held-out case within 5 px: not offered; edges (one) is
    write_chain_card(tmp_path, winner, {"kind": "none"}, candidates=cands, winner=cands[0], representations=reps)
    assert [c.label for c in alternatives(tmp_path, every_representation=False)] == [MIND.label, edges.label]
    cands[-2] = _candidate(edges, [8.0, 15.0])  # none of another representation did: the raw ranking stands
    write_chain_card(tmp_path, winner, {"kind": "none"}, candidates=cands, winner=cands[0], representations=reps)
    assert [c.label for c in alternatives(tmp_path, every_representation=False)] == [MIND.label, nmi.label]
    # a learned winner whose best alternative is raw already has another representation: the ranking stands
    cands = [_candidate(cbs, [0.5, 0.6]), _candidate(MIND, [0.7, 0.8]), _candidate(nmi, [0.8, 0.9]), _candidate(edges, [0.9, 1.0])]
    write_chain_card(tmp_path, cbs, reps["cbs"], candidates=cands, winner=cands[0], representations=reps)
    assert [c.label for c in alternatives(tmp_path, every_representation=False)] == [MIND.label, nmi.label]


def test_every_other_representation_follows_the_ranked_alternatives_once(tmp_path):
    """After the ranked alternatives, each representation the card can load that neither the winner nor they
    use, by its best-ranked chain, whatever it scored (a translation stopped after one missed case included);
    a representation the card cannot load is not offered, and none follows where no alternative is asked for."""
    winner, nmi = Chain("none", "elastix"), Chain("none", "native", {"similarity": "nmi"})
    cbs, edges, shared = Chain("cbs", "native"), Chain("edges", "native"), Chain("shared", "native")
    shared_elastix = Chain("shared", "elastix")
    reps = {"none": {"kind": "none"}, "cbs": {"kind": "cbs", "folder": "cbs"}, "edges": {"kind": "edges", "folder": "edges"},
            "shared": {"kind": "shared"}}
    cands = [_candidate(winner, [1.9, 2.5]), _candidate(MIND, [1.9, 2.5]), _candidate(nmi, [1.9, 2.6]),
             _candidate(shared_elastix, [1.9, 4.0]), _candidate(shared, [1.9, 4.1]), _candidate(edges, [1.9, 15.0]),
             _candidate(cbs, [7.9]), _candidate(Chain("lut", "native"), [1.0, 1.2])]
    write_chain_card(tmp_path, winner, {"kind": "none"}, candidates=cands, winner=cands[0], representations=reps)
    assert [c.label for c in alternatives(tmp_path)] == [MIND.label, shared_elastix.label, edges.label, cbs.label]
    assert [c.every_pair for c in alternatives(tmp_path)] == [TIED, "", "", ""]  # the followers never run on every pair
    assert [c.last_resort for c in alternatives(tmp_path)] == [False, False, True, True]
    assert "last_resort" not in alternatives(tmp_path)[-1].as_dict()
    assert [c.label for c in alternatives(tmp_path, n=1)] == [MIND.label, shared_elastix.label, edges.label, cbs.label]
    assert alternatives(tmp_path, n=0) == []


def _shifted_bse(shift: tuple[int, int]) -> np.ndarray:
    """A real shale BSE image shifted by ``shift`` (rows, columns) px, float32: the source of these tests."""
    se = SHALE[3]
    return ndimage.shift(to_gray(read_image(se.parent.parent / "bse" / se.name).data), shift, order=1, mode="nearest").astype(np.float32)


def _shifted_shale_pair(folder) -> tuple[np.ndarray, ElasticTransform]:
    """``folder/lom.tif`` (the BSE shifted by (4, -5) px), ``cbs.tif`` (its SE) and ``truth.txt``; returns the SE and the truth."""
    target = to_gray(read_image(SHALE[3]).data)
    write_tiff(folder / "lom.tif", _shifted_bse((4, -5)))
    write_tiff(folder / "cbs.tif", target.astype(np.float32))
    truth = affine_elastic(np.array([[1.0, 0.0, -5.0], [0.0, 1.0, 4.0]]), 4, target.shape)  # target pixel -> source pixel
    write_elastic(truth, folder / "truth.txt")
    return target, truth


@pytest.mark.skipif(not SHALE, reason=data_skip_reason("petrography-bse-se", "se/*.png"))
def test_a_result_without_structure_evidence_gets_a_second_opinion(tmp_path):
    """Raw BSE shifted by (4, -5) px against its SE: the model's (deliberately weak) chain stays
    where it starts and is no evidence; the card's alternative (native MIND) registers it, wins
    the structure duel and replaces the files; the truth confirms it is closer."""
    target, truth = _shifted_shale_pair(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    write_chain_card(model, WEAK, {"kind": "none"}, representations={"none": {"kind": "none"}},
                     alternatives=[MIND.as_dict(), Chain("none", "elastix").as_dict()])
    alts = alternatives(model)
    assert [c.label for c in alts] == [MIND.label, "none->elastix"]
    kw = dict(model=model, backend=WEAK.backend, backend_options=WEAK.backend_options, coarse="none", truth=tmp_path / "truth.txt")

    alone = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "alone", **kw)
    assert "second_opinion" not in alone.metrics and not alone.metrics["structure"]["aligned"]

    res = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "out", alternatives=alts, **kw)
    so = res.metrics["second_opinion"]
    assert so["kept"] == MIND.label and [t["chain"] for t in so["tried"]][1:] == [MIND.label], so  # stopped at the first aligned
    assert so["tried"][0]["chain"] == f"{WEAK.label} (the model's chain)" and not so["tried"][0]["aligned"]
    assert res.metrics["structure"]["aligned"] and res.metrics["backend_options"] == {"similarity": "mind"}
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["second_opinion"]["kept"] == MIND.label
    got = tre(read_transform(tmp_path / "out" / "direct_transf.txt"), truth, target.shape).mean
    assert got < 0.5 * alone.metrics["tre"]["mean"] and got < 2.0, (got, alone.metrics["tre"])
    assert (tmp_path / "out" / SUBFOLDER / "none-native-mind" / "metrics.json").is_file()

    # a result that is evidence already gets no second opinion
    direct = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "direct", alternatives=alts,
                                    **dict(kw, backend_options=MIND.backend_options))
    assert direct.metrics["structure"]["aligned"] and "second_opinion" not in direct.metrics
    assert not (tmp_path / "direct" / SUBFOLDER).exists()

    # an alternative that tied with the model's chain on the held-out cases runs on every pair,
    # evidence or not, and the structure duel keeps the better of the two
    tied = [replace(Chain("none", "elastix"), every_pair=TIED)]
    both = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "tie", alternatives=tied,
                                  **dict(kw, backend_options=MIND.backend_options))
    so = both.metrics["second_opinion"]
    assert "could not tell" in so["trigger"] and [t["chain"] for t in so["tried"]][1:] == ["none->elastix"], so
    assert so["tried"][0]["aligned"] and both.metrics["structure"]["aligned"]
    kept = max(so["tried"], key=lambda t: t["z"])
    assert (so["kept"] == "model chain") == kept["chain"].endswith("(the model's chain)"), so
    assert tre(read_transform(tmp_path / "tie" / "direct_transf.txt"), truth, target.shape).mean < 2.0


@pytest.mark.skipif(not SHALE, reason=data_skip_reason("petrography-bse-se", "se/*.png"))
def test_where_no_ranked_alternative_is_shown_aligned_another_representation_gets_its_turn(tmp_path):
    """Raw BSE shifted by (4, -5) px against its SE, a card whose winner and ranked alternative are
    both weak raw chains (no evidence), and a boundary-map representation (the shipped model's maps)
    that missed every held-out case: it runs after them, is shown aligned and replaces the result."""
    target, truth = _shifted_shale_pair(tmp_path)
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model / "shipped")
    weak2 = Chain("none", "native", {"similarity": "ncc", "max_iter": 1})
    maps = Chain("shipped", "native")
    cands = [_candidate(WEAK, [1.0, 9.0]), _candidate(weak2, [1.0, 9.5]), _candidate(maps, [9.0, 12.0])]
    write_chain_card(model, WEAK, {"kind": "none"}, candidates=cands, winner=cands[0],
                     representations={"none": {"kind": "none"}, "shipped": {"kind": "edges", "folder": "shipped"}})
    alts = alternatives(model, n=1)  # one ranked place: the weak raw chain; the maps follow it
    assert [c.label for c in alts] == [weak2.label, maps.label]
    assert [c.label for c in alternatives(model, n=1, every_representation=False)] == [weak2.label]
    kw = dict(model=model, backend=WEAK.backend, backend_options=WEAK.backend_options, coarse="none", truth=tmp_path / "truth.txt")
    res = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "out", alternatives=alts, **kw)
    so = res.metrics["second_opinion"]
    assert [t["chain"] for t in so["tried"]][1:] == [weak2.label, maps.label], so
    assert not so["tried"][1]["aligned"] and so["kept"] == maps.label, so
    assert res.metrics["structure"]["aligned"] and res.metrics["representation"] == "edges"  # the kind of the maps
    got = tre(read_transform(tmp_path / "out" / "direct_transf.txt"), truth, target.shape).mean
    start = tre(read_transform(tmp_path / "out" / SUBFOLDER / weak2.slug / "direct_transf.txt"), truth, target.shape).mean
    assert got < 2.0 and got < 0.5 * start, (got, start)

    # shifted by (2, -2) px the start is not shown aligned (its structure points 3 px off) but is evidence
    # (z about 4.5): the ranked alternative runs, the last resort does not, and the record says why
    write_tiff(tmp_path / "near.tif", _shifted_bse((2, -2)))
    kw["truth"] = None
    near = register_pair_verified(tmp_path / "near.tif", tmp_path / "cbs.tif", tmp_path / "near", alternatives=alts, **kw)
    so = near.metrics["second_opinion"]
    assert [t["chain"] for t in so["tried"]][1:] == [weak2.label] and not so["tried"][0]["aligned"], so
    assert so["tried"][0]["z"] >= EVIDENCE_Z and so["last_resorts"].startswith(f"not run ({maps.label})"), so
    assert not (tmp_path / "near" / SUBFOLDER / maps.slug).exists()


def test_a_style_model_without_a_chain_card_gets_a_training_free_chain_on_every_pair():
    from styleunwarp.style.chain import style_model_alternatives

    alts = style_model_alternatives()
    assert len(alts) == 1 and alts[0].every_pair == NO_CARD and alts[0].representation == "none"
    assert alts[0].backend in ("elastix", "native") and "every_pair" not in alts[0].as_dict()


@pytest.mark.slow
@pytest.mark.skipif(not SHALE, reason=data_skip_reason("petrography-bse-se", "se/*.png"))
def test_the_shipped_models_result_is_checked_against_a_training_free_chain_on_a_real_shale_pair(tmp_path):
    """BSE deformed by a small known rotation and shift against its SE, registered with the shipped
    (steel) style model through the native engine: the training-free second opinion runs (whether
    or not the model's result is evidence), and the structure duel keeps a result at most 0.6 px worse
    than the better of the two by the truth (measured 0.50: the duel cannot rank results half a pixel apart)."""
    from styleunwarp.style.chain import style_model_alternatives

    se = SHALE[5]
    target = to_gray(read_image(se).data)
    source = to_gray(read_image(se.parent.parent / "bse" / se.name).data)
    h, w = target.shape
    a = np.deg2rad(0.8)
    m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([w / 2, h / 2])
    shift = np.array([2.5, -1.5])
    # direct transform: target pixel (x, y) -> source position m @ ((x, y) - c) + c + shift
    direct = np.hstack([m, (centre + shift - m @ centre)[:, None]])
    truth = affine_elastic(direct, 4, target.shape)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # the moved source holds at direct(x, y) what the target holds at (x, y): sample the aligned source at the inverse
    inv = np.linalg.inv(np.vstack([direct, [0, 0, 1]]))[:2]
    bx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    by = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    moved = ndimage.map_coordinates(source, [by, bx], order=1, mode="nearest")
    write_tiff(tmp_path / "lom.tif", moved.astype(np.float32))
    write_tiff(tmp_path / "cbs.tif", target.astype(np.float32))
    write_elastic(truth, tmp_path / "truth.txt")
    kw = dict(model=None, backend="native", truth=tmp_path / "truth.txt")
    alone = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "alone", **kw)
    res = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "out", alternatives=style_model_alternatives(), **kw)
    so = res.metrics["second_opinion"]
    aligned = so["tried"][0]["aligned"]
    assert ("no chain card" in so["trigger"]) == bool(aligned) and len(so["tried"]) == 2, so  # runs whether or not the model's result is evidence
    alt = style_model_alternatives()[0]
    got = {
        "model": alone.metrics["tre"]["mean"],
        "alternative": tre(read_transform(tmp_path / "out" / SUBFOLDER / alt.slug / "direct_transf.txt"), truth, target.shape).mean,
        "kept": tre(read_transform(tmp_path / "out" / "direct_transf.txt"), truth, target.shape).mean,
    }
    # the duel's measured limit here: since the fine affine step fits a similarity, the model chain
    # reaches 1.45 px (MIND 0.0927) and elastix MI 1.95 px (0.0983), and the duel keeps elastix's
    # (six parameters: 1.40 px, 0.0984, a draw, the model's kept); docs/coarse.md, "Four parameters instead of six"
    assert got["kept"] <= min(got["model"], got["alternative"]) + 0.6, (got, so)
    assert (so["kept"] == "model chain") == (got["kept"] == pytest.approx(got["model"], abs=1e-6)), (got, so)
    # the shipped model adapts to the pair (its default) only where the duel keeps its result
    assert alone.metrics["adapt"]["combined"] == "mean" or alone.metrics["adapt"]["combined"].startswith("first only"), alone.metrics["adapt"]
    if so["kept"] == "model chain":  # adapted after the duel, and the adapted result met the alternative again
        assert res.metrics["adapt"] == alone.metrics["adapt"] and "before_adapting" in so["tried"][0], so
    elif "before_adapting" in so["tried"][0]:  # replaced while not shown aligned: adapted all the same, and replaced again
        assert not so["tried"][0]["before_adapting"]["aligned"], so
    else:  # replaced while shown aligned, before adapting: the adaptation was not paid for
        assert so["tried"][0]["aligned"], so
        assert res.metrics["adapt"]["combined"] == "not adapted" and "before it was adapted" in res.metrics["adapt"]["reason"]
        assert "adapt" not in res.metrics["seconds"], so
    # an adopted raw result is graded on the model chain's representation (the model's own folder holds it)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    alt_ncc = so["tried"][1]["styled_ncc_on_model_representation"]  # the alternative read on the model's terms too
    assert -1.0 <= alt_ncc <= 1.0 and so["tried"][0]["styled_ncc_after"] is not None, so
    # on real shale elastix's result reads about as well on the model chain's representation: the cross-check lets it compete
    from styleunwarp.pipeline.second_opinion import CROSS_MARGIN

    assert alt_ncc >= so["tried"][0]["styled_ncc_after"] - CROSS_MARGIN and "reads lower on the model chain" not in so["reason"], so
    if so["kept"] == "model chain":
        assert "graded_on" not in saved
    else:
        on = saved["graded_on"]
        assert alt_ncc == pytest.approx(on["styled_ncc_after"], abs=1e-6)
        styled, target = (read_image(tmp_path / "alone" / f).data for f in ("styled.tif", "target.tif"))
        expected = ncc_on_representation(styled, target, read_transform(tmp_path / "out" / "direct_transf.txt"))
        assert on["representation"] == "edges" and on["styled_ncc_after"] == pytest.approx(expected, abs=1e-4), on
        assert saved["grade_details"]["graded_on"] == "edges" and saved["grade_details"]["styled_ncc_after"] == on["styled_ncc_after"]


def test_a_result_is_measured_on_a_representation_through_its_saved_map():
    """:func:`ncc_on_representation`: the identity on an image and itself correlates fully, a 4 px shift
    less; a styled source made on the LOM resampled to the CBS pixel size (its ``GridMatch``, as
    ``metrics.json`` records it) is read
    through the map onto the original LOM, which the saved transforms refer to."""
    rng = np.random.default_rng(3)
    image = ndimage.gaussian_filter(rng.normal(size=(96, 96)), 3).astype(np.float32)
    assert ncc_on_representation(image, image, affine_elastic(np.eye(2, 3), 4, image.shape)) == pytest.approx(1.0, abs=1e-4)
    shifted = np.hstack([np.eye(2), [[4.0], [0.0]]])
    assert ncc_on_representation(image, image, affine_elastic(shifted, 4, image.shape)) < 0.8
    # the LOM had half the CBS resolution: target pixel x lies at original LOM pixel (x + 0.5) / 2 - 0.5
    to_original = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25]])
    direct = affine_elastic(to_original, 4, image.shape)
    from styleunwarp.pipeline.grid import GridMatch

    grid = GridMatch.from_dict(GridMatch(2.0, (48, 48), (96, 96), "LOM resampled by 2").to_dict())
    assert ncc_on_representation(image, image, direct, grid) == pytest.approx(1.0, abs=1e-3)
    assert ncc_on_representation(image, image, direct) < 0.8


def test_a_second_opinion_replaces_a_result_only_when_it_is_shown_aligned_or_the_result_is_no_evidence():
    """Winning the duel is not enough when neither result is shown aligned: an lom3 pair was moved
    from 1.70 to 23.7 px by elastix MI at z 4.6 against the model chain's 4.0 (docs/representations.md)."""
    from styleunwarp.pipeline.second_opinion import replaces

    model = {"mind": 0.01165, "z": 4.0, "aligned": False}
    elastix_far = {"mind": 0.01599, "z": 4.6, "aligned": False}
    assert not replaces(elastix_far, model)  # wins the duel, but is not shown aligned either
    assert replaces(dict(elastix_far, aligned=True), model)  # shown aligned: replaces
    assert replaces(elastix_far, {"mind": 0.0, "z": 1.2, "aligned": False})  # the incumbent is no evidence at all
    assert not replaces(dict(model, aligned=True), dict(elastix_far, aligned=True))  # loses the duel
    assert not replaces({"mind": 0.0161, "z": 4.6, "aligned": True}, {"mind": 0.0160, "z": 9.0, "aligned": True})  # a draw


def test_a_second_opinion_graded_worse_than_the_result_kept_does_not_replace_it():
    """blind seed 38 steel_SEM_003 as a user ran it (docs/representations.md): the model chain's
    result graded good (0.92 px), elastix MI graded poor (28.1 px) won the duel on MIND and was kept."""
    from styleunwarp.pipeline.second_opinion import replaces

    model = {"mind": 0.01306, "z": 8.96, "aligned": True}
    elastix = {"mind": 0.01919, "z": 5.62, "aligned": True}
    assert replaces(elastix, model)  # the duel alone
    assert not replaces(elastix, model, "poor", "good")
    assert not replaces(elastix, model, "decent", "good")
    assert replaces(elastix, model, "good", "good")  # shale: the winner graded as well
    assert replaces(elastix, model, "good", "decent")
    assert replaces(elastix, model, None, "good")  # a tier unknown: not compared


def test_a_lead_of_a_few_thousandths_does_not_replace():
    """blind seed 39 steel_SEM_002 as a user ran it (docs/representations.md): the model chain's
    result (0.83 px) and elastix MI's (4.13 px), both graded decent, MIND 0.01185 against 0.01397:
    the duel calls that a win (above its tie, 0.002), too small a lead to trade one result for another."""
    from styleunwarp.pipeline.second_opinion import REPLACE_MARGIN, replaces
    from styleunwarp.style.tournament import MIND_TIE, duel

    model = {"mind": 0.01185, "z": 5.70, "aligned": True}
    elastix = {"mind": 0.01397, "z": 8.68, "aligned": True}
    assert MIND_TIE < elastix["mind"] - model["mind"] <= REPLACE_MARGIN
    assert duel(elastix, model) == 1
    assert not replaces(elastix, model, "decent", "decent")
    assert replaces(dict(elastix, mind=model["mind"] + 0.0037), model, "good", "good")  # shale_0083's lead: replaces
    assert replaces(elastix, {"mind": None, "z": None, "aligned": False})  # the result kept has no agreement: the duel decides


def test_a_result_that_reads_much_lower_on_the_model_chains_representation_does_not_replace():
    """blind seed 54 steel_SEM_002 as a user ran it (docs/representations.md, "The duel checked on
    the model's terms"): elastix MI's result (4.58 px), shown aligned, won the structure duel against
    the model chain's adapted result (0.87 px), not shown aligned, and replaced it; on the model
    chain's representation it reads 0.223 against the model chain's 0.351. On real shale pairs, where
    elastix's results are the better ones, they read at most 0.04 lower there (seed 55, 12 pairs)."""
    from styleunwarp.pipeline.coarse import MIN_SCORE
    from styleunwarp.pipeline.second_opinion import CROSS_MARGIN, reads_worse, refusal, replaces

    model = {"mind": 0.00585, "z": 3.99, "aligned": False}
    elastix = {"mind": 0.0095, "z": 5.23, "aligned": True}
    assert replaces(elastix, model, "decent", "decent")  # the structure duel and the grader let it replace
    assert refusal(elastix, model, "decent", "decent", on_model=(0.223, 0.351)) == "model view"
    assert replaces(elastix, model, "decent", "decent", on_model=(0.307, 0.347))  # shale_0031 seed 55: 1.24 -> 0.55 px
    assert replaces(elastix, model, on_model=(0.351 - CROSS_MARGIN + 1e-3, 0.351))  # within the margin
    # a representation that does not show the pair says nothing (CLEM through the steel model: about 0)
    assert not reads_worse(-0.1, MIN_SCORE - 0.01) and reads_worse(MIN_SCORE - CROSS_MARGIN - 0.01, MIN_SCORE)
    assert not reads_worse(None, 0.46) and not reads_worse(0.2, None) and not reads_worse(float("nan"), 0.46)
    assert refusal(model, elastix, on_model=(0.1, 0.46)) == "lost"  # a duel lost is reported as lost


def _result(folder, representation: str, shift: tuple[float, float], z: float, moved: bool = True, backend: str = "native"):
    """A registration folder as ``register_pair`` leaves it: a 96 x 128 target, the direct map a shift by ``shift`` px."""
    from styleunwarp.pipeline.pair import PairResult

    folder.mkdir(parents=True)
    shape = (96, 128)
    write_elastic(affine_elastic(np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]]), 4, shape), folder / "direct_transf.txt")
    metrics = {"representation": representation, "backend": backend, "cbs_shape": list(shape), "lom_shape": [160, 200],
               "styled_ncc_after": 0.3, "coarse": {"chosen": {"method": "similarity" if moved else "identity"}},
               "elastic": {"kept": "elastic" if moved else "start"},
               "structure": {"mind": 0.1, "z": z, "aligned": False}}
    return PairResult(folder, None, None, None, metrics)


def test_two_representations_that_agree_where_no_result_is_evidence_replace_the_result_kept(tmp_path):
    """Sparse targets (EM against chromatin) leave right results below the structure evidence's bar;
    two representations that each searched their own start and land within 3 px of each other
    corroborate a kept result they include, else the one of them with more evidence replaces it."""
    from styleunwarp.pipeline.second_opinion import agreements, corroboration, outcome_of

    results = {"model": _result(tmp_path / "m", "none", (0.0, 0.0), z=-0.4, moved=False),
               "cbs": _result(tmp_path / "cbs", "cbs", (20.0, -12.0), z=1.4),
               "lut": _result(tmp_path / "lut", "lut", (21.5, -13.0), z=1.3),
               "far": _result(tmp_path / "far", "shared", (40.0, 5.0), z=2.6),
               "again": _result(tmp_path / "again", "cbs", (20.5, -12.5), z=2.5, backend="elastix"),  # cbs through another backend
               "still": _result(tmp_path / "still", "lut", (0.0, 0.0), z=0.1, moved=False)}
    outs = {k: outcome_of(k, r) for k, r in results.items()}

    assert agreements([outs["model"], outs["far"]], outs["cbs"]) == []  # nothing within 3 px
    assert agreements([outs["again"]], outs["cbs"]) == []  # one representation twice is not independent
    assert agreements([outs["model"]], outs["still"]) == []  # two results that stayed where they started
    found = agreements([outs["model"], outs["far"], outs["cbs"], outs["again"]], outs["lut"])
    assert [(o.chain, n.chain) for _, o, n in found] == [("cbs", "lut"), ("again", "lut")]
    assert all(1.0 < d < 3.0 for d, _, _ in found)
    pair, pick = corroboration(found, results, "model")
    assert pick == "again" and {pair[1].chain, pair[2].chain} == {"again", "lut"}  # the highest z of the agreeing results
    pair, pick = corroboration(found, results, "cbs")
    assert pick == "cbs" and {pair[1].chain, pair[2].chain} == {"cbs", "lut"}  # the kept result is corroborated
    assert corroboration(found, results, "far") is None  # it reads higher by structure than every agreeing result
    assert corroboration([], results, "model") is None


@needs_data("deepclem-em-fm", "em/*.png")
def test_on_em_against_chromatin_a_result_without_evidence_is_corroborated_by_another_representation(tmp_path):
    """A real CLEM patch cut as Lu et al. cut theirs (level 3: rotated 10-15 deg, shifted 4.8-7.2 %):
    raw elastix MI registers it within a few px, but EM against chromatin shares too little structure
    for that to be evidence. A lookup table fitted on two other aligned pairs, another representation
    that searches its own start, lands within 3 px of it: the model's result is corroborated, kept, and
    the next alternative is not run."""
    from conftest import DATASETS, data_root, load_benchmark
    from styleunwarp.style.representations.lut import IntensityMap
    from styleunwarp.transform import identity_elastic

    clem = data_root() / DATASETS["deepclem-em-fm"].folder  # the patches of bench_user_field.py --sets clem --seed 48, s7_2
    cases = load_benchmark("bench_asdelivered").rigid_patch_pairs(clem, "em", "fm", tmp_path / "cases", 49, ["s6.png", "s7.png"], 512, 4)
    case = next(c for c in cases if c["name"] == "s7_2")
    model = tmp_path / "model"
    model.mkdir()
    lut = IntensityMap.fit([(to_gray(read_image(clem / "em" / n).data), to_gray(read_image(clem / "fm" / n).data)) for n in ("s8.png", "s9.png")], 1)
    winner, table = Chain("none", "elastix"), Chain("lut", "native")
    write_chain_card(model, winner, {"kind": "none"}, representations={"none": {"kind": "none"}, "lut": lut.save(model)},
                     alternatives=[table.as_dict(), MIND.as_dict()])
    alts = alternatives(model)
    assert [c.label for c in alts] == [table.label, MIND.label]
    res = register_pair_verified(case["lom"], case["cbs"], tmp_path / "out", alternatives=alts, model=model, backend="elastix",
                                 truth=case["truth"])
    so = res.metrics["second_opinion"]
    assert so["tried"][0]["z"] < EVIDENCE_Z, so  # the premise: the raw structure cannot vouch for the model's result
    assert so["agreement"]["chains"] == [winner.label, table.label] and so["agreement"]["disagreement_px"] <= 3.0, so
    assert so["kept"] == "model chain" and "agrees with it within" in so["reason"], so
    assert [t["chain"] for t in so["tried"]][1:] == [table.label], so  # corroborated: native MIND was not run
    assert not (tmp_path / "out" / SUBFOLDER / MIND.slug).exists()
    start = tre(identity_elastic(4, (512, 512)), read_transform(case["truth"]), (512, 512)).mean
    assert res.metrics["tre"]["mean"] < 5.0 < 20.0 < start, (res.metrics["tre"], start, case["kind"])
