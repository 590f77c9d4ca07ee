"""The README's Python examples run as written (on synthetic files made here)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from styleunwarp.errors import ImageJNotFoundError
from styleunwarp.io import write_tiff
from styleunwarp.synth import make_pair

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
CLUSTER_BLOCKS = re.findall(r"```python cluster-only\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
"""Examples that need a cluster (Slurm): compiled, and the styleunwarp calls they make checked."""


def test_cluster_examples_compile_and_call_real_api():
    import inspect

    from styleunwarp.pipeline.batch import run_batch

    assert CLUSTER_BLOCKS, "the README's Slurm example is missing"
    for i, code in enumerate(CLUSTER_BLOCKS):
        compile(code, f"README.md cluster block {i + 1}", "exec")
        for kw in re.findall(r"run_batch\([^)]*?(\w+)=", code):
            assert kw in inspect.signature(run_batch).parameters, kw


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    code = BLOCKS[index]
    if 'backend="native"' not in code:  # the default backend: the real bUnwarpJ
        from styleunwarp.imagej import find_imagej

        try:
            find_imagej(require_bunwarpj=True)
        except ImageJNotFoundError as exc:
            pytest.skip(f"README block {index + 1} uses the real bUnwarpJ: {exc}")
    pair = make_pair((256, 256), seed=5)
    write_tiff(tmp_path / "sample_LOM.tif", pair.lom)
    write_tiff(tmp_path / "sample_CBS.tif", pair.cbs)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)  # noqa: S102 - our own README
    registered = namespace["registered"]
    assert registered.shape == pair.cbs.shape and np.isfinite(registered).all()
    from styleunwarp.quality import tre
    from styleunwarp.transform import read_transform

    files = sorted(tmp_path.rglob("direct_transf.txt"))
    assert files, "the example writes the direct transform"
    err = tre(read_transform(files[0]), pair.truth, pair.cbs.shape, pair.lom.shape)
    assert err.mean < 3.0, f"README block {index + 1}: TRE {err.mean:.2f} px"
