"""Scoped torch CPU thread counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch on ``n`` CPU threads (``None``: unchanged); the caller's count is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if n is not None and int(n) != before:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
