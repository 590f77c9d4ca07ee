"""styleunwarp: elastic registration of LOM to SEM-CBS micrographs.

The LOM image is first styled to look CBS-like (a pix2pix GAN in PyTorch), the styled
image is registered to the CBS target with the real bUnwarpJ plugin (through ImageJ),
and the saved elastic transform is re-applied to the *original* LOM.

Sub-modules, one job each: :mod:`~styleunwarp.io` (image files), :mod:`~styleunwarp.synth`
(synthetic pairs with ground truth), :mod:`~styleunwarp.transform` (bUnwarpJ's transform
model and files), :mod:`~styleunwarp.imagej` (the Java bridge), :mod:`~styleunwarp.cli`.
"""

__version__ = "0.1.0"
