"""Shared fixtures: the real bUnwarpJ (skipped with a reason where absent)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bunwarpj():
    """Start the JVM with ImageJ and bUnwarpJ; return ``jclass`` to get Java classes.

    Skips the test with the reason when Java, ImageJ or the plugin is not installed.
    """
    from styleunwarp.errors import ImageJNotFoundError
    from styleunwarp.imagej import find_imagej, jclass, start

    try:
        find_imagej(require_bunwarpj=True)
        start(require_bunwarpj=True)
    except ImageJNotFoundError as exc:
        pytest.skip(f"real bUnwarpJ not available: {exc}")
    return jclass
