"""What a coarse-alignment method returns: scored hypotheses."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One hypothesis: an affine map ``matrix`` (2x3, target pixel -> source pixel) and its score.

    ``rotation_deg``, ``scale`` and ``shear`` describe the linear part (polar decomposition);
    ``extra`` holds method-specific facts (search score, mirrored).
    """

    method: str
    matrix: np.ndarray
    score: float
    rotation_deg: float
    scale: float
    mirrored: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_matrix(cls, method: str, matrix: np.ndarray, score: float, *, mirrored: bool = False, **extra) -> "Candidate":
        a = np.asarray(matrix, np.float64)
        lin = a[:, :2] @ (np.diag([-1.0, 1.0]) if mirrored else np.eye(2))
        rot = float(np.degrees(np.arctan2(lin[1, 0] - lin[0, 1], lin[0, 0] + lin[1, 1])))
        scale = float(np.sqrt(abs(np.linalg.det(lin))))
        return cls(method, a, float(score), rot, scale, mirrored, dict(extra))

    def shift_of(self, target_shape: tuple[int, int]) -> tuple[float, float]:
        """Where the target's centre lands in the source, minus the centre (px)."""
        c = np.array([(target_shape[1] - 1) / 2, (target_shape[0] - 1) / 2])
        s = self.matrix[:, :2] @ c + self.matrix[:, 2] - c
        return float(s[0]), float(s[1])

    def to_dict(self, target_shape: tuple[int, int] | None = None) -> dict:
        d = {
            "method": self.method,
            "score": None if not np.isfinite(self.score) else round(self.score, 5),
            "rotation_deg": round(self.rotation_deg, 3),
            "scale": round(self.scale, 5),
            "mirrored": self.mirrored,
            "matrix": [[round(float(v), 5) for v in row] for row in self.matrix],
        }
        if target_shape is not None:
            sx, sy = self.shift_of(target_shape)
            d["shift_x"], d["shift_y"] = round(sx, 3), round(sy, 3)
        d.update({k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.extra.items()})
        return d
