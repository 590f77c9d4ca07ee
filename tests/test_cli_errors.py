"""Every command's expected errors: one line naming the file and the problem; a traceback only with --debug."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from styleunwarp.cli import main
from styleunwarp.errors import TransformFileError
from styleunwarp.io import write_tiff


@pytest.fixture()
def files(tmp_path):
    img = (np.arange(64 * 64, dtype=np.float32).reshape(64, 64) % 251)
    write_tiff(tmp_path / "img.tif", img)
    (tmp_path / "notes.txt").write_text("just some notes\n")
    return tmp_path


def _one_line_error(res, *needles: str) -> str:
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_transform_apply_of_a_non_transform_file_is_one_line(files):
    args = ["transform", "apply", str(files / "notes.txt"), str(files / "img.tif"), "--target", str(files / "img.tif"), str(files / "o.tif")]
    _one_line_error(CliRunner().invoke(main, args), "notes.txt", "not a bUnwarpJ transform file")
    args[2] = str(files / "img.tif")  # a binary file given as the transform
    _one_line_error(CliRunner().invoke(main, args), "img.tif", "not a text file")
    assert not (files / "o.tif").exists()


def test_other_commands_share_the_handler(files):
    res = CliRunner().invoke(main, ["register", str(files / "notes.txt"), str(files / "img.tif"), "--out", str(files / "r"), "--style", "none", "--backend", "native"])
    _one_line_error(res, "notes.txt", "not an image")
    res = CliRunner().invoke(main, ["transform", "jacobian", str(files / "notes.txt"), "--target", str(files / "img.tif")])
    _one_line_error(res, "notes.txt")


@pytest.mark.parametrize("which", ["lom", "cbs"])
def test_a_constant_image_is_refused_naming_its_file(files, which):
    """An image whose every pixel holds one value has nothing to register: the one-line error names
    that file, whichever of the pair it is, before any styling or search runs."""
    write_tiff(files / "flat.tif", np.full((64, 64), 7, np.uint8))
    pair = [files / "flat.tif", files / "img.tif"] if which == "lom" else [files / "img.tif", files / "flat.tif"]
    res = CliRunner().invoke(main, ["register", *map(str, pair), "--out", str(files / "r")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    last = [ln for ln in res.output.splitlines() if ln.strip()][-1]  # after the status line on the second opinion
    assert last.startswith("Error: ") and last.endswith("flat.tif: constant image (every pixel is 7): nothing to register"), last
    assert not (files / "r" / "styled.tif").exists()


def test_debug_shows_the_exception(files):
    args = ["--debug", "transform", "apply", str(files / "notes.txt"), str(files / "img.tif"), "--target", str(files / "img.tif"), str(files / "o.tif")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and isinstance(res.exception, TransformFileError)


@pytest.mark.parametrize("command", ["prepare", "register"])
def test_the_error_file_gets_the_one_line_reason(files, command):
    """``--error-file`` (the Fiji macro's channel: ImageJ's exec() returns no stderr) records the
    command's one-line error, a bad option value included; a good run removes a stale reason."""
    err = files / "out" / f"why-{command}.txt"
    args = [command, str(files / "notes.txt"), str(files / "img.tif"), "--out", str(files / "out"), "--style", "none", "--error-file", str(err)]
    line = _one_line_error(CliRunner().invoke(main, args), "notes.txt")
    assert err.read_text().strip() == line[len("Error: "):]
    for wrong in (["--style", "sideways"], ["--sideways"]):  # a bad value; an option the command does not know
        res = CliRunner().invoke(main, [*args, *wrong])
        assert res.exit_code == 2 and "sideways" in err.read_text() and len(err.read_text().splitlines()) == 1, (wrong, res.output)
    if command == "prepare":  # (a good `register` needs bUnwarpJ: tests/test_fiji.py runs it through the macro)
        args[1] = str(files / "img.tif")
        assert CliRunner().invoke(main, args).exit_code == 0 and not err.exists()


def test_console_command_keeps_status_output_and_exit_handlers_through_its_fast_exit(tmp_path):
    """`styleunwarp` (cli.run) leaves through os._exit after the command: what it printed into a
    pipe, its exit status and the exit handlers (the JVM's shutdown) must all survive that."""
    import subprocess
    import sys

    probe = ("import atexit, sys; atexit.register(lambda: print('exit handler ran', flush=True)); "
             "from styleunwarp.cli import run; run(sys.argv[1:])")
    ok = subprocess.run([sys.executable, "-c", probe, "--version"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.splitlines() == ["styleunwarp, version " + __import__("styleunwarp").__version__,
                                                            "exit handler ran"], ok
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    write_tiff(tmp_path / "cbs.tif", np.zeros((32, 32), np.float32))
    err = subprocess.run([sys.executable, "-m", "styleunwarp", "register", str(bad), str(tmp_path / "cbs.tif"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert err.returncode == 1 and "bad.tif" in err.stderr.splitlines()[-1], err
    usage = subprocess.run([sys.executable, "-m", "styleunwarp", "batch"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "Missing argument 'SOURCE'" in usage.stderr
