"""Watch mode: process pairs as the microscope writes them.

A file counts once it stops growing: its size and modification time are unchanged over
``settle`` seconds (and it is not empty). Each scan runs :func:`run_batch`'s pair logic on
the complete, not yet processed pairs, so all of the batch's guarantees hold.
"""

from __future__ import annotations

import logging
import time
from os import PathLike
from pathlib import Path
from typing import Callable

from .batch import PairJob, collect_results, is_done, process_pair, write_results
from .pairing import DEFAULT_CBS_PATTERN, DEFAULT_LOM_PATTERN, find_pairs

log = logging.getLogger(__name__)


def _signature(path: Path) -> tuple[int, float] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime)


def watch(
    folder: str | PathLike[str],
    out_dir: str | PathLike[str],
    *,
    interval: float = 5.0,
    settle: float = 10.0,
    max_idle: float | None = None,
    lom_pattern: str = DEFAULT_LOM_PATTERN,
    cbs_pattern: str = DEFAULT_CBS_PATTERN,
    echo: Callable[[str], None] = print,
    **pair_options,
) -> int:
    """Process complete new pairs of ``folder`` until interrupted (or idle for ``max_idle`` s).

    ``pair_options`` are :class:`PairJob` fields (model, style, backend, params, fiji_dir,
    prealign, coarse_sigma, coarse, lom_pixel_size, cbs_pixel_size). Returns the number of pairs processed.
    """
    from ..registration import PIPELINE_DEFAULTS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opts = {"model": None, "style": "model", "backend": "bunwarpj", "params": PIPELINE_DEFAULTS, "fiji_dir": None, "prealign": False, "coarse_sigma": None}
    opts.update(pair_options)
    seen: dict[Path, tuple[tuple[int, float], float]] = {}
    processed, last_work = 0, time.monotonic()
    echo(f"watching {folder} (every {interval:g} s, files settle after {settle:g} s); Ctrl-C stops")
    try:
        while True:
            now = time.monotonic()
            pairs, unpaired = find_pairs(folder, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern)
            for spec in pairs:
                if is_done(out / spec.name) or (out / spec.name / "error.json").is_file():
                    continue
                stable = True
                for f in (spec.lom, spec.cbs):
                    sig = _signature(f)
                    if sig is None or sig[0] == 0:
                        stable = False
                        continue
                    prev = seen.get(f)
                    if prev is None or prev[0] != sig:
                        seen[f] = (sig, now)
                        stable = False
                    elif now - prev[1] < settle:
                        stable = False
                if not stable:
                    continue
                status = process_pair(PairJob(spec, out, **opts))
                processed += 1
                last_work = time.monotonic()
                echo(f"{spec.name}: {status}")
                write_results(out, collect_results(out, pairs, unpaired))
            if max_idle is not None and time.monotonic() - last_work > max_idle:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        echo("stopped")
    return processed
