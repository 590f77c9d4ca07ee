"""CBS-like and LOM-like renderings of a :class:`~.microstructure.Microstructure`.

Both renderings start from a :class:`~.microstructure.MicroSample` (the structure
evaluated at the positions that the pixels of a frame see), so a deformed frame is
rendered exactly. Effects of the instrument (beam or optical blur, detector gradient or
uneven illumination, noise) are applied afterwards in the frame's own pixel grid.

- **CBS** (channeling contrast): every grain, twin and island has a grey level given by
  its orientation relative to the beam; boundaries are sharp steps without lines;
  horizontal scan-line noise as in the real images; pits dark with a lighter rim.
- **LOM** (etched, bright field): a bright surface with only a weak orientation tint, taken
  from a *different* function of the orientation (reflection of an oblique illumination
  from etch facets) and so not a monotone function of the CBS grey; dark, wide etched
  grain boundaries and thinner twin boundaries; optical blur; uneven illumination; noise;
  optionally a colour cast. Intensity-based (SSD) registration of such an image to the CBS
  fails, as with real LOM images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .microstructure import ISLAND, MicroSample, Microstructure


# ------------------------------------------------------------------ orientation -> value


def _h1(v: np.ndarray) -> np.ndarray:
    """Cubic invariant sum(v_i^4): 1 along <100>, 1/2 along <110>, 1/3 along <111>."""
    return np.sum(v**4, axis=-1)


def _h2(v: np.ndarray) -> np.ndarray:
    """Cubic invariant 27 (v_x v_y v_z)^2: 1 along <111>, 0 on {100} zones."""
    return 27.0 * np.prod(v, axis=-1) ** 2


def _cbs_raw(v: np.ndarray) -> np.ndarray:
    return _h1(v) - 0.6 * _h2(v)


def _lom_raw(v: np.ndarray) -> np.ndarray:
    return _h2(v) - 0.5 * _h1(v)


@lru_cache(maxsize=4)
def _cdf_table(kind: str) -> np.ndarray:
    """Sorted values of a function over uniform random directions (fixed seed)."""
    v = np.random.default_rng(12345).standard_normal((20000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.sort(_cbs_raw(v) if kind == "cbs" else _lom_raw(v))


def _uniformise(values: np.ndarray, kind: str) -> np.ndarray:
    table = _cdf_table(kind)
    return np.interp(values, table, np.linspace(0.0, 1.0, table.size))


def _direction(tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    t, a = np.deg2rad(tilt_deg), np.deg2rad(azimuth_deg)
    return np.array([np.sin(t) * np.cos(a), np.sin(t) * np.sin(a), np.cos(t)])


def cbs_value(orientations: np.ndarray, beam: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Channeling value in [0, 1] (uniform over random orientations) of each orientation."""
    v = np.einsum("rji,j->ri", orientations, beam)  # beam direction in the crystal frame
    return _uniformise(_cbs_raw(v), "cbs")


def lom_value(orientations: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Etch-facet reflection value in [0, 1] for an oblique light direction (differs from CBS)."""
    v = np.einsum("rji,j->ri", orientations, light)
    return _uniformise(_lom_raw(v), "lom")


# ------------------------------------------------------------------------------ styles


@dataclass
class CBSStyle:
    """Parameters of the CBS-like rendering (grey values in the 0..255 range)."""

    low: float = 35.0
    high: float = 215.0
    gamma: float = 1.0
    beam_tilt_deg: float = 0.0
    beam_azimuth_deg: float = 0.0
    relief: float = 5.0
    gradient: float = 8.0
    gradient_angle_deg: float = 0.0
    blur: float = 0.6
    noise: float = 9.0
    pit_level: float = 25.0
    pit_rim: float = 20.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> CBSStyle:
        return cls(
            low=float(rng.uniform(25, 55)),
            high=float(rng.uniform(190, 230)),
            gamma=float(rng.uniform(0.8, 1.25)),
            beam_tilt_deg=float(rng.uniform(0, 5)),
            beam_azimuth_deg=float(rng.uniform(0, 360)),
            relief=float(rng.uniform(2, 8)),
            gradient=float(rng.uniform(0, 15)),
            gradient_angle_deg=float(rng.uniform(0, 360)),
            blur=float(rng.uniform(0.4, 0.9)),
            noise=float(rng.uniform(7, 14)),
            pit_level=float(rng.uniform(10, 40)),
            pit_rim=float(rng.uniform(0, 30)),
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LOMStyle:
    """Parameters of the LOM-like rendering (grey values in the 0..255 range).

    ``tint`` is the peak-to-peak grain tint; depths are fractions of the local brightness
    removed at the centre of an etched boundary; widths are Gaussian 1/e half-widths in px.
    """

    base: float = 175.0
    tint: float = 40.0
    light_tilt_deg: float = 32.0
    light_azimuth_deg: float = 0.0
    grain_depth: float = 0.7
    grain_width: float = 2.2
    twin_depth: float = 0.45
    twin_width: float = 1.4
    island_factor: float = 0.55
    pit_factor: float = 0.15
    pit_grow: float = 1.0
    blur: float = 1.3
    vignette: float = 0.25
    vignette_centre: tuple[float, float] = (0.5, 0.5)
    gradient: float = 0.15
    gradient_angle_deg: float = 0.0
    noise: float = 3.0
    colour: tuple[float, float, float] = (1.0, 0.94, 0.82)
    colour_jitter: float = 0.02

    @classmethod
    def random(cls, rng: np.random.Generator) -> LOMStyle:
        return cls(
            base=float(rng.uniform(155, 195)),
            tint=float(rng.uniform(30, 55)),
            light_tilt_deg=float(rng.uniform(25, 40)),
            light_azimuth_deg=float(rng.uniform(0, 360)),
            grain_depth=float(rng.uniform(0.6, 0.85)),
            grain_width=float(rng.uniform(1.6, 2.8)),
            twin_depth=float(rng.uniform(0.3, 0.6)),
            twin_width=float(rng.uniform(1.0, 1.8)),
            island_factor=float(rng.uniform(0.4, 0.7)),
            pit_factor=float(rng.uniform(0.05, 0.3)),
            pit_grow=float(rng.uniform(0.5, 1.5)),
            blur=float(rng.uniform(1.0, 1.8)),
            vignette=float(rng.uniform(0.15, 0.4)),
            vignette_centre=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7))),
            gradient=float(rng.uniform(0.05, 0.3)),
            gradient_angle_deg=float(rng.uniform(0, 360)),
            noise=float(rng.uniform(2, 5)),
            colour=(1.0, float(rng.uniform(0.9, 0.97)), float(rng.uniform(0.72, 0.86))),
            colour_jitter=float(rng.uniform(0.01, 0.03)),
        )

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------- frame-level effects


def _ramp(shape: tuple[int, int], angle_deg: float) -> np.ndarray:
    """Linear ramp from -0.5 to 0.5 across the frame along ``angle_deg``."""
    h, w = shape
    a = np.deg2rad(angle_deg)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = (xx / max(w - 1, 1) - 0.5) * np.cos(a) + (yy / max(h - 1, 1) - 0.5) * np.sin(a)
    return r / max(np.ptp(r), 1e-9)


def illumination(shape: tuple[int, int], vignette: float, centre: tuple[float, float], gradient: float, angle_deg: float) -> np.ndarray:
    """Smooth multiplicative illumination field: radial vignetting times a linear gradient."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = ((xx / max(w - 1, 1) - centre[0]) ** 2 + (yy / max(h - 1, 1) - centre[1]) ** 2) / 0.5
    return (1.0 - vignette * np.clip(r2, 0, 2)) * (1.0 + gradient * _ramp(shape, angle_deg))


def scan_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """SEM-like noise, correlated along the scan lines (rows), standard deviation ``sigma``."""
    n = ndimage.gaussian_filter1d(rng.standard_normal(shape), 0.8, axis=1)
    n /= n.std() + 1e-12
    n += 0.35 * rng.standard_normal((shape[0], 1))
    return sigma * n / np.sqrt(1 + 0.35**2)


# --------------------------------------------------------------------------- renderings


def cbs_grey(orientations: np.ndarray, style: CBSStyle) -> np.ndarray:
    """Grey level (0..255) of regions with ``orientations`` ``(R, 3, 3)`` in the CBS-like rendering."""
    u = cbs_value(orientations, _direction(style.beam_tilt_deg, style.beam_azimuth_deg))
    return style.low + (style.high - style.low) * u**style.gamma


def render_cbs(micro: Microstructure, s: MicroSample, style: CBSStyle, rng: np.random.Generator, *, noise: bool = True) -> np.ndarray:
    """CBS-like image (float32, about 0..255) of a frame whose pixels see the sample ``s``."""
    shape = s.region.shape
    img = cbs_grey(micro.orientations, style)[s.region] + style.relief * s.relief
    rim = np.clip(s.d_pit, 0, None)
    img = img + style.pit_rim * np.exp(-((rim / 1.2) ** 2)) * (s.d_pit > 0)
    img = np.where(s.d_pit < 0, style.pit_level, img)
    img = img + style.gradient * _ramp(shape, style.gradient_angle_deg)
    if style.blur > 0:
        img = ndimage.gaussian_filter(img, style.blur, mode="nearest")
    if noise:
        img = img + scan_noise(rng, shape, style.noise)
    return np.clip(img, 0, 255).astype(np.float32)


def etched_lom(
    tint: np.ndarray,
    boundary: np.ndarray,
    style: LOMStyle,
    rng: np.random.Generator,
    *,
    rgb: bool = False,
    colour_shift: np.ndarray | None = None,
) -> np.ndarray:
    """The optical part shared by all LOM renderings.

    ``tint`` is the reflectance factor of the surface (around 1), ``boundary`` the
    darkening factor of etched features (1 = none); ``colour_shift`` an optional
    ``(H, W, 3)`` per-pixel colour factor. Applies blur, illumination, colour and noise.
    """
    shape = tint.shape
    img = style.base * tint * boundary
    illum = illumination(shape, style.vignette, style.vignette_centre, style.gradient, style.gradient_angle_deg)
    if rgb:
        chans = []
        for c in range(3):
            ch = img * style.colour[c] * (1.0 if colour_shift is None else colour_shift[..., c])
            ch = ndimage.gaussian_filter(ch, style.blur * (0.9 + 0.1 * c), mode="nearest") * illum
            chans.append(ch + style.noise * rng.standard_normal(shape))
        out = np.stack(chans, axis=-1)
    else:
        out = ndimage.gaussian_filter(img, style.blur, mode="nearest") * illum
        out = out + style.noise * rng.standard_normal(shape)
    return np.clip(out, 0, 255).astype(np.float32)


def render_lom(micro: Microstructure, s: MicroSample, style: LOMStyle, rng: np.random.Generator, *, rgb: bool = False) -> np.ndarray:
    """LOM-like image (float32 ``(H, W)`` or ``(H, W, 3)``, about 0..255) of a frame seeing ``s``."""
    light = _direction(style.light_tilt_deg, style.light_azimuth_deg)
    region_tint = 1.0 + (style.tint / style.base) * (lom_value(micro.orientations, light) - 0.5)
    tint = region_tint[s.region] * (1.0 + 0.01 * s.relief)
    tint = np.where(s.phase == ISLAND, tint * style.island_factor, tint)
    boundary = (1.0 - style.grain_depth * np.exp(-((s.d_grain / style.grain_width) ** 2)))
    boundary *= 1.0 - style.twin_depth * np.exp(-((s.d_twin / style.twin_width) ** 2))
    boundary *= 1.0 - style.grain_depth * np.exp(-((s.d_island / style.grain_width) ** 2))
    pit = s.d_pit - style.pit_grow
    boundary *= np.where(pit < 0, style.pit_factor, 1.0 - (1.0 - style.pit_factor) * np.exp(-((pit / 1.0) ** 2)))
    shift = None
    if rgb:
        jitter = 1.0 + style.colour_jitter * rng.standard_normal((len(micro.orientations), 3))
        shift = jitter[s.region]
    return etched_lom(tint, boundary, style, rng, rgb=rgb, colour_shift=shift)
