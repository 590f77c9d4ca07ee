"""Exceptions shared by all modules.

Every error about a file names the file and the problem, so that a batch can record a
readable reason per pair and go on.
"""

from __future__ import annotations

from os import PathLike


class StyleunwarpError(Exception):
    """Base class of every error raised on purpose by styleunwarp."""


class InputError(StyleunwarpError, ValueError):
    """A file or array given to styleunwarp cannot be used.

    Parameters
    ----------
    path
        The offending file, or ``None`` for an in-memory array.
    problem
        What is wrong, in words a user understands.
    """

    def __init__(self, path: str | PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class TransformFileError(InputError):
    """A bUnwarpJ transform file is malformed."""


class ImageJNotFoundError(StyleunwarpError, RuntimeError):
    """Java, ImageJ or the bUnwarpJ plugin could not be found or started."""
