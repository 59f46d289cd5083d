"""Affine data scaling recorded as plain floats, so it can live in a JSON checkpoint config.

Standardisation x_s = (x - mu) / s and its inverse x = mu + s x_s act coordinate-wise on the
flattened non-batch dimensions (d = prod(shape)); mu and s have length d, or length 1 for one
scalar shared by all coordinates (images). Pushing a Gaussian mixture through the map gives the
mixture with means (m_k - mu) / s and covariances D^-1 S_k D^-1, D = diag(s), so exact oracles
survive the rescaling (:meth:`Standardizer.transform_mixture`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry import GaussianMixture


@dataclass(frozen=True)
class Standardizer:
    """x -> (x - mean) / std over the flattened coordinates; ``mean``/``std`` are float tuples."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(mean) != len(std) or len(mean) == 0:
            raise ValueError(
                f"mean has {len(mean)} entries and std {len(std)}: give the same non-zero number"
            )
        if not all(s > 0 and s < float("inf") for s in std):
            raise ValueError("every std must be finite and > 0 (a constant coordinate has std 0)")
        if not all(abs(m) < float("inf") for m in mean):
            raise ValueError("every mean must be finite")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def identity(cls) -> Standardizer:
        """mean 0, std 1 (no scaling)."""
        return cls((0.0,), (1.0,))

    @classmethod
    def fit(cls, x: Tensor, per_dim: bool = True, min_std: float = 1e-6) -> Standardizer:
        """Empirical mean and standard deviation of the samples x of shape (n, *shape).

        ``per_dim=False`` fits one scalar mean and std over all coordinates (images);
        standard deviations are clamped below at ``min_std``.
        """
        if x.dim() < 2 or x.shape[0] < 2:
            raise ValueError(
                f"fit needs at least 2 samples of shape (n, ...), got {tuple(x.shape)}"
            )
        flat = x.detach().reshape(x.shape[0], -1).to(torch.float64)
        if not per_dim:
            flat = flat.reshape(-1, 1)
        mean = flat.mean(0)
        std = flat.std(0).clamp_min(min_std)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    @property
    def is_scalar(self) -> bool:
        return len(self.mean) == 1

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        d = x[0].numel() if x.dim() > 1 else 1
        if not self.is_scalar and len(self.mean) != d:
            raise ValueError(
                f"the standardizer has {len(self.mean)} coordinates but the data has d = {d}"
            )
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)
        return mean, std

    def transform(self, x: Tensor) -> Tensor:
        """(x - mean) / std for x of shape (n, *shape); same shape and dtype."""
        mean, std = self._params(x)
        flat = x.reshape(x.shape[0], -1)
        return ((flat - mean) / std).reshape(x.shape)

    def inverse(self, x: Tensor) -> Tensor:
        """mean + std * x, the inverse of :meth:`transform`."""
        mean, std = self._params(x)
        flat = x.reshape(x.shape[0], -1)
        return (mean + std * flat).reshape(x.shape)

    def log_abs_det(self, shape: tuple[int, ...]) -> float:
        """log |det d transform / dx| for points of ``shape``: -sum_i log std_i (densities in
        data space are densities in scaled space times exp of this)."""
        d = 1
        for n in shape:
            d *= int(n)
        std = torch.tensor(self.std, dtype=torch.float64)
        if not self.is_scalar and len(self.std) != d:
            raise ValueError(
                f"the standardizer has {len(self.std)} coordinates but the data has d = {d}"
            )
        return float(-(std.log().sum() if not self.is_scalar else d * std.log()[0]))

    def transform_mixture(self, mixture: GaussianMixture) -> GaussianMixture:
        """The law of (X - mean) / std for X ~ mixture (exact)."""
        d = mixture.dim
        if not self.is_scalar and len(self.mean) != d:
            raise ValueError(f"the standardizer has {len(self.mean)} coordinates, the mixture {d}")
        mean = torch.tensor(self.mean, dtype=torch.float64).expand(d)
        inv = 1.0 / torch.tensor(self.std, dtype=torch.float64).expand(d)
        covs = inv[None, :, None] * mixture.covs * inv[None, None, :]
        return GaussianMixture(
            weights=mixture.weights, means=(mixture.means - mean) * inv, covs=covs
        )

    def to_dict(self) -> dict[str, list[float]]:
        """{"mean": [...], "std": [...]} (JSON-serialisable)."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Standardizer:
        try:
            return cls(tuple(d["mean"]), tuple(d["std"]))  # type: ignore[arg-type]
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"a standardizer dict needs lists 'mean' and 'std', got {dict(d)!r}"
            ) from err
