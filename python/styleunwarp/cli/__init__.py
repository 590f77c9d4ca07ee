"""The ``styleunwarp`` command line.

Each sub-command lives in its own module of this package and is listed in
:data:`_COMMANDS`; heavy dependencies (torch, the JVM) are imported only inside the
command that needs them, so ``styleunwarp --help`` stays fast.

Errors: every command's expected failures (a bad file, a missing plugin, an unreadable
folder) reach the user as one line naming the file and the problem, through one handler
in :meth:`_LazyGroup.invoke`; ``styleunwarp --debug ...`` (or ``STYLEUNWARP_DEBUG=1``)
shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os

# numpy's BLAS on one thread unless the user says otherwise (before numpy loads it): the
# pipeline's matrix products are small (B-spline maps, 512 x 19 @ 19 x 512), and two BLAS
# threads on a busy 2-core machine made them ~10x slower in wall time (docs/native.md);
# torch keeps its own thread setting. Must run before anything imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from .. import __version__  # noqa: E402

# (module, attribute) of every sub-command, in the order ``--help`` lists them.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("demo", "demo"),
    ("synth", "synth"),
    ("register", "register"),
    ("prepare", "prepare"),
    ("batch", "batch"),
    ("batch", "watch"),
    ("transform", "transform"),
    ("doctor", "doctor"),
    ("train", "train"),
    ("style", "style"),
    ("report", "report"),
)


class _LazyGroup(click.Group):
    """A click group that imports a sub-command's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [attr.replace("_", "-") for _, attr in _COMMANDS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        for module, attr in _COMMANDS:
            if attr.replace("_", "-") == name:
                mod = importlib.import_module(f"{__name__}.{module}")
                return getattr(mod, attr)
        return None

    def invoke(self, ctx: click.Context):
        from ..errors import StyleunwarpError

        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as exc:
            _record_error(ctx, exc.format_message())
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (StyleunwarpError, ValueError, OSError) as exc:
            _record_error(ctx, error_line(exc))
            if ctx.params.get("debug") or os.environ.get("STYLEUNWARP_DEBUG") == "1":
                raise
            raise click.ClickException(error_line(exc)) from exc


def _error_file_in(args: list[str]) -> str | None:
    """``--error-file``'s value in raw arguments: for a usage error click raised before it read the option."""
    for i, arg in enumerate(args):
        if arg == "--error-file" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--error-file="):
            return arg.split("=", 1)[1]
    return None


def _record_error(ctx: click.Context, line: str) -> None:
    """Write ``line`` to the command's ``--error-file`` (:func:`.options.error_file_option`), if it has one."""
    from ..io import atomic_write_text
    from .options import ERROR_FILE_KEY

    path = ctx.meta.get(ERROR_FILE_KEY) or _error_file_in(list(ctx.args))
    if path:
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, line.strip().splitlines()[0] + "\n" if line.strip() else "error\n")


def error_line(exc: BaseException) -> str:
    """One line for the user: the file and the problem (plus a hint for unexpected errors)."""
    from ..errors import StyleunwarpError

    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    if len(lines) > 1:
        line += " …"
    if not isinstance(exc, (StyleunwarpError, OSError)):
        line = f"{type(exc).__name__}: {line} (styleunwarp --debug ... shows where)"
    return line


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="styleunwarp")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error (default: one line naming the file and the problem).")
def main(verbose: int, debug: bool) -> None:
    """Align light-optical (LOM) to SEM channeling-contrast (CBS) micrographs.

    Style transfer makes the LOM look CBS-like, the real bUnwarpJ registers it to the
    CBS image, and the transform is re-applied to the original LOM.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def run(args: list[str] | None = None) -> None:
    """The ``styleunwarp`` console command: :func:`main`, then a fast exit.

    After the command has finished, its files are closed and the exit handlers (the JVM's
    shutdown among them) have run, the interpreter would still spend about a second tearing
    down torch and numba modules (measured: 0.86 s for ``import torch`` alone on the 2-core
    development machine), a cost every command paid. ``run`` flushes the output streams and
    logging, runs the exit handlers, then leaves with the command's exit status through
    ``os._exit``. Python callers use :func:`main` (or ``CliRunner``), which exits normally.
    Set ``STYLEUNWARP_SLOW_EXIT=1`` to exit the ordinary way.
    """
    import atexit
    import sys

    try:
        main(args=args, prog_name="styleunwarp")
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = int(exc.code or 0)
        else:  # a message as exit status: printed, status 1 (as the interpreter does)
            print(exc.code, file=sys.stderr)
            code = 1
    if os.environ.get("STYLEUNWARP_SLOW_EXIT") == "1":
        sys.exit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code)
