"""The Fiji side: the batch macro (.ijm, under Xvfb) and the script-editor script (Jython).

Both run the real ImageJ 1 + bUnwarpJ; they are skipped with the reason where Java,
bUnwarpJ, Xvfb (macro) or Jython (script) is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from styleunwarp.io import read_image, write_tiff
from styleunwarp.quality import tre
from styleunwarp.synth import make_pair
from styleunwarp.transform import read_elastic, warp_image

pytestmark = pytest.mark.bunwarpj

MACROS = Path(__file__).resolve().parents[1] / "fiji-macros"
JYTHON_JARS = [Path("/usr/share/java/jython.jar")]


def _install():
    from styleunwarp.errors import ImageJNotFoundError
    from styleunwarp.imagej import find_imagej

    if shutil.which("java") is None:
        pytest.skip("Java not installed")
    try:
        return find_imagej(require_bunwarpj=True)
    except ImageJNotFoundError as exc:
        pytest.skip(f"real bUnwarpJ not available: {exc}")


def _styleunwarp_command() -> str:
    exe = Path(sys.executable).parent / "styleunwarp"
    return str(exe) if exe.exists() else (shutil.which("styleunwarp") or pytest.skip("styleunwarp command not on PATH"))


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory):
    """An acquisition folder with awkward names: two pairs, one unpaired LOM, one corrupt LOM.

    The 'LOM' of each pair is the perfect CBS-like rendering, so registration with
    --style none must succeed (the macro's mechanics are under test, not the style model).
    """
    folder = tmp_path_factory.mktemp("acq") / "run [1] with spaces"
    folder.mkdir()
    truths = {}
    for i, stem in enumerate(["sample [a] 1", "b"]):
        p = make_pair((256, 256), seed=40 + i)
        write_tiff(folder / f"{stem}_LOM.tif", p.cbs_like_lom)
        write_tiff(folder / f"{stem}_{'CBS' if i == 0 else 'SEM'}.tif", p.cbs)
        truths[stem] = (p.truth, p.cbs_like_lom)
    write_tiff(folder / "lonely_LOM.tif", np.zeros((32, 32), np.float32) + 1)
    (folder / "broken_LOM.tif").write_bytes(b"II*\x00garbage")
    write_tiff(folder / "broken_CBS.tif", np.ones((64, 64), np.float32))
    return folder, truths


def _run_macro(ij, folder: Path, out: Path, chain: str) -> subprocess.CompletedProcess:
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run not installed (apt-get install xvfb): bUnwarpJ's macro command needs a display")
    arg = f"input={folder}|output={out}|styleunwarp={_styleunwarp_command()}|chain={chain}|model=none|mode=Accurate|final=Fine"
    cmd = ["xvfb-run", "-a", "java", f"-Dplugins.dir={ij.root}", "-cp", str(ij.ij_jar), "ij.ImageJ", "-batch", str(MACROS / "styleunwarp_batch.ijm"), arg]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("chain", ["styleunwarp", "bunwarpj"])
def test_batch_macro_registers_pairs_records_failures_and_resumes(acquisition, tmp_path, chain):
    """chain=styleunwarp (the default): `styleunwarp register` per pair, with this ImageJ's bUnwarpJ, and
    its verdict in the CSV; chain=bunwarpj: `prepare`, then run("bUnwarpJ", ...) inside ImageJ."""
    ij = _install()
    folder, truths = acquisition
    out = tmp_path / "out [x]"
    proc = _run_macro(ij, folder, out, chain)
    assert "2 registered, 0 already done, 1 failed, 1 unpaired" in proc.stdout, proc.stdout + proc.stderr
    assert "unpaired: lonely_LOM.tif (no CBS/SEM image with the same stem)" in proc.stdout
    for stem, (truth, lom) in truths.items():
        d = out / stem
        direct = read_elastic(d / "direct_transf.txt")
        assert (d / "inverse_transf.txt").is_file()
        err = tre(direct, truth, (256, 256))
        assert err.mean < 1.5, (stem, err)
        registered = read_image(d / "registered.tif").data
        assert np.abs(registered - warp_image(lom, direct, (256, 256))).max() < 1e-2
        assert (d / "metrics.json").is_file() == (chain == "styleunwarp")
    rows = (out / "macro_results.csv").read_text().splitlines()
    assert rows[0] == "pair,status,tier,detail"
    cells = {r.split(",")[0]: r.split(",")[1:3] for r in rows[1:]}
    # unpaired files are named by their stem, as in `styleunwarp batch`'s results.csv
    assert {k: v[0] for k, v in cells.items()} == {"sample [a] 1": "done", "b": "done", "lonely_LOM": "unpaired", "broken": "failed"}
    for stem in truths:
        if chain == "styleunwarp":  # the verdict register printed is the one in its metrics.json
            assert cells[stem][1] == json.loads((out / stem / "metrics.json").read_text())["tier"] == "good", cells[stem]
        else:
            assert cells[stem][1] == "unchecked"
    if chain == "styleunwarp":
        assert "verdicts of this run: 2 good 0 decent 0 bad 0 poor" in proc.stdout, proc.stdout
    reason = next(r for r in rows if r.startswith("broken,")).split(",", 3)[3]
    assert "broken_LOM.tif" in reason and "not" in reason, reason  # the command's real reason, not an empty one
    again = _run_macro(ij, folder, out, chain)
    assert "0 registered, 2 already done" in again.stdout, again.stdout


@pytest.mark.parametrize("chain", ["styleunwarp", "bunwarpj"])
def test_script_editor_script_registers_one_pair(acquisition, tmp_path, chain):
    ij = _install()
    jython = next((j for j in JYTHON_JARS if j.is_file()), None)
    if jython is None:
        pytest.skip("Jython not installed (apt-get install jython): Fiji's script editor runs the script with it")
    folder, truths = acquisition
    out = tmp_path / "one pair [y]"
    cp = ":".join([str(jython), str(ij.ij_jar), str(ij.bunwarpj_jar)])
    # the documented headless command line (fiji-macros/README.md)
    cmd = ["java", "-Djava.awt.headless=true", "-cp", cp, "org.python.util.jython", str(MACROS / "styleunwarp_register.py"),
           str(folder / "b_LOM.tif"), str(folder / "b_SEM.tif"), str(out), f"command={_styleunwarp_command()}", "model=none",
           "mode=Mono", "final=Very Fine", f"chain={chain}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    truth, lom = truths["b"]
    direct = read_elastic(out / "direct_transf.txt")
    assert not (out / "inverse_transf.txt").exists()  # Mono computes no inverse
    assert tre(direct, truth, (256, 256)).mean < 1.5
    assert np.abs(read_image(out / "registered.tif").data - warp_image(lom, direct, (256, 256))).max() < 1e-2
    if chain == "styleunwarp":  # the verdict is logged and recorded
        tier = json.loads((out / "metrics.json").read_text())["tier"]
        assert f"tier {tier}" in proc.stdout, proc.stdout
    else:
        assert "not checked, no verdict" in proc.stdout and not (out / "metrics.json").exists()


@pytest.fixture(scope="module")
def colour16(tmp_path_factory):
    """One pair whose LOM is 16-bit colour (a 48-bit RGB TIFF), its channels unlike each other."""
    folder = tmp_path_factory.mktemp("colour16") / "acq"
    folder.mkdir()
    p = make_pair((256, 256), seed=42)
    g = np.asarray(p.cbs_like_lom, np.float64)
    g = (g - g.min()) / (g.max() - g.min())
    lom = (np.stack([g, g ** 0.7, 1.0 - 0.5 * g], -1) * 60000).astype(np.uint16)
    write_tiff(folder / "c_LOM.tif", lom)
    write_tiff(folder / "c_CBS.tif", p.cbs)
    return folder, p.truth, lom


def _check_colour16(out: Path, truth, lom) -> None:
    """registered.tif is the 16-bit colour LOM moved by the saved transform, every channel its own."""
    direct = read_elastic(out / "direct_transf.txt")
    assert tre(direct, truth, (256, 256)).mean < 1.5
    registered = read_image(out / "registered.tif")
    assert registered.data.shape == (256, 256, 3) and registered.metadata["bit_depth"] == 16
    for c in range(3):
        expected = np.clip(np.rint(warp_image(lom[..., c].astype(np.float32), direct, (256, 256))), 0, 65535)
        assert np.abs(registered.data[..., c] - expected).max() <= 1.0, c


def test_batch_macro_keeps_a_16_bit_colour_lom_colour(colour16, tmp_path):
    """chain=bunwarpj: bUnwarpJ's own re-application cannot take a 48-bit LOM (a 16-bit composite in
    ImageJ; it threw and left a corrupt file); the macro warps it one channel at a time."""
    ij = _install()
    folder, truth, lom = colour16
    proc = _run_macro(ij, folder, tmp_path / "out", "bunwarpj")
    assert "1 registered, 0 already done, 0 failed" in proc.stdout, proc.stdout + proc.stderr
    assert "Exception" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    _check_colour16(tmp_path / "out" / "c", truth, lom)


def test_script_editor_script_keeps_a_16_bit_colour_lom_colour(colour16, tmp_path):
    ij = _install()
    jython = next((j for j in JYTHON_JARS if j.is_file()), None)
    if jython is None:
        pytest.skip("Jython not installed (apt-get install jython): Fiji's script editor runs the script with it")
    folder, truth, lom = colour16
    out = tmp_path / "one"
    cp = ":".join([str(jython), str(ij.ij_jar), str(ij.bunwarpj_jar)])
    cmd = ["java", "-Djava.awt.headless=true", "-cp", cp, "org.python.util.jython", str(MACROS / "styleunwarp_register.py"),
           str(folder / "c_LOM.tif"), str(folder / "c_CBS.tif"), str(out), f"command={_styleunwarp_command()}", "model=none",
           "mode=Accurate", "final=Fine", "chain=bunwarpj"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_colour16(out, truth, lom)
