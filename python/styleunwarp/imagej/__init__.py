"""The bridge to ImageJ: find Java, ImageJ/Fiji and bUnwarpJ, start the JVM once, move images.

Modelled on pyimagej: a thin layer, everything else in Python works on numpy arrays.
"""

from .convert import from_imageplus, to_imageplus
from .discovery import ImageJInstall, JavaInfo, find_imagej, find_java, inspect_folder
from .jvm import JvmSettings, jclass, jvm_install, start

__all__ = [
    "ImageJInstall",
    "JavaInfo",
    "JvmSettings",
    "find_imagej",
    "find_java",
    "from_imageplus",
    "inspect_folder",
    "jclass",
    "jvm_install",
    "start",
    "to_imageplus",
]
