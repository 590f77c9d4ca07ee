"""LOM → CBS-like style transfer (pix2pix / U-Net in PyTorch).

* :class:`StyleTransfer` — load a trained model and style numpy images (tiled, any size).
* :func:`train` with :class:`TrainConfig` — train on aligned pairs.
* :mod:`.networks`, :mod:`.data`, :mod:`.weights` — the pieces.

Importing this package imports torch.
"""

from .infer import StyleTransfer, models_dir
from .networks import Architecture, PatchDiscriminator, UNetGenerator
from .train import TrainConfig, train
from .weights import load_model, save_model

__all__ = ["Architecture", "PatchDiscriminator", "StyleTransfer", "TrainConfig", "UNetGenerator",
           "load_model", "models_dir", "save_model", "train"]
