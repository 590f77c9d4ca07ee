"""Starting the JVM with ImageJ (and bUnwarpJ) once per process.

A Java virtual machine can be started only once in a Python process, so the installation
it was started with is remembered here; later calls reuse it (or fail clearly if asked for
another one). With a full Fiji (ImageJ2) present, pyimagej's ``imagej.init(fiji_dir,
mode="headless")`` starts it; otherwise scyjava starts it with ImageJ 1's jar and the
plugin jars on the class path. No JDK or Maven artefact is ever downloaded unless the
user sets ``STYLEUNWARP_ALLOW_DOWNLOADS=1``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from os import PathLike

from ..errors import ImageJNotFoundError
from .discovery import INSTALL_HINTS, ImageJInstall, find_imagej, find_java

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JvmSettings:
    """How to start the JVM.

    Attributes
    ----------
    heap
        Maximum heap, Java syntax (``"4g"``); ``None`` keeps the JVM default (1/4 of RAM).
    headless
        Start with ``-Djava.awt.headless=true`` (no display needed).
    """

    heap: str | None = None
    headless: bool = True


@dataclass(frozen=True)
class _Running:
    install: ImageJInstall
    settings: JvmSettings
    imagej2: object | None  # the pyimagej gateway when started through pyimagej


_lock = threading.Lock()
_running: list[_Running] = []  # at most one entry: the JVM is process-wide by nature


def jvm_install() -> ImageJInstall | None:
    """The installation the running JVM was started with, or ``None`` if not started."""
    return _running[0].install if _running else None


def start(
    fiji_dir: str | PathLike[str] | None = None,
    settings: JvmSettings | None = None,
    *,
    require_bunwarpj: bool = True,
) -> ImageJInstall:
    """Start the JVM with ImageJ (idempotent) and return the installation in use.

    Raises
    ------
    ImageJNotFoundError
        If Java, ImageJ or (with ``require_bunwarpj``) bUnwarpJ is missing, or the JVM is
        already running without the plugin.
    """
    settings = settings or JvmSettings()
    with _lock:
        if _running:
            current = _running[0].install
            if require_bunwarpj and current.bunwarpj_jar is None:
                raise ImageJNotFoundError(
                    f"the JVM of this process was started without bUnwarpJ ({current.root or current.ij_jar}); "
                    "start styleunwarp again with --fiji pointing at a folder that has it"
                )
            return current
        install = find_imagej(fiji_dir, require_bunwarpj=require_bunwarpj)
        java = find_java()
        if java.executable is None:
            raise ImageJNotFoundError(f"Java not found; {INSTALL_HINTS['java']}")
        gateway = _start_jvm(install, settings, java.java_home)
        _running.append(_Running(install, settings, gateway))
        atexit.register(_shutdown_thread_pool)
        log.info("JVM started with %s", install.root or install.ij_jar)
        return install


def _start_jvm(install: ImageJInstall, settings: JvmSettings, java_home: object) -> object | None:
    import scyjava

    if os.environ.get("STYLEUNWARP_ALLOW_DOWNLOADS") != "1":
        scyjava.config.set_java_constraints(fetch="never")
    if java_home and not os.environ.get("JAVA_HOME"):
        os.environ["JAVA_HOME"] = str(java_home)
    if settings.heap:
        scyjava.config.add_option(f"-Xmx{settings.heap}")
    if install.is_fiji and install.root is not None:
        import imagej

        mode = "headless" if settings.headless else "interactive"
        return imagej.init(str(install.root), mode=mode)
    if settings.headless:
        scyjava.config.add_option("-Djava.awt.headless=true")
    scyjava.config.add_classpath(*install.class_path)
    try:
        scyjava.start_jvm()
    except Exception as exc:  # JPype raises plain OSError/RuntimeError subclasses
        raise ImageJNotFoundError(f"could not start the JVM ({exc}); {INSTALL_HINTS['java']}") from exc
    return None


def _shutdown_thread_pool() -> None:
    """Stop ImageJ's non-daemon thread pool so that the process can exit (subsampling leaves it alive)."""
    try:
        import scyjava

        if scyjava.jvm_started():
            scyjava.jimport("ij.util.ThreadUtil").threadPoolExecutor.shutdownNow()
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


def jclass(name: str):
    """A Java class by its full name, once the JVM runs.

    Uses ``scyjava.jimport`` rather than ``import`` statements so that a Python folder named
    like a Java package (``bunwarpj``) on ``sys.path`` cannot shadow it.
    """
    import scyjava

    if not scyjava.jvm_started():
        raise ImageJNotFoundError("the JVM is not running: call styleunwarp.imagej.start() first")
    return scyjava.jimport(name)


PROBE_CLASSES = ("ij.process.FloatProcessor", "ij.ImagePlus", "bunwarpj.bUnwarpJ_", "bunwarpj.Param")
"""Classes ``register`` needs; :func:`probe` loads each of them."""


def probe(fiji_dir: str | PathLike[str] | None = None) -> str:
    """Start the JVM exactly as ``register`` does and load the classes it needs.

    Returns a one-line description of the running installation. Meant to run in a child
    process (the JVM cannot be restarted in this one): ``styleunwarp doctor`` does so.

    Raises
    ------
    ImageJNotFoundError
        The JVM does not start, or a class is missing from its class path.
    """
    install = start(fiji_dir, require_bunwarpj=False)
    missing = []
    for name in PROBE_CLASSES:
        if name.startswith("bunwarpj.") and install.bunwarpj_jar is None:
            continue
        try:
            jclass(name)
        except Exception as exc:  # noqa: BLE001 - JPype raises TypeError/ImportError for a missing class
            missing.append(f"{name} ({type(exc).__name__})")
    if missing:
        where = install.root or install.ij_jar
        raise ImageJNotFoundError(f"{where}: the JVM started but cannot load {', '.join(missing)}")
    import scyjava

    version = scyjava.jimport("java.lang.System").getProperty("java.version")
    return f"JVM {version} loads ImageJ{' and bUnwarpJ' if install.bunwarpj_jar else ''} from {install.root or install.ij_jar}"


def _probe_main() -> None:  # pragma: no cover - run in a child process by the doctor
    import sys

    try:
        print(probe(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None))
    except Exception as exc:  # noqa: BLE001 - the parent prints the one line
        print(f"{type(exc).__name__}: {exc}".splitlines()[0])
        sys.exit(1)
    _shutdown_thread_pool()
