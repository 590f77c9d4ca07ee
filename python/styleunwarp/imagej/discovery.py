"""Finding Java, ImageJ 1 / Fiji and the bUnwarpJ plugin on this machine.

Search order: an explicit folder (``--fiji DIR``), the ``FIJI_HOME`` environment variable,
the usual install locations of Fiji.app, and finally Debian's ImageJ 1
(``/usr/share/java/ij.jar``, package ``libij-java``). A folder qualifies when it holds an
ImageJ 1 jar (``jars/ij*.jar`` in Fiji, ``ij.jar`` in plain ImageJ); bUnwarpJ is looked
for as ``plugins/bUnwarpJ_*.jar`` or ``jars/bUnwarpJ_*.jar`` beside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from ..errors import ImageJNotFoundError

DEBIAN_IJ_JAR = Path("/usr/share/java/ij.jar")

INSTALL_HINTS = {
    "java": "install a Java runtime: `apt-get install default-jre-headless` (or conda `openjdk`), or set JAVA_HOME",
    "imagej": "install ImageJ 1 (`apt-get install libij-java`) or Fiji (https://fiji.sc), then pass --fiji DIR or set FIJI_HOME",
    "bunwarpj": "bUnwarpJ ships with Fiji (Plugins > Registration > bUnwarpJ); with plain ImageJ put bUnwarpJ_.jar into its plugins/ folder and pass --fiji DIR or set FIJI_HOME",
    "xvfb": "the bUnwarpJ macro command needs a display: `apt-get install xvfb` and run under `xvfb-run`",
}


def _usual_locations() -> list[Path]:
    home = Path.home()
    return [
        home / "Fiji.app",
        home / "Fiji",
        home / "fiji",
        home / "Applications" / "Fiji.app",
        Path("/Applications/Fiji.app"),
        Path("/opt/Fiji.app"),
        Path("/opt/fiji"),
        Path("/usr/local/Fiji.app"),
        home / "ImageJ",
        Path("/opt/ImageJ"),
        Path("/usr/share/imagej"),
    ]


@dataclass(frozen=True)
class ImageJInstall:
    """An ImageJ installation usable by styleunwarp.

    Attributes
    ----------
    root
        The Fiji.app / ImageJ folder (``None`` for Debian's bare ``ij.jar``).
    ij_jar
        The ImageJ 1 jar.
    bunwarpj_jar
        The bUnwarpJ plugin jar, or ``None`` if absent.
    is_fiji
        Whether ImageJ2 (a full Fiji, usable with ``imagej.init``) is present.
    found_by
        How it was found (``--fiji``, ``FIJI_HOME``, a usual location, Debian).
    """

    root: Path | None
    ij_jar: Path
    bunwarpj_jar: Path | None
    is_fiji: bool
    found_by: str
    extra_jars: tuple[Path, ...] = field(default=())

    @property
    def class_path(self) -> list[str]:
        """Jars for a plain ImageJ 1 JVM: ij.jar, bUnwarpJ and the folder's other plugins."""
        jars = [self.ij_jar, *([self.bunwarpj_jar] if self.bunwarpj_jar else []), *self.extra_jars]
        seen: dict[str, None] = {}
        for j in jars:
            seen.setdefault(str(j), None)
        return list(seen)

    @property
    def ij_version(self) -> str | None:
        """ImageJ 1 version read from the jar (e.g. ``1.53t``), or ``None``."""
        return _ij_version_from_name(self.ij_jar) or _ij_version_from_class(self.ij_jar)


def _ij_version_from_name(jar: Path) -> str | None:
    m = re.match(r"ij-(\d[\w.]*)\.jar$", jar.name)
    return m.group(1) if m else None


def _ij_version_from_class(jar: Path) -> str | None:
    """The ``ij.ImageJ.VERSION`` constant, read from the class file's constant pool."""
    try:
        with zipfile.ZipFile(jar) as z:
            data = z.read("ij/ImageJ.class")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    m = re.search(rb"\b1\.\d\d[a-z]\d?\b", data)
    return m.group(0).decode() if m else None


def jar_version(jar: Path, member: str = "META-INF/MANIFEST.MF", pattern: str = r"^Implementation-Version:\s*(\S+)") -> str | None:
    """A version string read from a file inside a jar, or ``None``."""
    try:
        with zipfile.ZipFile(jar) as z:
            text = z.read(member).decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1) if m else None


def _find_ij_jar(folder: Path) -> Path | None:
    candidates = [folder / "ij.jar", folder / "jars" / "ij.jar"]
    candidates += sorted((folder / "jars").glob("ij-1*.jar")) if (folder / "jars").is_dir() else []
    return next((c for c in candidates if c.is_file()), None)


def _find_bunwarpj(folders: list[Path]) -> Path | None:
    for folder in folders:
        if folder.is_dir():
            hits = sorted(folder.glob("bUnwarpJ_*.jar")) + sorted(folder.glob("bUnwarpJ*.jar"))
            if hits:
                return hits[0]
    return None


def absolute_path(path: str | PathLike[str]) -> Path:
    """``path`` with ``~`` expanded and made absolute (symlinks resolved).

    Every path handed to the JVM goes through here: a relative class path is resolved by
    the JVM against its own idea of the working folder, and pyimagej changes folders, so a
    relative ``--fiji Fiji.app`` or ``FIJI_HOME=.`` must never reach it as given.
    """
    return Path(path).expanduser().resolve()


def inspect_folder(folder: str | PathLike[str], found_by: str = "--fiji") -> ImageJInstall | None:
    """An :class:`ImageJInstall` for a Fiji.app or ImageJ folder, or ``None`` if it has no ImageJ."""
    root = absolute_path(folder)
    if not root.is_dir():
        return None
    ij = _find_ij_jar(root)
    if ij is None:
        return None
    bunwarpj = _find_bunwarpj([root / "plugins", root / "jars", root])
    is_fiji = (root / "jars").is_dir() and any((root / "jars").glob("imagej-2*.jar"))
    extra = tuple(sorted((root / "plugins").glob("*.jar"))) if (root / "plugins").is_dir() else ()
    return ImageJInstall(root, ij, bunwarpj, is_fiji, found_by, extra)


def find_imagej(fiji_dir: str | PathLike[str] | None = None, *, require_bunwarpj: bool = False) -> ImageJInstall:
    """Find ImageJ (and bUnwarpJ) in the documented search order.

    Parameters
    ----------
    fiji_dir
        An explicit Fiji.app or ImageJ folder; when given, only it is considered.
    require_bunwarpj
        Skip installations without the bUnwarpJ plugin, and fail if none has it.

    Raises
    ------
    ImageJNotFoundError
        Listing the places tried and what to install.
    """
    tried: list[str] = []
    if fiji_dir is not None and str(fiji_dir) != "":
        found = inspect_folder(fiji_dir, "--fiji")
        if found is None:
            raise ImageJNotFoundError(f"{fiji_dir}: no ImageJ here (expected ij.jar or jars/ij-*.jar); {INSTALL_HINTS['imagej']}")
        if require_bunwarpj and found.bunwarpj_jar is None:
            raise ImageJNotFoundError(f"{fiji_dir}: ImageJ found but no bUnwarpJ plugin; {INSTALL_HINTS['bunwarpj']}")
        return found
    candidates: list[tuple[Path, str]] = []
    env = os.environ.get("FIJI_HOME")
    if env:
        candidates.append((absolute_path(env), "FIJI_HOME"))
    candidates += [(p, "usual location") for p in _usual_locations()]
    fallback: ImageJInstall | None = None
    for folder, how in candidates:
        tried.append(str(folder))
        found = inspect_folder(folder, how)
        if found is None:
            continue
        if found.bunwarpj_jar is not None or not require_bunwarpj:
            return found
        fallback = fallback or found
    if DEBIAN_IJ_JAR.is_file() and not require_bunwarpj:
        return ImageJInstall(None, DEBIAN_IJ_JAR, None, False, "Debian libij-java")
    tried.append(str(DEBIAN_IJ_JAR))
    if require_bunwarpj:
        where = f" (ImageJ found at {fallback.root or fallback.ij_jar}, without the plugin)" if fallback else ""
        raise ImageJNotFoundError(f"bUnwarpJ not found{where}; tried {', '.join(tried)}; {INSTALL_HINTS['bunwarpj']}")
    raise ImageJNotFoundError(f"ImageJ not found; tried {', '.join(tried)}; {INSTALL_HINTS['imagej']}")


@dataclass(frozen=True)
class JavaInfo:
    """The Java runtime styleunwarp would start."""

    executable: Path | None
    java_home: Path | None
    version: str | None


def find_java() -> JavaInfo:
    """The Java runtime from ``JAVA_HOME`` or the ``PATH``, with its version (``None`` if absent)."""
    home = os.environ.get("JAVA_HOME")
    exe: Path | None = None
    if home and (Path(home) / "bin" / "java").exists():
        exe = Path(home) / "bin" / "java"
    elif shutil.which("java"):
        exe = Path(shutil.which("java")).resolve()  # type: ignore[arg-type]
    if exe is None:
        return JavaInfo(None, None, None)
    try:
        out = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=30)
        m = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
        version = m.group(1) if m else None
    except (OSError, subprocess.TimeoutExpired):
        version = None
    java_home = Path(home) if home else exe.parent.parent
    return JavaInfo(exe, java_home, version)
