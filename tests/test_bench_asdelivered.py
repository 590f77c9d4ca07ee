"""The as-delivered benchmark's test pairs (``benchmarks/bench_asdelivered.py``) on real CBS images."""

from pathlib import Path

import numpy as np

from conftest import load_benchmark, needs_data, real_data


@needs_data("openecci-cbs", "steel_SEM_001.tif")
def test_the_near_cycle_deforms_every_pair_near_identity_and_renders_the_same_loms(tmp_path):
    """``--cycle near`` (the issue's steel target: near-aligned pairs) gives every pair a near-identity
    deformation, no larger than its bounds, over the same renderings as the default cycle."""
    from styleunwarp.io import read_image
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic, read_transform

    bench = load_benchmark("bench_asdelivered")
    cbs_dir = real_data("openecci-cbs", "steel_SEM_001.tif")[0].parent
    near = bench._blind_pairs(cbs_dir, tmp_path / "near", 3, 4, "blind_lom3", cycle="near", crop=192)
    mixed = bench._blind_pairs(cbs_dir, tmp_path / "mixed", 3, 4, "blind_lom3", cycle="mixed", crop=192)
    assert [r["kind"].split()[0] for r in near] == ["near-identity"] * 4
    assert [r["kind"].split()[0] for r in mixed] == ["near-identity", "small"] * 2
    for a, b in zip(near, mixed):
        assert np.array_equal(read_image(a["cbs"]).data, read_image(b["cbs"]).data)
        params = [Path(r["lom"]).with_name(f"{r['name']}_params.json").read_text() for r in (a, b)]
        assert params[0] == params[1], a["name"]  # the same rendering, only the deformation differs
    bounds = bench.KINDS["near-identity"]
    for r in near:
        shape = read_image(r["cbs"]).data.shape[:2]
        corner = np.hypot(*shape) / 2 * np.deg2rad(bounds["rotation_deg"][1])  # the rotation's largest move
        start = tre(identity_elastic(4, shape), read_transform(r["truth"]), shape, shape)
        assert 0 < start.mean <= bounds["shift_px"][1] + bounds["elastic_px"][1] + corner, r["name"]


def file_shape(path: Path) -> tuple[int, int]:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        return tuple(tif.pages[0].shape[:2])


@needs_data("openecci-cbs", "steel_SEM_002.tif")
def test_delivered_cbs_pairs_give_register_the_file_itself_and_a_lom_of_its_whole_field(tmp_path):
    """``--delivered-cbs``: the CBS written is the real file byte for byte (data bar, FEI pixel size),
    and the LOM and its truth cover the whole field above the bar, the grid ``register`` crops the
    CBS to (its data bar found in the file)."""
    from styleunwarp.io import read_image
    from styleunwarp.transform import read_transform, to_dense

    bench = load_benchmark("bench_asdelivered")
    cbs_dir = real_data("openecci-cbs", "steel_SEM_002.tif")[0].parent
    rows = bench._blind_pairs(cbs_dir, tmp_path, 3, 2, "blind_lom3", cycle="near", delivered=True)
    for r in rows:
        original = cbs_dir / f"{r['name']}.tif"
        assert Path(r["cbs"]).read_bytes() == original.read_bytes()
        cbs = read_image(r["cbs"])
        bar = cbs.metadata.get("data_bar_rows", 0)
        assert bar > 0 and cbs.pixel_size is not None, r["name"]
        field = cbs.data.shape[:2]  # read_image crops the data bar, as register does
        rows_in_file, columns_in_file = file_shape(original)
        assert field == (rows_in_file - bar, columns_in_file)
        assert read_image(r["lom"]).data.shape[:2] == field
        assert to_dense(read_transform(r["truth"]), field).shape == (2, *field)


@needs_data("openecci-cbs", "steel_SEM_003.tif")
def test_every_independent_renderer_draws_a_lom_on_the_cbs_grid_deterministically():
    """Each renderer of ``BLIND_RENDERERS`` (the steel renderings made differently from ours) turns a
    real CBS crop into a LOM on the CBS's grid (grey or RGB), float32 in [0, 1], the same for the same
    random state and a different one for another, with JSON-serialisable parameters. (Where its lines lie
    against the CBS boundaries is measured, not asserted: ``bench_representation_floor.py``.)"""
    import json

    bench = load_benchmark("bench_asdelivered")
    path = real_data("openecci-cbs", "steel_SEM_003.tif")[0]
    for name, module in bench.BLIND_RENDERERS.items():
        renderer = bench.load_renderer(module)
        cbs = renderer.crop_cbs(path, 256, np.random.default_rng(4))
        assert cbs.shape == (256, 256), name
        lom, params = renderer.render_lom(cbs, np.random.default_rng(5))
        again, params_again = renderer.render_lom(cbs, np.random.default_rng(5))
        other, _ = renderer.render_lom(cbs, np.random.default_rng(6))
        assert lom.shape[:2] == cbs.shape and lom.ndim in (2, 3) and lom.dtype == np.float32, name
        assert 0.0 <= lom.min() and lom.max() <= 1.0 and lom.std() > 0.01, name
        assert np.array_equal(lom, again) and params == params_again, name
        assert not (other.shape == lom.shape and np.array_equal(other, lom)), name
        json.dumps(params)
