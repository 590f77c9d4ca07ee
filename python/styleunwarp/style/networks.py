"""pix2pix networks: a U-Net generator and a conditional PatchGAN discriminator.

Both are plain :class:`torch.nn.Module` s built from an :class:`Architecture`, the small,
JSON-serialisable description stored in every model card; a weights file is only usable
together with its architecture.

Design choices (see docs/style.md):

* The generator's down path is pix2pix's: 4×4 convolutions with stride 2, BatchNorm and
  LeakyReLU(0.2). The up path uses bilinear upsampling + 3×3 convolution instead of
  transposed convolutions (no checkerboard artefacts, which bUnwarpJ's SSD would "see").
  A full-resolution 3×3 stem feeds the last layer, so fine detail needs no round trip.
* BatchNorm (not InstanceNorm): in eval mode it is a fixed per-channel affine map, so a
  tile of an image is processed exactly like the same region of the whole image — the
  requirement of seamless tiled inference. Output is ``tanh`` in [-1, 1].
* The discriminator is the 70×70 PatchGAN of pix2pix (``n_layers=3``), conditioned on the
  input by channel concatenation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    """Hyper-parameters that define the generator's tensors.

    Attributes
    ----------
    in_channels
        1 (grey LOM; RGB is converted to luminance) or 3 (RGB LOM kept in colour).
    out_channels
        1 (the CBS-like image).
    base
        Width of the first level; level ``i`` has ``min(base * 2**i, base * max_mult)``.
    depth
        Number of stride-2 downsamplings; inputs are padded to a multiple of ``2**depth``.
    max_mult
        Cap on the width multiplier.
    norm
        ``"batch"`` or ``"none"``.
    dropout
        Dropout probability in the three innermost decoder levels (training only).
    """

    in_channels: int = 1
    out_channels: int = 1
    base: int = 16
    depth: int = 5
    max_mult: int = 8
    norm: str = "batch"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.out_channels != 1:
            raise ValueError(f"out_channels must be 1, got {self.out_channels}")
        if not 1 <= self.base <= 256:
            raise ValueError(f"base width must be in 1..256, got {self.base}")
        if not 1 <= self.depth <= 8:
            raise ValueError(f"depth must be in 1..8, got {self.depth}")
        if not 1 <= self.max_mult <= 64:
            raise ValueError(f"max_mult must be in 1..64, got {self.max_mult}")
        if self.norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (``2**depth``)."""
        return 2 ** self.depth

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Architecture":
        """Build from a card's dictionary; unknown keys or bad values raise ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError("architecture must be a JSON object")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown architecture keys {sorted(unknown)}")
        kinds = {"norm": str, "dropout": (int, float)}
        for k, v in d.items():
            want = kinds.get(k, int)
            if isinstance(v, bool) or not isinstance(v, want):
                raise ValueError(f"architecture key {k!r} has a bad value {v!r}")
        return cls(**d)


def _norm(arch: Architecture, ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch) if arch.norm == "batch" else nn.Identity()


class _Down(nn.Module):
    def __init__(self, arch: Architecture, cin: int, cout: int, norm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=not (norm and arch.norm == "batch"))
        self.norm = _norm(arch, cout) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class _Up(nn.Module):
    def __init__(self, arch: Architecture, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=arch.norm != "batch")
        self.norm = _norm(arch, cout)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(self.norm(self.conv(self.up(x)))))


class UNetGenerator(nn.Module):
    """pix2pix U-Net with skip connections; ``(N, C, H, W)`` in [-1, 1] → ``(N, 1, H, W)``.

    ``H`` and ``W`` must be multiples of ``arch.multiple``.
    """

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        b, m = arch.base, arch.max_mult
        widths = [min(b * 2 ** i, b * m) for i in range(arch.depth + 1)]  # widths[0] = stem
        self.stem = nn.Sequential(nn.Conv2d(arch.in_channels, b, 3, 1, 1), nn.LeakyReLU(0.2))
        self.downs = nn.ModuleList(
            _Down(arch, widths[i], widths[i + 1], norm=i > 0) for i in range(arch.depth)
        )
        ups = []
        for i in reversed(range(arch.depth)):  # from the bottleneck up to full resolution
            cin = widths[i + 1] * (1 if i == arch.depth - 1 else 2)
            drop = arch.dropout if i >= arch.depth - 3 and i > 0 else 0.0
            ups.append(_Up(arch, cin, widths[i], drop))
        self.ups = nn.ModuleList(ups)
        self.head = nn.Sequential(
            nn.Conv2d(2 * b, b, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(b, arch.out_channels, 1), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.arch.multiple
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of {m}")
        skips = [self.stem(x)]
        h = skips[0]
        for down in self.downs:
            h = down(h)
            skips.append(h)
        skips.pop()  # the bottleneck itself
        for up in self.ups:
            h = up(h)
            h = torch.cat([h, skips.pop()], dim=1)
        return self.head(h)


class PatchDiscriminator(nn.Module):
    """Conditional 70×70 PatchGAN: ``(input, output)`` pairs → a map of real/fake logits."""

    def __init__(self, in_channels: int = 2, base: int = 32, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(base * prev, base * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(base * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(base * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, image], dim=1))


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix initialisation: conv weights N(0, 0.02), norm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
