"""The ``styleunwarp`` command line.

Each sub-command lives in its own module of this package and is listed in
:data:`_COMMANDS`; heavy dependencies (torch, the JVM) are imported only inside the
command that needs them, so ``styleunwarp --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

import click

from .. import __version__

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


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="styleunwarp")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Align light-optical (LOM) to SEM channeling-contrast (CBS) micrographs.

    Style transfer makes the LOM look CBS-like, the real bUnwarpJ registers it to the
    CBS image, and the transform is re-applied to the original LOM.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
