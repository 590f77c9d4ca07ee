"""The grader never claims more than the chain showed on the held-out cases of its own field
(``quality.heldout_cap``): what ``train`` measured is read from the model card, recorded in
``metrics.json`` and heard by the verdict, on a real shale pair."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from styleunwarp.cli import main
from styleunwarp.cli.options import verdict_lines
from styleunwarp.io import read_image, to_gray, write_tiff
from styleunwarp.pipeline.pair import register_pair
from styleunwarp.quality import HELDOUT_KEY, grade, grade_details, grade_without_truth, heldout_cap
from styleunwarp.style.chain import Chain, heldout_result, registration_heldout, write_chain_card

from conftest import data_skip_reason, real_data

SHALE = sorted(real_data("petrography-bse-se", "se/*.png"))
MIND = Chain("none", "native", {"similarity": "mind"})
ELASTIX = Chain("none", "elastix")


def _entry(chain: Chain, tres: list[float]) -> dict:
    return {"chain": chain.label, **chain.as_dict(), "cases": len(tres), "within_5px": sum(t <= 5 for t in tres),
            "within_1.5px": sum(t <= 1.5 for t in tres), "median_tre_px": float(np.median(tres)), "tre_px": tres}


def _card(folder, winner_tres: list[float], *, candidates: list[dict] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_chain_card(folder, MIND, {"kind": "none"}, winner=_entry(MIND, winner_tres),
                     candidates=[_entry(MIND, winner_tres), *candidates], representations={"none": {"kind": "none"}})


def test_the_held_out_result_of_a_chain_is_read_from_its_card(tmp_path):
    """The winner's entry for the card's chain; for another chain its best-ranked candidate entry;
    nothing for a chain the card never measured, a raw registration's other backend options, or a
    model without a card."""
    _card(tmp_path / "m", [0.4, 0.6, 0.5], candidates=[_entry(ELASTIX, [4.0, 6.0, 5.5]), _entry(ELASTIX, [1.0, 1.2, 0.9])])
    got = heldout_result(tmp_path / "m", MIND)
    assert got == {"chain": MIND.label, "cases": 3, "within_5px": 3, "within_1.5px": 3, "median_tre_px": 0.5}
    assert heldout_result(tmp_path / "m", ELASTIX)["median_tre_px"] == 1.0  # the better of its two entries
    assert heldout_result(tmp_path / "m", Chain("none", "native", {"similarity": "nmi"})) is None
    assert registration_heldout(tmp_path / "m", "none", None, "elastix", {})["chain"] == ELASTIX.label
    assert registration_heldout(tmp_path / "m", "model", None, "native", {"similarity": "mind", "max_iter": 3}) is None
    (tmp_path / "style").mkdir()
    assert heldout_result(tmp_path / "style", MIND) is None and heldout_result(None, MIND) is None


def test_the_held_out_median_caps_the_tier_the_grader_gives():
    """Median over 3 px: at most bad; over 1.5 px: at most decent; within 1.5 px, one case, or none: no cap.
    A cap never raises a tier, and the console says where it came from."""
    good = {"styled_ncc_after": 0.55, "elastic": {"kept": "elastic"}, "transform": {"consistency_error": 0.4, "folded_fraction": 0.0}}
    assert grade_without_truth(good) == "good"

    def held(med: float, cases: int = 4) -> dict:
        return {**good, HELDOUT_KEY: {"chain": MIND.label, "cases": cases, "within_5px": cases, "within_1.5px": 0, "median_tre_px": med}}

    assert [grade_without_truth(held(m)) for m in (0.8, 1.5, 2.2, 3.0, 4.4, 40.0)] == ["good", "good", "decent", "decent", "bad", "bad"]
    assert heldout_cap(held(4.4, cases=1)) is None and grade_without_truth(held(4.4, cases=1)) == "good"
    poor = {**held(2.2), "styled_ncc_after": 0.05}
    assert grade_without_truth(poor) == "poor" and grade_details(poor)["capped_by_heldout"] is False
    m = held(4.4)
    m = {**m, "tier": grade(m)[0], "grade_source": "grader", "grade_details": grade_details(m)}
    assert m["tier"] == "bad" and m["grade_details"]["capped_by_heldout"] is True
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert line.startswith("verdict: BAD") and "4 held-out cases" in line and "4.40 px" in line, line
    truth = {**m, "tre": {"mean": 0.5, "p95": 0.9}}
    assert grade(truth) == ("good", "tre")  # the truth, where given, is never capped


@pytest.mark.skipif(not SHALE, reason=data_skip_reason("petrography-bse-se", "se/*.png"))
def test_a_registration_records_its_chains_held_out_result_and_the_verdict_hears_it(tmp_path):
    """Real shale BSE shifted by (4, -5) px onto its SE with native MIND: the result is aligned either
    way; with a card whose chain placed its held-out cases 4.2 px off at the median, the verdict is
    bad and says why (the command line, as a user runs it); with a card at 0.5 px, the same
    registration is graded on its own numbers."""
    se = SHALE[3]
    target = to_gray(read_image(se).data)
    source = ndimage.shift(to_gray(read_image(se.parent.parent / "bse" / se.name).data), (4, -5), order=1, mode="nearest")
    write_tiff(tmp_path / "lom.tif", source.astype(np.float32))
    write_tiff(tmp_path / "cbs.tif", target.astype(np.float32))
    kw = dict(backend=MIND.backend, backend_options=MIND.backend_options, coarse="none")

    _card(tmp_path / "weak", [4.2, 3.9, 6.0, 1.1])
    run = CliRunner().invoke(main, ["register", str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--model", str(tmp_path / "weak"),
                                    "--coarse", "none", "--no-second-opinion", "--out", str(tmp_path / "out_weak")])
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert "model chain: none -> native; on train's 4 held-out cases: 1 within 1.5 px, 3 within 5 px, median TRE 4.05 px" in lines, lines
    verdict = next(line for line in lines if "verdict:" in line)
    assert "verdict: BAD" in verdict and "4 held-out cases of the field at a median of 4.05 px" in verdict, verdict
    weak = json.loads((tmp_path / "out_weak" / "metrics.json").read_text())
    assert weak[HELDOUT_KEY] == {"chain": MIND.label, "cases": 4, "within_5px": 3, "within_1.5px": 1, "median_tre_px": pytest.approx(4.05)}
    assert weak["structure"]["aligned"], weak["structure"]
    own = grade_without_truth({k: v for k, v in weak.items() if k != HELDOUT_KEY})
    assert own in ("good", "decent") and weak["tier"] == "bad" and weak["grade_details"]["capped_by_heldout"] is True

    _card(tmp_path / "strong", [0.4, 0.6, 0.5])
    strong = register_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "out_strong", model=tmp_path / "strong", **kw).metrics
    assert strong[HELDOUT_KEY]["median_tre_px"] == 0.5
    assert strong["tier"] == own and strong["grade_details"]["capped_by_heldout"] is False
