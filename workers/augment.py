"""Normalisation, augmentation and resolution scaling of whole batches on the device.

The data stays uint8 on the device (images); each batch is converted, normalised with the
training split's per-channel mean / std, augmented with vectorised tensor ops (no per-sample
Python) and optionally resized, as the fastest CIFAR-10 trainers do (Page 2018; Keller
Jordan's airbench). ``strength`` in [0, 1] scales every op; 0 is the identity.

- images: random crop with zero padding (in normalised space, i.e. the mean colour) and
  horizontal flip (Krizhevsky et al. 2012), cutout / random erasing (DeVries & Taylor 2017;
  Zhong et al. 2017), PCA colour noise for RGB (AlexNet, Krizhevsky et al. 2012);
- series: random time shift (edge-replicated) and amplitude scaling (Um et al. 2017);
- volumes: nothing (normalisation only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from search_spaces.scaling import scaled_size
from workers.data.dataset import Dataset

PCA_SAMPLE = 10_000  # images used to estimate the RGB covariance
_INTERP = {1: "linear", 2: "bilinear", 3: "trilinear"}


def rgb_pca(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues, eigenvectors as columns) of the pixel-colour covariance, in 0..255 units."""
    pixels = x[:PCA_SAMPLE].float().permute(1, 0, 2, 3).reshape(3, -1)
    cov = torch.cov(pixels)
    vals, vecs = torch.linalg.eigh(cov)
    return vals.clamp_min(0), vecs


@dataclass
class Augmenter:
    """Turns raw batches into model inputs. Build it with :meth:`for_dataset`."""

    dims: int
    scale: torch.Tensor  # 1/std, shaped 1,C,1..
    shift: torch.Tensor  # -mean/std
    strength: float = 0.0
    flip: bool = True
    in_size: tuple[int, ...] = ()
    out_size: tuple[int, ...] = ()
    pca_delta: torch.Tensor | None = None  # C x C: eigvecs * sqrt(eigvals) / std (normalised units)

    @classmethod
    def for_dataset(
        cls, dataset: Dataset, strength: float = 0.0, *, flip: bool = True, resolution: float = 1.0
    ) -> Augmenter:
        """An augmenter for ``dataset``'s modality, statistics and device."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"augment strength {strength}: expected a number in [0, 1]")
        view = (1, -1) + (1,) * dataset.dims
        std = dataset.std.to(dataset.device, torch.float32)
        mean = dataset.mean.to(dataset.device, torch.float32)
        pca = None
        if dataset.dims == 2 and dataset.channels == 3 and strength > 0:
            vals, vecs = rgb_pca(dataset.train_x)
            pca = (vecs * vals.sqrt()[None, :] / std[:, None]).to(dataset.device)
        return cls(
            dims=dataset.dims,
            scale=(1.0 / std).view(view),
            shift=(-mean / std).view(view),
            strength=float(strength),
            flip=flip,
            in_size=tuple(dataset.size),
            out_size=tuple(scaled_size(list(dataset.size), resolution)),
            pca_delta=pca,
        )

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """float32, per-channel standardised, resized to ``out_size``: what the model sees in eval."""
        x = torch.addcmul(self.shift, x.float(), self.scale)
        return self.resize(x)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.out_size == self.in_size:
            return x
        return F.interpolate(x, size=self.out_size, mode=_INTERP[self.dims], align_corners=False)

    def train(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalise + augment one training batch (randomness drawn from ``generator``)."""
        x = torch.addcmul(self.shift, x.float(), self.scale)
        if self.strength > 0:
            if self.dims == 2:
                x = self._image(x, generator)
            elif self.dims == 1:
                x = self._series(x, generator)
        return self.resize(x)

    # --- images -------------------------------------------------------------------------
    def _image(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        n, _, h, w = x.shape
        dev = x.device
        pad = int(round(self.strength * max(h, w) / 8))
        if pad > 0:
            x = random_crop(x, pad, g)
        if self.flip:
            mirror = torch.rand(n, device=dev, generator=g) < 0.5
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        side = int(round(self.strength * min(h, w) / 4))
        if side > 0:
            x = cutout(x, side, 0.5, g)
        if self.pca_delta is not None:
            alpha = torch.randn(n, 3, device=dev, generator=g) * (0.1 * self.strength)
            x = x + (alpha @ self.pca_delta.T)[:, :, None, None]
        return x

    # --- series -------------------------------------------------------------------------
    def _series(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        n, c, length = x.shape
        dev = x.device
        max_shift = int(round(self.strength * length / 10))
        if max_shift > 0:
            shift = torch.randint(-max_shift, max_shift + 1, (n, 1), device=dev, generator=g)
            idx = (torch.arange(length, device=dev)[None, :] - shift).clamp_(0, length - 1)
            x = torch.gather(x, 2, idx[:, None, :].expand(n, c, length))
        gain = 1.0 + 0.2 * self.strength * torch.randn(n, 1, 1, device=dev, generator=g)
        return x * gain


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator | None) -> torch.Tensor:
    """Per-sample random crop of ``x`` (N,C,H,W) zero-padded by ``pad``, one gather per batch."""
    n, c, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n, 1), device=dev, generator=g)
    ox = torch.randint(0, 2 * pad + 1, (n, 1), device=dev, generator=g)
    rows = oy + torch.arange(h, device=dev)  # N,H
    cols = ox + torch.arange(w, device=dev)  # N,W
    flat = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(n, 1, h * w)
    out = torch.gather(xp.reshape(n, c, -1), 2, flat.expand(n, c, h * w))
    return out.view(n, c, h, w)


def cutout(x: torch.Tensor, side: int, p: float, g: torch.Generator | None) -> torch.Tensor:
    """Zero (the mean, after normalisation) a ``side`` square at a random centre, with prob ``p``."""
    n, _, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (n, 1), device=dev, generator=g)
    cx = torch.randint(0, w, (n, 1), device=dev, generator=g)
    on = torch.rand(n, 1, device=dev, generator=g) < p
    lo = side // 2
    ys = torch.arange(h, device=dev)[None, :]
    xs = torch.arange(w, device=dev)[None, :]
    in_y = ((ys >= cy - lo) & (ys < cy - lo + side) & on)[:, :, None]
    in_x = ((xs >= cx - lo) & (xs < cx - lo + side))[:, None, :]
    return x.masked_fill((in_y & in_x)[:, None], 0.0)
