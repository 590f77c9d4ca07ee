"""bUnwarpJ's transform model in numpy: files, evaluation, warping, composition.

Conventions (see DESIGN.md): a *direct* transform maps each target (CBS) pixel ``(x, y)``
to an absolute position in the source (LOM); a dense map is ``(2, H, W)`` with x first.
"""

from .bspline import beta3
from .files import (
    format_elastic,
    format_raw,
    java_double,
    read_elastic,
    read_raw,
    read_transform,
    write_elastic,
    write_raw,
)
from .model import (
    ElasticTransform,
    RawTransform,
    Transform,
    affine_elastic,
    evaluate_elastic,
    fit_elastic,
    identity_elastic,
    to_dense,
)
from .ops import compose, displacement_error, invert_map, jacobian_determinant, warping_index
from .warp import inside_source, warp_image

__all__ = [
    "ElasticTransform",
    "RawTransform",
    "Transform",
    "affine_elastic",
    "beta3",
    "compose",
    "displacement_error",
    "evaluate_elastic",
    "fit_elastic",
    "format_elastic",
    "format_raw",
    "identity_elastic",
    "inside_source",
    "invert_map",
    "jacobian_determinant",
    "java_double",
    "read_elastic",
    "read_raw",
    "read_transform",
    "to_dense",
    "warp_image",
    "warping_index",
    "write_elastic",
    "write_raw",
]
