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
