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
    with pytest.raises(InputError, match="has no option 'bogus'; it takes: initial_affine, fiji_dir"):
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
    coarse = structure_line({"z": 3.0, "mind": 0.03, "aligned": False, "coarse": {"factor": 4, "z": 6.2, "aligned": True}})
    assert coarse.startswith("structure evidence (raw LOM vs raw CBS, any modality): NOT shown aligned")
    assert "at 1/4 resolution, where the coarse step found the structure both share: aligned (6.2 sd" in coarse, coarse
    assert "about 4 px, no closer" in coarse


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


def test_structure_evidence_raises_a_weak_correlation_to_decent_where_it_shows_the_result_aligned():
    """A weak representation correlation (a look the model never saw) says bad or poor; structure
    evidence that shows the result aligned raises it to decent, and the console says so. Not when
    the evidence is missing or does not show it aligned, not over folding, not over a direct/inverse
    disagreement that alone keeps it below decent, and never above decent."""
    from styleunwarp.cli.options import verdict_lines
    from styleunwarp.quality import GRADER_THRESHOLDS, grade, grade_details

    weak = {"styled_ncc_after": 0.19, "elastic": {"kept": "start"}, "transform": {"consistency_error": 0.0, "folded_fraction": 0.0}}
    assert grade(weak)[0] == "bad"
    assert grade({**weak, "styled_ncc_after": 0.02})[0] == "poor"
    aligned = {**weak, "structure": {"z": 14.4, "aligned": True, "residual_px": None}}
    assert grade(aligned) == ("decent", "grader") and grade_details(aligned)["lifted_by_evidence"] is True
    assert grade({**aligned, "styled_ncc_after": 0.02})[0] == "decent"
    assert grade({**weak, "structure": {"z": 4.7, "aligned": False, "residual_px": None}})[0] == "bad"
    assert grade({**aligned, "transform": {**aligned["transform"], "folded_fraction": 0.01}})[0] == "poor"
    too_far = GRADER_THRESHOLDS["decent"]["consistency_px"] + 0.3
    kept = {**aligned, "elastic": {"kept": "elastic"}, "transform": {"consistency_error": too_far, "folded_fraction": 0.0}}
    assert grade(kept)[0] == "bad" and grade_details(kept)["lifted_by_evidence"] is False
    m = {**aligned, "tier": "decent", "grade_source": "grader", "grade_details": grade_details(aligned)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert line.startswith("verdict: DECENT") and "raised to decent" in line
    assert grade_details(weak)["lifted_by_evidence"] is False


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
    assert grade({**raw, "structure": {"z": 25.0, "aligned": False, "residual_px": None}})[0] == "bad"  # no estimate: NCC decides
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


def test_raw_images_of_two_modalities_without_a_residual_estimate_are_graded_by_the_structure_evidence():
    """A raw chain's result (representation ``none``) where the structure makes no residual estimate:
    the grey levels' correlation of two modalities says nothing (a decent steel result had NCC -0.63),
    so the structure evidence decides (aligned: decent at most; not shown: bad; chance: poor) and the
    console says so; a style model's result, or one graded on the model's representation, is not."""
    from styleunwarp.cli.options import verdict_lines
    from styleunwarp.quality import GRADED_ON_KEY, Z_CHANCE, grade, grade_details

    raw = {"representation": "none", "styled_ncc_after": -0.63, "elastic": {"kept": "start"},
           "transform": {"consistency_error": 0.0, "folded_fraction": 0.0}, "structure": {"z": 9.1, "aligned": True, "residual_px": None}}
    assert grade(raw) == ("decent", "grader") and grade_details(raw)["by_structure"]
    # grey levels that correlate strongly do correspond (one modality): the correlation grader decides
    assert grade({**raw, "styled_ncc_after": 0.9})[0] == "good" and not grade_details({**raw, "styled_ncc_after": 0.9})["by_structure"]
    assert grade({**raw, "styled_ncc_after": 0.35})[0] == "decent" and grade_details({**raw, "styled_ncc_after": 0.35})["by_structure"]
    assert grade({**raw, "structure": {"z": 3.8, "aligned": False}})[0] == "bad"
    assert grade({**raw, "structure": {"z": Z_CHANCE - 0.5, "aligned": False}})[0] == "poor"
    assert grade({**raw, "transform": {**raw["transform"], "folded_fraction": 0.02}})[0] == "poor"
    assert grade({**raw, "structure": {}})[0] == "poor"  # no evidence measured: the correlation grader as before
    # where the structures give a residual estimate, it decides as before
    assert grade({**raw, "structure": {"z": 20.0, "aligned": True, "residual_px": 0.5, "tiles_off": 0}})[0] == "good"
    # a style model's representation: the correlation grader
    styled = {**raw, "representation": "edges", "styled_ncc_after": 0.45, "structure": {"z": 9.1, "aligned": True}}
    assert grade(styled)[0] == "good" and not grade_details(styled)["by_structure"]
    m = {**raw, "tier": "decent", "grade_source": "grader", "grade_details": grade_details(raw)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert line.startswith("verdict: DECENT") and "structure evidence alone (9.1 sd above chance)" in line and "NCC" not in line
    # an adopted second opinion measured on the model chain's representation: that NCC is read
    adopted = {**raw, GRADED_ON_KEY: {"representation": "edges", "styled_ncc_after": 0.353, "reason": "test"}}
    assert grade(adopted)[0] == "decent" and grade_details(adopted)["styled_ncc_after"] == 0.353
    weak = {**adopted, GRADED_ON_KEY: {"representation": "edges", "styled_ncc_after": 0.05}}
    assert grade(weak)[0] == "decent" and grade_details(weak)["lifted_by_evidence"]  # the evidence shows it aligned
    assert grade({**weak, "structure": {"z": 3.8, "aligned": False}})[0] == "poor"
    m = {**adopted, "tier": "decent", "grade_source": "grader", "grade_details": grade_details(adopted)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert "NCC on the model chain's edges representation 0.353" in line


def test_the_fine_affine_step_is_recorded_printed_and_can_be_turned_off(tmp_path):
    p = make_pair((192, 192), seed=11)
    write_tiff(tmp_path / "lom.tif", p.lom)
    write_tiff(tmp_path / "cbs.tif", p.cbs)
    args = ["register", str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--backend", "native", "--mode", "mono", "--no-second-opinion"]
    on = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "on")])
    assert on.exit_code == 0, on.output
    fine = json.loads((tmp_path / "on" / "metrics.json").read_text())["fine_affine"]
    assert fine["kept"] in ("refined", "start") and fine["checked_on"] == "raw images"
    assert np.isfinite(fine["mind_drop_sds"]) and len(fine["matrix"]) == 2
    assert fine["fit_sigmas"] == [4.0, 2.0]  # the shipped model, a style model without a chain card: ends blurred
    assert "fine affine step" in on.output
    off = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "off"), "--no-fine-affine"])
    assert off.exit_code == 0, off.output
    assert json.loads((tmp_path / "off" / "metrics.json").read_text())["fine_affine"] == {}
    assert "fine affine step" not in off.output


def test_a_result_whose_structure_agrees_no_better_than_chance_is_never_called_decent():
    """A translation into a sparse target's look correlates with the target wherever it lies: its NCC
    says decent or good, while the raw images' structure agrees no better than chance. Then the
    grader says bad, and the console says why; above chance, or unmeasured, nothing changes."""
    from styleunwarp.cli.options import verdict_lines
    from styleunwarp.quality import Z_CHANCE, grade, grade_details

    base = {"styled_ncc_after": 0.36, "elastic": {"kept": "elastic"}, "transform": {"consistency_error": 0.7, "folded_fraction": 0.0}}
    assert grade(base)[0] == "decent"
    lost = {**base, "structure": {"z": Z_CHANCE - 0.5, "aligned": False, "residual_px": None}}
    assert grade(lost) == ("bad", "grader") and grade_details(lost)["at_chance"] is True
    assert grade({**lost, "styled_ncc_after": 0.55})[0] == "bad"  # a good by the numbers too
    assert grade({**lost, "styled_ncc_after": 0.05})[0] == "poor"  # never raised
    above = {**base, "structure": {"z": Z_CHANCE + 0.5, "aligned": False, "residual_px": None}}
    assert grade(above)[0] == "decent" and grade_details(above)["at_chance"] is False
    m = {**lost, "tier": "bad", "grade_source": "grader", "grade_details": grade_details(lost)}
    line = next(text for text, _ in verdict_lines(m) if text.startswith("verdict"))
    assert line.startswith("verdict: BAD") and "no better than chance" in line
