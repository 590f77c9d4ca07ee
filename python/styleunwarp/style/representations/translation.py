"""``cbs`` / ``edges``: a U-Net translates the source into the target's look (``cbs``) or into
the target's boundary map (``edges``); the target is stretched or turned into its boundary map.

The network, its training and tiled inference are :mod:`styleunwarp.style` (pix2pix code);
this module puts them behind the :class:`~.Representation` interface.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import Representation


class Translation(Representation):
    """A trained style model (:class:`~styleunwarp.style.StyleTransfer`) as a representation."""

    trainable = True

    def __init__(self, model, folder: str | None = None) -> None:
        self.model = model  # a StyleTransfer
        self.folder = folder

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.model.target_kind

    def represent(self, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ...io import normalize

        return (normalize(np.asarray(self.model(source), np.float32)),
                normalize(np.asarray(self.model.prepare_target(target), np.float32)))

    def reference_target(self, target: np.ndarray) -> np.ndarray | None:
        """For a boundary-map model whose target is denoised before the elastic step: the map of
        the target as recorded (not denoised), on which the coarse step and the never-worse
        margin were measured (docs/study-table.md, "Denoising the CBS before its boundary map")."""
        from ...io import normalize

        if self.kind != "edges" or self.model.target_denoise == 0:
            return None
        return normalize(np.asarray(self.model.prepare_target(target, denoise=0.0), np.float32))

    def save(self, folder: Path) -> dict:
        """The weights stay where training wrote them (a sub-folder of the model folder)."""
        return {"kind": self.kind, "folder": self.folder or "."}

    @classmethod
    def from_card(cls, folder: Path, section: dict) -> "Translation":
        from ...errors import InputError
        from ..infer import StyleTransfer

        sub = str(section.get("folder", "."))
        path = (folder / sub).resolve()
        if folder.resolve() not in (path, *path.parents):
            raise InputError(folder, f"model card points outside its folder ({sub!r})")
        return cls(StyleTransfer.load(path), sub)

    @classmethod
    def load_model(cls, path: str | Path | None) -> "Translation":
        """From a style model folder or file (``None``: the shipped default)."""
        from ..infer import StyleTransfer

        st = StyleTransfer.load(path) if path is not None else StyleTransfer.load_default()
        return cls(st, None)


def train_translation(pairs, out: Path, kind: str, channels: int, max_minutes: float, seed: int = 0,
                      progress: bool = False, loss: str = "l1", init: str | Path | None = None) -> tuple[Translation, dict]:
    """Train a ``kind`` (``cbs`` or ``edges``) U-Net on aligned ``pairs`` into ``out``; return it
    and :func:`styleunwarp.style.train`'s summary. ``loss``: the pixel loss (``TrainConfig.loss``).
    The checkpoint kept is the best by validation L1 (MSE with ``loss="l2"``; the chain's TRE then
    decides whether the representation is used).

    ``init``: a style model of the same ``kind`` to start from (fine-tuning; the shipped boundary-map
    model for ``edges`` where ``train --target auto`` is told to, ``AutoConfig.edges_from_shipped``);
    the network then has its architecture (a grey source is repeated to its 3 input channels) instead
    of a fresh one with ``channels`` inputs."""
    from ..infer import StyleTransfer
    from ..networks import Architecture
    from ..train import TrainConfig, train

    arch = Architecture(in_channels=channels, base=16, depth=4)
    if init is not None:
        from ..weights import load_model

        arch = load_model(init)[0].arch
    cfg = TrainConfig(mode="unet", target=kind, epochs=1000, max_minutes=max_minutes, seed=seed, crop=128,
                      batch_size=4, loss=loss, arch=arch)
    res = train(pairs, out, cfg, progress=progress, init=init)
    return Translation(StyleTransfer.load(out), out.name), res
