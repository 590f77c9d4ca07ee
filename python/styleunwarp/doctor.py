"""What styleunwarp can use on this machine, and what to install for what is missing."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from .errors import ImageJNotFoundError
from .imagej.discovery import INSTALL_HINTS, find_imagej, find_java


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = True


def _module_version(name: str) -> str | None:
    try:
        mod = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return None
    return str(getattr(mod, "__version__", "installed"))


def run_checks(fiji_dir: str | PathLike[str] | None = None) -> list[Check]:
    """Check Python, torch, the Python bridge packages, Java, ImageJ/Fiji, bUnwarpJ and Xvfb."""
    checks = [Check("python", sys.version_info >= (3, 10), f"{platform.python_version()} ({sys.executable})", "Python 3.10 or newer is needed")]
    torch_version = _module_version("torch")
    if torch_version:
        import torch

        device = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
        checks.append(Check("torch", True, f"{torch_version}, {device}"))
    else:
        checks.append(Check("torch", False, "not installed", "pip install torch==2.13.0 (CPU) before styleunwarp"))
    for mod in ("scyjava", "jpype", "imagej"):
        v = _module_version(mod)
        label = {"jpype": "jpype1", "imagej": "pyimagej"}.get(mod, mod)
        checks.append(Check(label, v is not None, v or "not installed", f"pip install {label}"))

    java = find_java()
    checks.append(
        Check("java", java.executable is not None, f"{java.version} at {java.executable}" if java.executable else "not found", INSTALL_HINTS["java"])
    )
    try:
        ij = find_imagej(fiji_dir)
        where = ij.root or ij.ij_jar
        kind = "Fiji (ImageJ2)" if ij.is_fiji else "ImageJ 1"
        checks.append(Check("imagej", True, f"{kind} {ij.ij_version or ''} at {where} (found by {ij.found_by})".replace("  ", " ")))
    except ImageJNotFoundError as exc:
        ij = None
        checks.append(Check("imagej", False, str(exc), INSTALL_HINTS["imagej"]))
    try:
        bj = find_imagej(fiji_dir, require_bunwarpj=True)
        checks.append(Check("bunwarpj", True, f"{bj.bunwarpj_jar}"))
    except ImageJNotFoundError as exc:
        checks.append(Check("bunwarpj", False, str(exc).split(";")[0], INSTALL_HINTS["bunwarpj"]))
    if java.executable is not None and ij is not None:
        checks.append(jvm_check(fiji_dir))
    xvfb = shutil.which("xvfb-run") or shutil.which("Xvfb")
    checks.append(Check("xvfb", xvfb is not None, xvfb or "not found (only needed for the .ijm macro)", INSTALL_HINTS["xvfb"], required=False))
    return checks


def jvm_check(fiji_dir: str | PathLike[str] | None = None, timeout: float = 180.0) -> Check:
    """Start the JVM in a child process exactly as ``register`` does and load its classes.

    Finding the jars is not enough (a class path the JVM cannot read looks fine on disk):
    this is the check that the registration will really start.
    """
    import styleunwarp

    env = dict(os.environ)
    pkg_parent = str(Path(styleunwarp.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-c", "from styleunwarp.imagej.jvm import _probe_main; _probe_main()", str(fiji_dir or "")]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("jvm", False, f"could not run the JVM check: {exc}", INSTALL_HINTS["java"])
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    detail = lines[-1] if lines else (out.stderr.strip().splitlines() or ["no output"])[-1]
    return Check("jvm", out.returncode == 0, detail, INSTALL_HINTS["imagej"])


def format_report(checks: list[Check]) -> str:
    """Human-readable report, one line per check plus install hints for what is missing."""
    lines = []
    for c in checks:
        mark = "ok " if c.ok else ("-- " if not c.required else "NO ")
        lines.append(f"[{mark}] {c.name:<9} {c.detail}")
        if not c.ok and c.hint:
            lines.append(f"          -> {c.hint}")
    return "\n".join(lines)
