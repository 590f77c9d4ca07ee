"""``train --target auto`` scores the chain ``register --model M`` runs (pipeline.chain), on held-out
cases as misaligned as real acquisitions (style.heldout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from styleunwarp.io import read_image, to_gray  # noqa: E402
from styleunwarp.pipeline.chain import check_for, register_representations  # noqa: E402
from styleunwarp.quality import tre  # noqa: E402
from styleunwarp.registration import PIPELINE_DEFAULTS, register  # noqa: E402
from styleunwarp.style.auto import evaluate  # noqa: E402
from styleunwarp.style.chain import Chain  # noqa: E402
from styleunwarp.style.heldout import MISALIGNED, Case, deform_source, make_cases  # noqa: E402
from styleunwarp.style.representations.raw import Raw  # noqa: E402
from styleunwarp.synth.deform import random_deformation  # noqa: E402

SHALE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "petrography-bse-se"
NCC = Chain("none", "native", {"similarity": "ncc"})


def _pair(shape=(128, 128), seed=5) -> tuple[np.ndarray, np.ndarray]:
    """Two modalities of one texture: the source is the target through a gamma, with noise."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    t = gaussian_filter(rng.normal(size=shape), 2.5)
    t = ((t - t.min()) / (t.max() - t.min()) * 200 + 20).astype(np.float32)
    s = 255.0 * (t / 255.0) ** 1.7 + rng.normal(0, 2, shape)
    return s.astype(np.float32), t


def _case(source, target, rotation_deg, shift_px, elastic_px=0.5, seed=0, scale_known=False) -> Case:
    d = random_deformation(np.random.default_rng(seed), target.shape, rotation_deg=(rotation_deg,) * 2,
                           shift_px=(shift_px,) * 2, elastic_px=(elastic_px,) * 2)
    return Case("c", deform_source(source, d), np.asarray(target, np.float32), d.truth, "test", scale_known)


def _start(c: Case) -> float:
    return c.start_tre()


@pytest.mark.slow
def test_evaluate_runs_the_coarse_step_that_register_runs():
    """A far start (12 px, 3 deg): the bare backend call stays there, the register chain gets it."""
    s, t = _pair()
    c = _case(s, t, 3.0, 12.0, scale_known=True)  # pixel sizes known: the coarse step keeps the scale (fast)
    assert _start(c) > 10
    bare = register(c.target, c.source, PIPELINE_DEFAULTS, backend="native", similarity="ncc")
    assert tre(bare.direct, c.truth, t.shape, t.shape).mean > 5  # what evaluate() measured before
    cache: dict = {}
    raw = Raw()
    res = evaluate(raw, NCC, [c], PIPELINE_DEFAULTS, coarse_cache=cache)
    assert res.tres[0] <= 1.5, res.tres
    assert res.coarse_seconds > 0
    again = evaluate(raw, Chain("none", "native", {"similarity": "ncc"}), [c], PIPELINE_DEFAULTS, coarse_cache=cache)
    assert again.coarse_seconds == 0 and again.tres == res.tres  # reused, same result
    (coarse,) = [hit[2] for hit in cache.values()]  # kept for the representation's other backends
    assert not coarse.is_identity and coarse.chosen.method == "similarity"
    src, tgt = raw.represent(c.source, c.target)
    out = register_representations(tgt, src, PIPELINE_DEFAULTS, backend="native",
                                   backend_options={"similarity": "ncc"}, coarse_result=coarse,
                                   check=check_for("none"))  # what register_pair runs on raw images
    assert tre(out.direct, c.truth, t.shape, t.shape).mean == pytest.approx(res.tres[0])


class _OneModality(Raw):
    """Both images of one modality, compared as they are: a representation made alike (``cbs``)."""

    kind = "cbs"


@pytest.mark.slow
def test_evaluate_reuses_the_fine_affine_step_across_backends():
    """The fine affine step runs once per representation and case, like the coarse step, and the
    chain given the cached step gives what it computes itself."""
    s, t = _pair(seed=11)
    c = _case(t + 0.0, t, 0.5, 2.0, scale_known=True)  # one modality, a small rotation and shift
    cache: dict = {}
    rep = _OneModality()
    res = evaluate(rep, NCC, [c], PIPELINE_DEFAULTS, coarse_cache=cache)
    assert res.coarse_seconds > 0
    ((_, _, coarse, fine),) = cache.values()
    assert fine is not None and fine.facts["kept"] == "refined", fine.facts
    again = evaluate(rep, Chain("cbs", "native", {"similarity": "ssd"}), [c], PIPELINE_DEFAULTS, coarse_cache=cache)
    assert again.coarse_seconds == 0  # neither step recomputed
    src, tgt = rep.represent(c.source, c.target)
    raw = (to_gray(c.target), to_gray(c.source))
    given = register_representations(tgt, src, PIPELINE_DEFAULTS, backend="native", backend_options={"similarity": "ncc"},
                                     coarse_result=coarse, fine_result=fine, raw=raw)
    own = register_representations(tgt, src, PIPELINE_DEFAULTS, backend="native", backend_options={"similarity": "ncc"},
                                   coarse_result=coarse, raw=raw)
    assert given.fine_affine == own.fine_affine | {"seconds": given.fine_affine["seconds"]}
    assert tre(given.direct, c.truth, t.shape, t.shape).mean == pytest.approx(res.tres[0])
    assert res.tres[0] < 1.0, res.tres


@pytest.mark.slow
def test_the_fit_ending_on_blurred_maps_is_a_variant_evaluated_from_the_same_coarse_step():
    """train --target auto scores the winner again with its fine affine fit ending on blurred maps:
    the variant reuses the case's coarse alignment, refits the start on the blurs it names, and the
    chain it scores is what register runs with a card that sets them."""
    from styleunwarp.pipeline.fine_affine import FINE_AFFINE_SIGMAS, FINE_AFFINE_SIGMAS_UNSEEN
    from styleunwarp.style.auto import fit_variant

    assert fit_variant(NCC) is None  # raw images: their fine affine step does not refit
    s, t = _pair(seed=11)
    c = _case(t + 0.0, t, 0.5, 2.0, scale_known=True)
    cache: dict = {}
    rep = _OneModality()
    plain = Chain("cbs", "native", {"similarity": "ncc"})
    variant = fit_variant(plain)
    assert variant.fine_sigmas == FINE_AFFINE_SIGMAS_UNSEEN and variant.label == plain.label
    assert fit_variant(variant) is None
    sharp = evaluate(rep, plain, [c], PIPELINE_DEFAULTS, coarse_cache=cache)
    blurred = evaluate(rep, variant, [c], PIPELINE_DEFAULTS, coarse_cache=cache)
    assert len(cache) == 2 and blurred.coarse_seconds > 0  # its own fine affine step
    (a, b) = cache.values()
    assert a[2] is b[2]  # one coarse alignment
    assert a[3].facts["fit_sigmas"] == list(FINE_AFFINE_SIGMAS) and b[3].facts["fit_sigmas"] == list(FINE_AFFINE_SIGMAS_UNSEEN)
    assert b[3].facts["kept"] == "refined", b[3].facts
    assert sharp.tres[0] < 1.0 and blurred.tres[0] < 1.0, (sharp.tres, blurred.tres)
    src, tgt = rep.represent(c.source, c.target)
    own = register_representations(tgt, src, PIPELINE_DEFAULTS, backend="native", backend_options={"similarity": "ncc"},
                                   coarse_result=b[2], raw=(to_gray(c.target), to_gray(c.source)),
                                   fine_sigmas=FINE_AFFINE_SIGMAS_UNSEEN)
    assert tre(own.direct, c.truth, t.shape, t.shape).mean == pytest.approx(blurred.tres[0])


def test_evaluate_never_makes_a_near_identity_case_worse():
    s, t = _pair(seed=7)
    c = _case(s, t, 0.2, 0.8, 0.3, seed=1)
    res = evaluate(Raw(), NCC, [c], PIPELINE_DEFAULTS)
    assert res.tres[0] <= _start(c) + 0.1, (res.tres, _start(c))


def test_heldout_cases_span_a_real_misalignment():
    s, t = _pair((200, 200))
    cases = make_cases([(f"p{i}", s, t) for i in range(6)], 3, seed=0)
    starts = {k: [_start(c) for c in cases if c.kind == k] for k in ("near-identity", "misaligned")}
    assert len(starts["near-identity"]) == 6 and max(starts["near-identity"]) < 2.5
    lo, hi = MISALIGNED["shift_fraction"]
    assert max(starts["misaligned"]) > 0.5 * hi * 200 and min(starts["misaligned"]) >= 0.5 * lo * 200
    assert all(not c.scale_known for c in cases) and make_cases([("p", s, t)], 1, scale_known=True)[0].scale_known


@pytest.mark.slow
@pytest.mark.skipif(not SHALE.is_dir(), reason="real data ../shared/data/petrography-bse-se absent")
def test_evaluate_far_start_on_real_shale():
    """Real BSE/SE shale: raw native NMI from a 12 px, 3 deg start, as register runs it."""
    name = sorted(p.name for p in (SHALE / "se").glob("*.png"))[0]
    s = to_gray(read_image(SHALE / "se" / name).data)[100:292, 100:292]
    t = to_gray(read_image(SHALE / "bse" / name).data)[100:292, 100:292]
    far, near = _case(s, t, 3.0, 12.0), _case(s, t, 0.2, 0.8, 0.3, seed=1)
    chain = Chain("none", "native", {"similarity": "nmi"})
    bare = register(far.target, far.source, PIPELINE_DEFAULTS, backend="native", similarity="nmi")
    assert tre(bare.direct, far.truth, t.shape, t.shape).mean > 5
    res = evaluate(Raw(), chain, [far, near], PIPELINE_DEFAULTS)
    assert res.tres[0] <= 1.5, res.tres
    assert res.tres[1] <= _start(near) + 0.1, (res.tres, _start(near))


def test_equal_results_tie_and_a_case_made_worse_than_its_start_loses():
    """Rounding noise does not decide between equal results; a chain that leaves a case farther than its
    start loses a tie in the counts; how far a failure failed does not decide (the earlier, training-free
    candidate wins), so a learned chain cannot win on failing a case 1 px nearer."""
    from styleunwarp.style.auto import Result

    starts = [1.3, 7.569, 1.233, 13.585]
    a = Result(Chain("none", "elastix"), [1.2969999, 7.569, 1.233, 13.585], starts)
    b = Result(Chain("shipped", "native"), [1.2970001, 7.569, 1.233, 120.13], starts)  # moved a failing case away
    c = Result(Chain("none", "native"), [1.297, 7.569, 1.233, 13.585], starts)
    assert b.worse == 1 and a.worse == 0
    assert max([a, b], key=lambda r: r.score) is a and max([b, a], key=lambda r: r.score) is a
    assert a.score == c.score and max([a, c], key=lambda r: r.score) is a  # a tie: the earlier candidate
    nearer = Result(Chain("shared", "native"), [1.297, 7.569, 1.233, 12.628], starts)  # CLEM, 2026-12-05
    assert nearer.score == a.score and max([a, nearer], key=lambda r: r.score) is a
    near_worse = Result(Chain("shared", "native"), [1.297, 4.9, 1.73, 13.585], starts)  # one more success, one case worse
    assert near_worse.worse == 1 and near_worse.score > a.score  # successes still come first
    assert Result(c.chain, [1.0, float("inf")], [1.0, 20.0]).score < Result(c.chain, [1.0, 18.0], [1.0, 20.0]).score


def test_never_worse_rule_reads_inverted_contrast_by_the_correlations_magnitude():
    """Raw images of two detectors with inverted contrast: a good MIND result makes the NCC more
    negative; the keep rule must keep it (it used to undo it and keep the start)."""
    s, t = _pair(shape=(128, 128), seed=9)
    inverted = (275.0 - s).astype(np.float32)
    c = _case(inverted, t, 1.0, 3.0, elastic_px=1.5, seed=2)
    start = _start(c)
    out = register_representations(c.target, c.source, PIPELINE_DEFAULTS, backend="native",
                                   backend_options={"similarity": "mind"}, coarse="none")
    got = tre(out.direct, c.truth, t.shape, t.shape).mean
    assert out.elastic["polarity"] == "inverted" and out.elastic["ncc_start"] > 0, out.elastic
    assert out.elastic["kept"] == "elastic", out.elastic
    assert "|NCC|" in out.elastic["reason"], out.elastic  # the record says which number it compared
    assert got < 1.0 < start, (got, start)


@pytest.mark.skipif(not SHALE.is_dir(), reason="real data ../shared/data/petrography-bse-se absent")
def test_an_elastic_result_at_chance_gives_the_start_back():
    """``chance_check``: a kept elastic result whose source, as recorded, agrees with the target no better
    than chance by structure is undone (never worse than the start); one of a real aligned BSE/SE pair stays."""
    from styleunwarp.pipeline.chain import ELASTIC_MIN_STRUCTURE_Z, chance_check
    from styleunwarp.transform import identity_elastic

    names = sorted(p.name for p in (SHALE / "se").glob("*.png"))[:2]
    bse = [to_gray(read_image(SHALE / "bse" / n).data) for n in names]
    se = [to_gray(read_image(SHALE / "se" / n).data) for n in names]
    a = np.eye(2, 3)
    direct = identity_elastic(4, bse[0].shape)
    for source, expect in ((bse[0], "elastic"), (bse[1], "start")):  # its own BSE; another field's
        kept = {"kept": "elastic", "reason": "the representations agree better"}
        outcome = (direct, None, np.ones_like(se[0]), kept)
        _, _, _, facts = chance_check(se[0], np.zeros_like(source), a, outcome, raw=(se[0], source))
        assert facts["kept"] == expect, facts
        assert facts["structure_z_on"] == "raw images"
        assert (facts["structure_z"] >= ELASTIC_MIN_STRUCTURE_Z) == (expect == "elastic")
        if expect == "start":
            assert facts["refused"] == "at chance" and "no better than chance" in facts["reason"]
    refused = ({"kept": "start"},)
    assert chance_check(se[0], bse[1], a, (direct, None, se[0], *refused), raw=None)[3] == {"kept": "start"}
