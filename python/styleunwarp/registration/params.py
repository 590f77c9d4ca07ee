"""bUnwarpJ's registration parameters, with the plugin's names, meanings and defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

MODES = {"fast": 0, "accurate": 1, "mono": 2}
"""Registration modes as bUnwarpJ numbers them. Mono computes the direct transform only."""

SCALES = {"very_coarse": 0, "coarse": 1, "fine": 2, "very_fine": 3, "super_fine": 4}
"""Deformation scales; the final B-spline grid has ``2**scale`` intervals."""

SCALE_LABELS = {0: "Very Coarse", 1: "Coarse", 2: "Fine", 3: "Very Fine", 4: "Super Fine"}
MODE_LABELS = {0: "Fast", 1: "Accurate", 2: "Mono"}


def _scale(value: int | str) -> int:
    if isinstance(value, str):
        key = value.strip().lower().replace(" ", "_").replace("-", "_")
        if key not in SCALES:
            raise ValueError(f"unknown deformation scale {value!r}; choose from {', '.join(SCALES)}")
        return SCALES[key]
    if not 0 <= int(value) <= 4:
        raise ValueError(f"deformation scale must be 0..4, got {value}")
    return int(value)


@dataclass(frozen=True)
class BUnwarpJParams:
    """All ten values of ``bunwarpj.Param``, defaulting to the plugin dialog's defaults.

    Attributes
    ----------
    mode
        ``"fast"``, ``"accurate"`` or ``"mono"`` (direct transform only, no consistency term).
        Note that ``new Param()`` in Java is Mono while the dialog defaults to Accurate:
        styleunwarp always passes all ten values.
    img_subsamp_fact
        Image subsampling factor ``s`` (0..7): the image term uses images reduced by ``2**s``.
    min_scale_deformation, max_scale_deformation
        Initial and final deformation scale (0 Very Coarse .. 4 Super Fine), or their names.
    divergence_weight, curl_weight
        Regularisation weights of the vector-spline model.
    landmark_weight, image_weight, consistency_weight
        Weights of the landmark, image (SSD) and direct/inverse consistency terms.
    stop_threshold
        Relative change of the energy below which the optimiser stops.
    """

    mode: str = "accurate"
    img_subsamp_fact: int = 0
    min_scale_deformation: int | str = 0
    max_scale_deformation: int | str = 2
    divergence_weight: float = 0.0
    curl_weight: float = 0.0
    landmark_weight: float = 0.0
    image_weight: float = 1.0
    consistency_weight: float = 10.0
    stop_threshold: float = 0.01

    def __post_init__(self) -> None:
        mode = str(self.mode).lower()
        if mode not in MODES:
            raise ValueError(f"unknown bUnwarpJ mode {self.mode!r}; choose from {', '.join(MODES)}")
        object.__setattr__(self, "mode", mode)
        lo, hi = _scale(self.min_scale_deformation), _scale(self.max_scale_deformation)
        if lo > hi:
            raise ValueError(f"initial deformation ({SCALE_LABELS[lo]}) is finer than the final one ({SCALE_LABELS[hi]})")
        object.__setattr__(self, "min_scale_deformation", lo)
        object.__setattr__(self, "max_scale_deformation", hi)
        if not 0 <= int(self.img_subsamp_fact) <= 7:
            raise ValueError(f"image subsampling factor must be 0..7, got {self.img_subsamp_fact}")
        for name in ("divergence_weight", "curl_weight", "landmark_weight", "image_weight", "consistency_weight", "stop_threshold"):
            v = float(getattr(self, name))
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
            object.__setattr__(self, name, v)

    @property
    def mode_index(self) -> int:
        """The mode as bUnwarpJ numbers it (0 Fast, 1 Accurate, 2 Mono)."""
        return MODES[self.mode]

    @property
    def final_intervals(self) -> int:
        """Intervals of the final B-spline grid, ``2**max_scale_deformation``."""
        return 2 ** int(self.max_scale_deformation)

    def as_java_args(self) -> tuple:
        """The ten positional arguments of ``bunwarpj.Param(...)``, in the plugin's order."""
        return (
            self.mode_index,
            int(self.img_subsamp_fact),
            int(self.min_scale_deformation),
            int(self.max_scale_deformation),
            self.divergence_weight,
            self.curl_weight,
            self.landmark_weight,
            self.image_weight,
            self.consistency_weight,
            self.stop_threshold,
        )

    def to_dict(self) -> dict:
        """Plain dictionary (for metrics.json and reports)."""
        return asdict(self)

    def with_(self, **changes) -> "BUnwarpJParams":
        """A copy with some values changed."""
        return replace(self, **changes)


PIPELINE_DEFAULTS = BUnwarpJParams(divergence_weight=0.1, curl_weight=0.1)
"""styleunwarp's default parameters: the plugin's, plus divergence and curl weights of 0.1.

Chosen by measurement (docs/study-table.md): registering the styled LOM of the 10 real-CBS
renderings, weights 0/0 gave 6 good + 4 decent, 0.1/0.1 gave 9 good + 1 decent; the 10
synthetic pairs stayed 10/10 good. The regularisation keeps the map smooth where the style
model draws a boundary the CBS does not show.
"""
