"""Finding ImageJ from relative paths: what ``doctor`` accepts, ``register`` can use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from styleunwarp.errors import ImageJNotFoundError
from styleunwarp.imagej.discovery import find_imagej, inspect_folder

REPO = Path(__file__).resolve().parents[1]


def _real_install():
    try:
        return find_imagej(require_bunwarpj=True)
    except ImageJNotFoundError as exc:
        pytest.skip(f"real bUnwarpJ not available: {exc}")


def test_relative_folder_is_made_absolute(tmp_path, monkeypatch):
    fiji = tmp_path / "Fiji.app"
    (fiji / "jars").mkdir(parents=True)
    (fiji / "plugins").mkdir()
    (fiji / "jars" / "ij.jar").write_bytes(b"")
    (fiji / "plugins" / "bUnwarpJ_.jar").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    for given in ("Fiji.app", "./Fiji.app/", "Fiji.app/jars/.."):
        found = inspect_folder(given)
        assert found is not None and found.root == fiji.resolve()
        assert all(Path(j).is_absolute() for j in found.class_path)
    monkeypatch.chdir(fiji)
    assert find_imagej(".").root == fiji.resolve()
    monkeypatch.setenv("FIJI_HOME", ".")
    assert find_imagej().root == fiji.resolve()


def _cli(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FIJI_HOME"}
    env.update(PYTHONPATH=str(REPO / "python"), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "styleunwarp", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.bunwarpj
@pytest.mark.slow
def test_relative_fiji_dir_works_for_doctor_and_register(tmp_path):
    """``--fiji Fiji.app`` relative to the working folder, and ``FIJI_HOME=.``, run the real plugin."""
    from styleunwarp.io import write_tiff
    from styleunwarp.synth import make_pair

    ij = _real_install()
    if ij.root is None:
        pytest.skip("bUnwarpJ found outside a folder; nothing relative to test")
    pair = make_pair((128, 128), seed=3)
    write_tiff(tmp_path / "a_LOM.tif", pair.lom)
    write_tiff(tmp_path / "a_CBS.tif", pair.cbs)
    rel = os.path.relpath(ij.root, ij.root.parent)
    doc = _cli(["doctor", "--fiji", rel], cwd=ij.root.parent)
    jvm_line = next(ln for ln in doc.stdout.splitlines() if " jvm " in ln)
    assert jvm_line.startswith("[ok ]"), doc.stdout
    runs = [
        (["--fiji", rel], ij.root.parent, None),
        ([], ij.root, {"FIJI_HOME": "."}),
    ]
    for i, (extra, cwd, env) in enumerate(runs):
        out = tmp_path / f"out{i}"
        proc = _cli(["register", str(tmp_path / "a_LOM.tif"), str(tmp_path / "a_CBS.tif"), "--out", str(out), "--style", "none", "--mode", "mono", *extra], cwd=cwd, env_extra=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert (out / "direct_transf.txt").is_file() and np.isfinite(np.loadtxt(out / "direct_transf.txt", skiprows=3, max_rows=3)).all()


def test_doctor_starts_the_jvm_it_reports_on(tmp_path):
    """A folder that looks like ImageJ but whose jar is unusable passes the file checks, not the JVM check."""
    import shutil

    from styleunwarp.doctor import jvm_check

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Java not installed")
    fake = tmp_path / "Fiji.app"
    (fake / "jars").mkdir(parents=True)
    (fake / "jars" / "ij.jar").write_bytes(b"not a jar")
    assert inspect_folder(fake) is not None  # found on disk ...
    check = jvm_check(fake, timeout=120)
    assert not check.ok and "FloatProcessor" in check.detail, check.detail  # ... but the JVM cannot use it
