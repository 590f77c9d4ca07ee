"""Structure evidence of registrations and the round robin that ranks chains by it, on real shale pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from styleunwarp.io import read_image, to_gray, write_tiff
from styleunwarp.pipeline.evidence import evidence_of, structure_evidence
from styleunwarp.structure import Z_MIN
from styleunwarp.style.tournament import EVIDENCE_Z, MIND_TIE, duel, tournament
from styleunwarp.style.trust import Outcome, verdict
from styleunwarp.transform import affine_elastic, warp_image, write_elastic

from conftest import data_skip_reason, real_data

SHALE = sorted(real_data("petrography-bse-se", "se/*.png"))


def _ev(mind: float, z: float) -> dict:
    return {"mind": mind, "z": z}


def test_duel_counts_only_evidence_and_draws_close_agreements():
    assert duel(_ev(0.20, 20.0), _ev(0.10, 12.0)) == 1 and duel(_ev(0.10, 12.0), _ev(0.20, 20.0)) == -1
    assert duel(_ev(0.05, EVIDENCE_Z + 0.1), _ev(0.30, EVIDENCE_Z - 0.1)) == 1  # a chance-level result is no evidence
    assert duel(_ev(0.10, 9.0), _ev(0.10 + MIND_TIE / 2, 9.0)) == 0
    assert duel(_ev(0.3, 1.0), None) == 0 and duel(None, _ev(0.1, 8.0)) == -1
    assert duel(_ev(float("nan"), 9.0), _ev(0.1, 8.0)) == -1


def _registration(folder: Path, se: Path, shift: float) -> Outcome:
    """A registration folder of the real BSE (source) onto the real SE (target) of one aligned pair,
    by a transform ``shift`` px off the truth (the identity), as register_pair leaves it minus the evidence."""
    bse = to_gray(read_image(se.parent.parent / "bse" / se.name).data)
    target = to_gray(read_image(se).data)
    direct = affine_elastic(np.array([[1.0, 0.0, shift], [0.0, 1.0, shift / 2]]), 4, target.shape)
    folder.mkdir(parents=True)
    write_elastic(direct, folder / "direct_transf.txt")
    write_tiff(folder / "registered.tif", warp_image(bse, direct, target.shape))
    m = {"cbs": str(se), "cbs_shape": list(target.shape), "lom_shape": list(bse.shape), "styled_ncc_after": 0.3,
         "transform": {"folded_fraction": 0.0, "consistency_error": 0.1}, "coarse": {"chosen": {"method": "similarity"}},
         "elastic": {"kept": "start"}, "seconds": {"total": 1.0}}
    (folder / "metrics.json").write_text(json.dumps(m))
    o = Outcome.read(f"chain{shift:g}", "none", "native", folder)
    assert o is not None
    return o


@pytest.mark.skipif(len(SHALE) < 2, reason=data_skip_reason("petrography-bse-se", "se/*.png"))
def test_evidence_ranks_registrations_of_real_pairs_by_their_error(tmp_path):
    """On two real BSE/SE pairs: the right transform is significant evidence, and the round robin
    ranks three "chains" (0, 2.5 and 40 px off) in the order of their true error, from the files alone."""
    results: dict[str, dict[str, Outcome]] = {}
    for se in SHALE[:2]:
        for shift in (2.5, 0.0, 40.0):
            o = _registration(tmp_path / f"s{shift:g}" / se.stem, se, shift)
            results.setdefault(o.chain, {})[se.stem] = o
    right = results["chain0"][SHALE[0].stem].evidence
    assert right["aligned"] and right["z"] >= Z_MIN, right
    assert not results["chain40"][SHALE[0].stem].evidence["aligned"]
    table = tournament(results)
    ranking = sorted(table, key=lambda c: table[c].key(), reverse=True)
    assert ranking == ["chain0", "chain2.5", "chain40"], {c: table[c] for c in table}
    assert table["chain0"].against["chain40"] == 2 and table["chain0"].beaten == 2
    # the evidence computed from the files is what register_pair records
    se = SHALE[0]
    o = results["chain2.5"][se.stem]
    recorded = structure_evidence(read_image(o.folder / "registered.tif").data, to_gray(read_image(se).data), o.direct,
                                  o.source_shape)
    assert recorded == evidence_of(o.folder)
    # of two agreeing chains the trust rule uses the transform whose source agrees better with the target
    near = _registration(tmp_path / "other" / se.stem, se, 0.5)
    near = Outcome(near.chain, "shipped", "native", near.folder, "bad", 0.3, near.target_shape, near.source_shape)
    v = verdict([o, near])
    assert v.trusted and v.chosen is near, v


def test_evidence_of_a_folder_without_files_is_none(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"cbs": str(tmp_path / "missing.tif"), "cbs_shape": [8, 8], "lom_shape": [8, 8]}))
    assert evidence_of(tmp_path) is None
    assert evidence_of(tmp_path / "nowhere") is None


@pytest.mark.skipif(len(SHALE) < 3, reason=data_skip_reason("petrography-bse-se", "se/*.png"))
def test_unaligned_delivers_the_chain_whose_results_agree_best_by_structure(tmp_path):
    """Two starting chains on three real pairs: the one 3 px off agrees with the verified transforms
    (which came from it) on every pair, the exact one on none of them; structure delivers the exact one."""
    from styleunwarp.style.chain import Chain
    from styleunwarp.style.unaligned import ChainRun, UnalignedConfig, _choose_delivery

    exact, off = ChainRun(Chain("none", "elastix"), "none", None, "none-elastix"), ChainRun(Chain("shipped", "native"), "model", None, "shipped-native")
    base: dict[str, list[Outcome]] = {}
    verdicts = {}
    for se in SHALE[:3]:
        a = _registration(tmp_path / "registrations" / exact.slug / se.stem, se, 0.0)
        b = _registration(tmp_path / "registrations" / off.slug / se.stem, se, 3.0)
        base[se.stem] = [Outcome(exact.label, "none", "elastix", a.folder, "bad", 0.3, a.target_shape, a.source_shape),
                         Outcome(off.label, "shipped", "native", b.folder, "decent", 0.5, b.target_shape, b.source_shape)]
        verdicts[se.stem] = {"trusted": True, "registration": f"registrations/{off.slug}/{se.stem}", "chain": off.label}
    states = [{"row": {"round": 0, "trusted": 3, "pairs": 3}, "verdicts": verdicts}]
    src, run, delivered, warning = _choose_delivery(tmp_path, states, [off, exact], base, UnalignedConfig(), 1, "done")
    assert src is None and run is exact and warning is None, delivered
    assert delivered["candidates"][off.label]["support"] == 3 and delivered["candidates"][exact.label]["support"] == 0
    assert delivered["candidates"][exact.label]["beaten"] == 1 and "by structure" in delivered["why"]
    assert delivered["alternatives"] == [off.label]
