"""Command-line plumbing: backend options reach the backend and are recorded (native engine, no Java)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from styleunwarp.cli import main
from styleunwarp.errors import InputError
from styleunwarp.registration import register
from styleunwarp.io import write_tiff
from styleunwarp.synth import make_pair
from styleunwarp.transform import write_elastic

from conftest import needs_data, real_data

SHALE = real_data("petrography-bse-se", "se/*.png")


def test_backend_options_reach_the_native_engine(tmp_path):
    p = make_pair((128, 128), seed=6)
    write_tiff(tmp_path / "lom.tif", p.cbs_like_lom)
    write_tiff(tmp_path / "cbs.tif", p.cbs)
    write_elastic(p.truth, tmp_path / "truth.txt")
    args = ["register", str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--out", str(tmp_path / "out"), "--style", "none",
            "--backend", "native", "--mode", "mono", "--truth", str(tmp_path / "truth.txt"), "-o", "similarity=ncc", "-o", "max_samples=64"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["backend"] == "native" and m["backend_options"] == {"similarity": "ncc", "max_samples": 64}
    assert m["tre"]["mean"] < 3.0
    bad = CliRunner().invoke(main, [*args[:-4], "-o", "novalue"])
    assert bad.exit_code != 0 and "KEY=VALUE" in bad.output
    unknown = CliRunner().invoke(main, [*args[:-4], "-o", "no_such_option=1"])
    assert unknown.exit_code == 1 and "no_such_option" in unknown.output and "Traceback" not in unknown.output


def test_unknown_bunwarpj_option_is_named():
    img = np.random.default_rng(0).uniform(0, 255, (32, 32))
    with pytest.raises(InputError, match="has no option 'bogus'; it takes: fiji_dir"):
        register(img, img, backend="bunwarpj", bogus=1)


def test_console_says_how_far_off_the_structure_evidence_finds_a_result():
    from styleunwarp.cli.options import verdict_lines

    def structure_line(evidence: dict) -> str:
        return next(text for text, _ in verdict_lines({"structure": evidence}) if text.startswith("structure evidence"))

    regional = structure_line({"z": 9.0, "mind": 0.1, "aligned": False, "residual_px": 1.0, "tiles_off": 3})
    assert "NOT shown aligned" in regional and "3 of its tiles peak more than 4 px off (still misaligned)" in regional
    off = structure_line({"z": 9.0, "mind": 0.1, "aligned": False, "residual_px": 6.1, "tiles_off": 0})
    assert "peaks 6.1 px from where it lies (still misaligned)" in off
    fine = structure_line({"z": 9.0, "mind": 0.1, "aligned": True, "residual_px": 1.0, "tiles_off": 0})
    assert fine.startswith("structure evidence (raw LOM vs raw CBS, any modality): aligned") and "misaligned" not in fine
    assert "peaks" not in structure_line({"z": 9.0, "mind": 0.1, "aligned": True})  # no estimate (CLEM, steel): nothing claimed


def test_a_good_grade_needs_the_structure_evidence():
    """The grader's NCC and consistency say good; evidence that does not show the result aligned lowers
    it to decent, and the console says why. Missing evidence (not measured) changes nothing."""
    from styleunwarp.cli.options import verdict_lines
    from styleunwarp.quality import grade, grade_details

    base = {"styled_ncc_after": 0.45, "elastic": {"kept": "elastic"}, "transform": {"consistency_error": 0.4, "folded_fraction": 0.0}}
    assert grade(base) == ("good", "grader")
    assert grade({**base, "structure": {"z": 7.0, "aligned": True}})[0] == "good"
    refused = {**base, "structure": {"z": 3.3, "aligned": False}}
    assert grade(refused) == ("decent", "grader")
    assert grade({**refused, "styled_ncc_after": 0.05})[0] == "poor"  # only ever lowers a good
    m = {**refused, "tier": "decent", "grade_source": "grader", "grade_details": grade_details(refused)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert line.startswith("verdict: DECENT") and "does not show it aligned" in line
    # a result its numbers call decent anyway was not lowered by the evidence: no cap recorded, none said
    weak = {**refused, "styled_ncc_after": 0.35}
    assert grade(weak)[0] == "decent" and grade_details(weak)["capped_by_evidence"] is False
    m = {**weak, "tier": "decent", "grade_source": "grader", "grade_details": grade_details(weak)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert "does not show it aligned" not in line


def test_a_residual_estimate_grades_the_result_where_the_structures_support_one():
    """Where the structure evidence estimates the residual misalignment, the tier is read from it
    (the NCC of the representation says little across modalities); folding stays poor, and with
    no estimate (CLEM, steel) the correlation grader is unchanged."""
    from styleunwarp.cli.options import verdict_lines
    from styleunwarp.quality import EVIDENCE_GOOD_PX, grade, grade_details

    raw = {"styled_ncc_after": 0.12, "elastic": {"kept": "elastic"}, "transform": {"consistency_error": 0.3, "folded_fraction": 0.0}}
    assert grade(raw)[0] == "bad"  # raw BSE vs SE correlate weakly even when aligned
    close = {**raw, "structure": {"z": 25.0, "aligned": True, "residual_px": 0.4, "tiles_off": 0}}
    assert grade(close) == ("good", "grader") and grade_details(close)["by_evidence"]
    assert grade({**close, "structure": {**close["structure"], "residual_px": EVIDENCE_GOOD_PX + 0.3}})[0] == "decent"
    assert grade({**close, "structure": {**close["structure"], "tiles_off": 1}})[0] == "decent"
    assert grade({**close, "structure": {"z": 9.0, "aligned": False, "residual_px": 4.2, "tiles_off": 5}})[0] == "bad"
    assert grade({**close, "transform": {**close["transform"], "folded_fraction": 0.01}})[0] == "poor"
    assert grade({**raw, "structure": {"z": 25.0, "aligned": True, "residual_px": None}})[0] == "bad"  # no estimate: NCC decides
    m = {**close, "tier": "good", "grade_source": "grader", "grade_details": grade_details(close)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert line.startswith("verdict: GOOD") and "structure evidence puts it 0.40 px" in line and "not good from decent" not in line
    # a good from the correlation grader says what it cannot tell (steel renderings of other renderers: right on 8 of 17)
    steel = {"styled_ncc_after": 0.45, "elastic": {"kept": "elastic"}, "transform": {"consistency_error": 0.3, "folded_fraction": 0.0},
             "structure": {"z": 12.0, "aligned": True, "residual_px": None}}
    m = {**steel, "tier": grade(steel)[0], "grade_source": "grader", "grade_details": grade_details(steel)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert line.startswith("verdict: GOOD") and "NCC 0.450" in line and "not good from decent" in line


@needs_data("petrography-bse-se", "se/*.png")
def test_real_shale_results_are_graded_by_how_far_off_they_are():
    """A real BSE/SE pair, aligned, 1.5 px and 6 px off: the evidence-based grade follows (good,
    decent, bad), where the raw images' correlation alone would call even the aligned pair bad or poor."""
    from scipy import ndimage

    from styleunwarp.io import read_image, to_gray
    from styleunwarp.quality import grade, ncc
    from styleunwarp.structure import mind_verdict

    se = SHALE[5]
    source = to_gray(read_image(se).data)
    bse = to_gray(read_image(se.parent.parent / "bse" / se.name).data)
    base = {"elastic": {"kept": "elastic"}, "transform": {"consistency_error": 0.3, "folded_fraction": 0.0}}
    tiers = {}
    for name, shift in (("aligned", (0.0, 0.0)), ("1.5 px", (0.9, 1.2)), ("6 px", (3.6, 4.8))):
        moved = ndimage.shift(source, shift, order=1, mode="nearest")
        m = {**base, "styled_ncc_after": ncc(moved, bse), "structure": mind_verdict(moved, bse)}
        tiers[name] = grade(m)[0]
    assert tiers == {"aligned": "good", "1.5 px": "decent", "6 px": "bad"}, tiers
