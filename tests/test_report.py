"""The batch report: figures (grid, Jacobian, checkerboard, thumbnails) and report.html."""

from __future__ import annotations

import csv
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from styleunwarp.io import write_png, write_tiff
from styleunwarp.pipeline.overlay import overlay_rgb
from styleunwarp.report import (
    RESULT_COLUMNS,
    checkerboard_png,
    deformation_grid_png,
    jacobian_png,
    thumbnail,
    write_report,
)
from styleunwarp.transform import (
    ElasticTransform,
    affine_elastic,
    identity_elastic,
    jacobian_determinant,
    warp_image,
    write_elastic,
)

SHAPE = (64, 80)
ODD_NAME = 'a <b> & "c" [1]'
EVIL_ERROR = "<script>alert('x')</script> & broken"


# ------------------------------------------------------------------------------- helpers
def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 180) & (rgb[..., 1] < 70) & (rgb[..., 2] < 70)


def _blobs(shape, seed) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.random(shape), 3)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.float32)


def _folding(shape=SHAPE, intervals=4) -> ElasticTransform:
    ident = identity_elastic(intervals, shape)
    cx = ident.cx.copy()
    cx[3, 3] += 3.0 * (shape[1] - 1) / intervals  # drag one control point far past its neighbours
    return ElasticTransform(cx, ident.cy)


def _make_pair(root: Path, name: str, *, seed: int, direct: ElasticTransform, rgb: bool = False,
               tre: dict | None = None, tier: str | None = None) -> Path:
    d = root / name
    d.mkdir()
    cbs = _blobs(SHAPE, seed)
    target = 255.0 - cbs  # the representation bUnwarpJ compared differs from the CBS itself
    source = _blobs(SHAPE, seed)  # the LOM "is" the CBS here: the pictures only need real files
    registered = warp_image(source, direct, SHAPE)
    originals = root.parent / "acquisition"
    originals.mkdir(exist_ok=True)
    write_tiff(originals / f"{name}_LOM.tif", source)
    write_tiff(originals / f"{name}_CBS.tif", cbs)
    write_tiff(d / "target.tif", target)
    write_tiff(d / "styled.tif", source)
    write_tiff(d / "registered.tif", np.stack([registered] * 3, -1) if rgb else registered)
    write_elastic(direct, d / "direct_transf.txt")
    write_png(d / "overlay.png", overlay_rgb(registered, target))
    det = jacobian_determinant(direct, SHAPE)
    metrics = {
        "lom": str(originals / f"{name}_LOM.tif"), "cbs": str(originals / f"{name}_CBS.tif"), "backend": "bunwarpj", "style": "model",
        "model": "models/edges", "style_target": "edges", "coarse": {"kept": True, "rotation_deg": 1.5},
        "elastic": {"kept": "elastic", "reason": "the elastic result agrees better with the target than its start"},
        "params": {"mode": "accurate", "img_subsamp_fact": 0, "min_scale_deformation": 0, "max_scale_deformation": 2,
                   "divergence_weight": 0.1, "curl_weight": 0.1, "landmark_weight": 0.0, "image_weight": 1.0,
                   "consistency_weight": 10.0, "stop_threshold": 0.01},
        "nmi_before": 1.05, "nmi_after": 1.3,
        "transform": {"displacement_mean": 2.0, "displacement_max": 3.0, "jacobian_min": float(det.min()),
                      "jacobian_max": float(det.max()), "folded_fraction": float((det <= 0).mean()),
                      "roughness": float(det.std()), "inside_fraction": 1.0, "consistency_error": 0.4},
        "seconds": {"style": 0.5, "registration": 4.0, "apply": 0.2, "total": 5.0},
    }
    if tre:
        metrics["tre"] = tre
        metrics["tier"] = tier
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return d


def _row(pair, status, **kw) -> dict:
    row = dict.fromkeys(RESULT_COLUMNS, "")
    row.update(pair=pair, status=status, **{k: str(v) for k, v in kw.items()})
    return row


@pytest.fixture()
def batch(tmp_path: Path) -> Path:
    """A small batch folder with real files: 3 done pairs, 1 failed, 1 unpaired."""
    root = tmp_path / "batch run"
    root.mkdir()
    shift = affine_elastic(np.array([[1, 0, 1.5], [0, 1, -1.0]]), 4, SHAPE)
    _make_pair(root, "plain", seed=1, direct=shift, tre={"mean": 0.8, "median": 0.7, "p95": 1.4, "max": 2.0},
               tier="good")
    _make_pair(root, ODD_NAME, seed=2, direct=shift, rgb=True)
    _make_pair(root, "folded", seed=3, direct=_folding(), tre={"mean": 9.0, "median": 8.0, "p95": 20.0, "max": 30.0},
               tier="poor")
    failed = root / "broken"
    failed.mkdir()
    write_tiff(failed / "target.tif", _blobs(SHAPE, 4))
    (failed / "registered.tif").write_bytes(b"II*\x00 truncated garbage")  # a half-written leftover
    (failed / "error.json").write_text(json.dumps({"pair": "broken", "stage": "registration", "error": EVIL_ERROR}))
    rows = [
        _row("plain", "done", lom="/data/lom/plain.tif", cbs="/data/cbs/plain.tif", tier="good", grade_source="tre",
             tre_mean_px=0.8, tre_p95_px=1.4, nmi_before=1.05, nmi_after=1.3, consistency_px=0.4,
             folded_fraction=0.0, jacobian_min=1.0, roughness=0.0, displacement_mean_px=1.8, registration_s=4.0,
             total_s=5.0),
        _row(ODD_NAME, "done", lom=f"/data/lom/{ODD_NAME}.tif", cbs=f"/data/cbs/{ODD_NAME}.tif", tier="decent",
             grade_source="grader", nmi_before=1.02, nmi_after=1.2, consistency_px=0.9, folded_fraction=0.0,
             total_s=7.0, registration_s=6.0),
        _row("folded", "done", tier="poor", grade_source="tre", tre_mean_px=9.0, tre_p95_px=20.0, nmi_before=1.05,
             nmi_after=1.06, folded_fraction=0.02, total_s=9.0, registration_s=8.0),
        _row("broken", "failed", lom="/data/lom/broken.tif", cbs="/data/cbs/broken.tif", error=EVIL_ERROR),
        _row("lonely", "unpaired", lom="/data/lom/lonely.tif", error="no CBS image matches this LOM name"),
    ]
    with open(root / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return root


class _StrictParser(HTMLParser):
    """Collects links and ids; records unbalanced or misnested tags as problems."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if key in a:
                self.links.append((tag, a[key]))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(html_text: str) -> _StrictParser:
    p = _StrictParser()
    p.feed(html_text)
    p.close()
    return p


# ------------------------------------------------------------------------------- the report
def test_report_is_well_formed_offline_and_links_exist(batch: Path):
    out = write_report(batch)
    assert out == batch / "report.html" and out.is_file()
    text = out.read_text(encoding="utf-8")
    p = _parse(text)
    assert p.problems == [] and p.stack == []
    assert not re.search(r"(?i)(https?:|//[a-z]|<script[^>]*\bsrc=|<link\b)", text), "external resource in report"
    imgs = [v for tag, v in p.links if tag == "img"]
    assert len(imgs) >= 15  # 3 done pairs x 5 thumbnails
    for tag, value in p.links:
        if value.startswith("#"):
            assert value[1:] in p.ids, value
            continue
        parts = urlsplit(value)
        assert not parts.scheme and not parts.netloc and not value.startswith("/"), value
        assert (batch / unquote(parts.path)).is_file(), value


def test_report_escapes_names_and_errors(batch: Path):
    text = write_report(batch).read_text(encoding="utf-8")
    assert ODD_NAME not in text and EVIL_ERROR not in text and "alert('x')" not in text
    assert "a &lt;b&gt; &amp; &quot;c&quot; [1]" in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; broken" in text
    plain = "".join(_parse(text).text)
    assert ODD_NAME in plain and EVIL_ERROR in plain  # what the reader sees is the real name
    assert "no CBS image matches this LOM name" in plain
    # the odd pair's pictures are linked through URL-quoted relative paths
    assert "a%20%3Cb%3E%20%26%20%22c%22%20%5B1%5D/thumbs/grid.png" in text


def test_report_summary_counts_tiers_and_failures(batch: Path):
    text = write_report(batch).read_text(encoding="utf-8")
    tiers = dict((t, int(n)) for n, t in re.findall(r'<div class="card"><b>(\d+)</b><span class="badge t-(\w+)">', text))
    assert tiers == {"good": 1, "decent": 1, "bad": 0, "poor": 1}
    cards = {label: value for value, label in re.findall(r'<div class="card"[^>]*><b>([^<]*)</b>([^<]+)</div>', text)}
    assert cards["pairs"] == "5" and cards["done"] == "3" and cards["failed"] == "1" and cards["unpaired"] == "1"
    assert cards["median time / pair"] == "7.0 s"
    assert cards["folded"] == "1"
    # bar chart carries the same counts; the scatter uses TRE because some pairs have it
    assert "<title>good: 1</title>" in text and "<title>failed: 1</title>" in text
    assert "TRE mean (px)" in text
    # grader tiers are marked as estimates
    assert 'class="badge t-decent est"' in text and "≈ decent" in text


def test_report_makes_figures_and_survives_bad_files(batch: Path):
    from styleunwarp.report import VIEWS

    text = write_report(batch).read_text(encoding="utf-8")
    for name in ("plain", ODD_NAME, "folded"):
        d = batch / name
        for view in VIEWS:
            assert (d / view.file).is_file(), (name, view.file)
            thumb = _png(d / "thumbs" / view.file)
            assert max(thumb.shape[:2]) <= 160
    grid = _png(batch / "folded" / "grid.png")
    assert _red(grid).any() and not _red(_png(batch / "plain" / "grid.png")).any()
    # the failed pair: its readable file gets a preview, the garbage one a note, nothing stops
    assert (batch / "broken" / "target.png").is_file()
    assert not (batch / "broken" / "checkerboard.png").exists()
    assert "registered picture" in text and "broken" in text


def test_checkerboard_and_cbs_column_show_the_real_cbs_not_the_representation(batch: Path):
    write_report(batch)
    d = batch / "plain"
    board = _png(d / "checkerboard.png")[..., 0].astype(float)
    cbs = _png(d / "cbs.png")[..., 0].astype(float)
    rep = _png(d / "target.png")[..., 0].astype(float)
    h, w = SHAPE
    tile = (slice(0, h // 8), slice(w // 8, w // 4))  # second tile of the first row: the CBS
    assert np.corrcoef(board[tile].ravel(), cbs[tile].ravel())[0, 1] > 0.99
    assert np.corrcoef(board[tile].ravel(), rep[tile].ravel())[0, 1] < -0.9  # the inverted representation
    # the original LOM and CBS files moved away: no CBS picture, no checkerboard, and a note saying why
    for f in (batch.parent / "acquisition").iterdir():
        f.rename(f.with_suffix(".moved"))
    for f in ("cbs.png", "checkerboard.png", "lom.png", "thumbs/cbs.png", "thumbs/checkerboard.png"):
        (d / f).unlink()
    text = _parse(write_report(batch).read_text(encoding="utf-8"))
    assert not (d / "checkerboard.png").exists() and not (d / "cbs.png").exists()
    assert "original CBS file not found" in " ".join(text.text)


def test_report_shows_settings_and_a_pair_page(batch: Path):
    text = write_report(batch).read_text(encoding="utf-8")
    plain = " ".join(_parse(text).text)
    for needle in ("mode accurate, deformation Very Coarse → Fine", "divergence 0.1", "model models/edges",
                   'coarse: {"kept": true, "rotation_deg": 1.5}', "compared: CBS repr.", "original LOM", "Jacobian",
                   "elastic kept: the elastic result agrees better with the target than its start"):
        assert needle in plain, needle
    page = batch / "plain" / "pair.html"
    html = page.read_text(encoding="utf-8")
    p = _parse(html)
    assert p.problems == [] and p.stack == []
    assert not re.search(r"(?i)(https?:|//[a-z]|<script[^>]*\bsrc=|<link\b)", html), "external resource in the pair page"
    assert 'id="split"' in html and 'id="flicker"' in html
    for tag, value in p.links:
        target = (page.parent / unquote(urlsplit(value).path)).resolve()
        assert target.is_file() or value.startswith("../report.html#pair-"), value
    assert 'src="registered.png"' in html and 'src="cbs.png"' in html


def test_pair_page_script_runs_in_a_browser(batch: Path):
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium (apt-get install chromium) to run the page's script")
    write_report(batch)
    page = (batch / "plain" / "pair.html").resolve()
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert re.search(r'<img class="top" id="top"[^>]*style="clip-path: inset\(0px 50% 0px 0px\);?"', out.stdout), out.stdout[-800:]


def test_report_refresh_remakes_only_missing_or_outdated(batch: Path):
    write_report(batch)
    d = batch / "plain"
    (d / "grid.png").unlink()
    board = d / "checkerboard.png"
    old = board.stat().st_mtime - 100
    os.utime(board, (old, old))
    os.utime(d / "registered.tif", (old + 50, old + 50))  # registered newer than its checkerboard
    thumb = d / "thumbs" / "target.png"
    os.utime(d / "target.png", (old + 150, old + 150))
    os.utime(thumb, (old + 200, old + 200))  # up to date (and newer than its sources)
    before = thumb.stat().st_mtime
    write_report(batch)
    assert (d / "grid.png").is_file()
    assert board.stat().st_mtime > old + 50
    assert thumb.stat().st_mtime == before


def test_report_without_results_csv_uses_pair_folders(batch: Path):
    (batch / "results.csv").unlink()
    text = write_report(batch).read_text(encoding="utf-8")
    plain = "".join(_parse(text).text)
    assert ODD_NAME in plain and "folded" in plain and EVIL_ERROR in plain
    assert "lonely" not in plain  # unpaired files leave no folder
    tiers = dict((t, int(n)) for n, t in re.findall(r'<div class="card"><b>(\d+)</b><span class="badge t-(\w+)">', text))
    assert tiers["good"] == 1 and tiers["poor"] == 1


def test_report_cli(batch: Path, tmp_path: Path):
    from click.testing import CliRunner

    from styleunwarp.cli import main

    res = CliRunner().invoke(main, ["report", str(batch)])
    assert res.exit_code == 0, res.output
    assert Path(res.output.strip()) == batch / "report.html" and (batch / "report.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["report", str(empty)])
    assert res.exit_code != 0 and "no results.csv" in res.output


# -------------------------------------------------------------------------------- figures
def _lines(path: Path) -> np.ndarray:
    return _png(path).max(axis=-1) > 128


def test_grid_of_identity_is_straight_and_of_shift_is_shifted(tmp_path: Path):
    shape = (96, 128)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    deformation_grid_png(identity_elastic(4, shape), shape, tmp_path / "id.png", step=32)
    expected = np.isin(xx, [32, 64, 96]) | np.isin(yy, [32, 64])
    np.testing.assert_array_equal(_lines(tmp_path / "id.png"), expected)

    shift = affine_elastic(np.array([[1, 0, 5.0], [0, 1, -3.0]]), 4, shape)  # source = target + (5, -3)
    deformation_grid_png(shift, shape, tmp_path / "shift.png", step=32, background=_blobs(shape, 0))
    expected = np.isin(xx, [27, 59, 91, 123]) | np.isin(yy, [3, 35, 67])
    np.testing.assert_array_equal(_lines(tmp_path / "shift.png"), expected)
    grid = _png(tmp_path / "shift.png")
    background = grid[~expected]
    assert background.max() <= 0.45 * 255 + 1 and background.std() > 5  # dimmed picture, not blank


def test_folding_is_red_in_grid_and_jacobian(tmp_path: Path):
    t = _folding()
    det = jacobian_determinant(t, SHAPE)
    assert det.min() < 0 < det.max()
    deformation_grid_png(t, SHAPE, tmp_path / "grid.png", step=8)
    red = _red(_png(tmp_path / "grid.png"))
    assert red.any() and not red[det > 0.05].any()
    jacobian_png(t, SHAPE, tmp_path / "jac.png", legend=False)
    np.testing.assert_array_equal(_red(_png(tmp_path / "jac.png")), det <= 0)
    jacobian_png(t, SHAPE, tmp_path / "jac_bar.png")  # with its colour bar below: a red box for folding
    with_bar = _png(tmp_path / "jac_bar.png")
    assert with_bar.shape[0] > SHAPE[0] + 20 and _red(with_bar[SHAPE[0]:]).any()
    np.testing.assert_array_equal(_red(with_bar[: SHAPE[0], : SHAPE[1]]), det <= 0)
    # a smooth stretch is coloured, but never red
    stretch = affine_elastic(np.array([[1.6, 0, 0], [0, 1.3, 0]]), 4, SHAPE)
    jacobian_png(stretch, SHAPE, tmp_path / "stretch.png", legend=False)
    rgb = _png(tmp_path / "stretch.png")
    assert not _red(rgb).any() and (rgb[..., 2] < 150).all()  # orange: area grows


def test_checkerboard_alternates_registered_and_target(tmp_path: Path):
    h, w = 64, 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    registered = np.stack([xx * 4] * 3, axis=-1)  # RGB, varies along x
    target = yy * 4  # varies along y
    checkerboard_png(registered, target, tmp_path / "cb.png", tiles=4)
    cb = _png(tmp_path / "cb.png")[..., 0]
    assert cb.shape == (h, w)
    tile_reg, tile_tgt = cb[:16, :16], cb[:16, 16:32]
    assert np.ptp(tile_reg, axis=0).max() == 0 and np.ptp(tile_reg[0]) > 20  # constant down columns
    assert np.ptp(tile_tgt, axis=1).max() == 0 and np.ptp(tile_tgt[:, 0]) > 20  # constant along rows


def test_thumbnail_sizes_and_dtypes():
    rgb = np.zeros((300, 150, 3), np.uint8)
    rgb[:, :75] = 200
    small = thumbnail(rgb, 256)
    assert small.shape == (256, 128, 3) and small.dtype == np.uint8
    assert small[:, :60].min() == 200 and small[:, 70:].max() == 0
    grey = np.arange(100 * 40, dtype=np.float32).reshape(100, 40)
    assert thumbnail(grey, 50).shape == (50, 20)
    same = thumbnail(grey, 256)
    np.testing.assert_array_equal(same, grey)
    assert same is not grey
