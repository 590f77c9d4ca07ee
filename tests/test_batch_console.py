"""What `styleunwarp batch` tells the user on the console (native engine, no Java)."""

from __future__ import annotations

from click.testing import CliRunner

from styleunwarp.cli import main
from styleunwarp.io import write_tiff
from styleunwarp.synth import make_pair

ARGS = ["--backend", "native", "--mode", "mono", "--final-deformation", "coarse", "--style", "none", "--no-progress"]


def test_folder_without_pairs_says_the_rule_and_the_ignored_files(tmp_path):
    src = tmp_path / "run"
    src.mkdir()
    p = make_pair((64, 64), seed=1)
    write_tiff(src / "s1.tif", p.lom)
    write_tiff(src / "s1-sem.tif", p.cbs)
    res = CliRunner().invoke(main, ["batch", str(src), "--out", str(tmp_path / "out"), *ARGS])
    assert res.exit_code == 1
    assert "pairing rule: NAME_LOM.EXT + NAME_CBS.EXT" in res.output
    assert "ignored (match neither pattern): s1-sem.tif, s1.tif" in res.output
    assert res.output.rstrip().splitlines()[-1] == f"Error: {src}: no LOM/CBS pair found"


def test_console_names_unpaired_and_failed_files(tmp_path):
    src = tmp_path / "run"
    src.mkdir()
    p = make_pair((96, 96), seed=2)
    write_tiff(src / "good_LOM.tif", p.cbs_like_lom)
    write_tiff(src / "good_CBS.tif", p.cbs)
    write_tiff(src / "alone_LOM.tif", p.lom)
    (src / "broken_LOM.tif").write_bytes(b"II*\x00garbage")
    write_tiff(src / "broken_CBS.tif", p.cbs)
    res = CliRunner().invoke(main, ["batch", str(src), "--out", str(tmp_path / "out"), *ARGS])
    assert res.exit_code == 1, res.output
    assert "1 registered, 0 already done, 1 failed, 1 unpaired" in res.output
    assert f"unpaired: {src / 'alone_LOM.tif'} (no CBS/SEM image with the same stem)" in res.output
    assert "failed: broken: " in res.output and "broken_LOM.tif" in res.output
    assert "ignored" not in res.output


def test_watch_prints_tier_and_time_and_keeps_the_report(tmp_path):
    src = tmp_path / "incoming"
    src.mkdir()
    p = make_pair((96, 96), seed=3)
    write_tiff(src / "w1_LOM.tif", p.cbs_like_lom)
    write_tiff(src / "w1_CBS.tif", p.cbs)
    out = tmp_path / "out"
    args = ["watch", str(src), "--out", str(out), "--interval", "0.1", "--settle", "0", "--max-idle", "0.3", *ARGS[:-1], "-o", "max_samples=64"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("w1: "))
    assert line.split(": ")[1].split()[0] in ("good", "decent", "bad", "poor") and line.endswith(" s"), line
    assert (out / "report.html").is_file() and "w1" in (out / "report.html").read_text()
    assert '"max_samples": 64' in (out / "w1" / "metrics.json").read_text()
    helps = CliRunner().invoke(main, ["watch", "--help"]).output
    assert "--coarse" in helps and "rotation over the full circle" in helps and "KEY=VALUE" in helps
    assert "--lom-pixel-size" in helps and "--scheduler" in helps
