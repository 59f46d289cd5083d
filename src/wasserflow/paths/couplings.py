"""Couplings of a reference batch x0 and a data batch x1: which x0 travels to which x1.

* :func:`independent_coupling`: the product measure (I-CFM, DDPM): pairs as given.
* :func:`ot_coupling`: minibatch exact OT (OT-CFM, Tong et al. 2024; Pooladian et al. 2023):
  the permutation minimising sum_i |x0_i - x1_perm(i)|^2.
* :func:`entropic_coupling`: pairs drawn i.i.d. from the entropic plan
  argmin_P <P, C> - reg H(P) (Sinkhorn); with reg = 2 sigma^2 this is the static Schroedinger
  bridge of Brownian motion with diffusion sigma (SB-CFM, TorchCFM's choice).
* :func:`reflow_coupling`: x1 = sampler(x0), the deterministic coupling of a trained flow
  (rectified flow's reflow, Liu et al. 2023).

Every coupling takes an explicit ``generator`` (unused by the deterministic ones) and returns a
:class:`CoupledBatch` holding the pairs and the indices into the inputs.

Class labels (:class:`LabelledBatch`, a batch and the class of each row): a coupling of
labelled data either ignores the labels (the plan of the whole batch, TorchCFM's
``guided_sample_location_and_conditional_flow``: noise may travel to a point of any class) or
is solved within each class (:func:`within_classes`: the plan is block-diagonal in the
classes, the limit of C2OT's condition cost, Cheng & Schwing 2025, arXiv:2503.10636). Either
way each pair carries the label of its data point, ``y[index1]``. Only the within-class plan
keeps the noise of each class distributed as the reference: a label-blind plan sends to class
c the noise points nearest its data, so a conditional model trained on those pairs starts
class c from a skewed prior while sampling starts it from N(0, I).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CoupledBatch:
    """Pairs (x0[i], x1[i]) with x0 = inputs0[index0], x1 = inputs1[index1] (index None for
    reflow, whose x1 is generated)."""

    x0: Tensor
    x1: Tensor
    index0: Tensor | None
    index1: Tensor | None


def _flat(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty tensor of shape (n, ...)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return x.reshape(x.shape[0], -1)


def _check_batches(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    f0, f1 = _flat(x0, "x0"), _flat(x1, "x1")
    if f0.shape[1] != f1.shape[1]:
        raise ValueError(
            f"x0 and x1 have different sample shapes {tuple(x0.shape[1:])} and "
            f"{tuple(x1.shape[1:])}"
        )
    return f0, f1


@dataclass(frozen=True)
class LabelledBatch:
    """A batch ``x`` (B, ...) (data points, or (B, 2, ...) noise-data pairs) and the class of
    each row ``y`` (B,) int64: what a class-conditional run's data stream serves. Indexing
    and ``to`` act on both."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.y.dim() != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"a labelled batch needs one label per row: {self.x.shape[0]} rows, labels of "
                f"shape {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index) -> LabelledBatch:
        return LabelledBatch(self.x[index], self.y[index])

    def to(self, device, non_blocking: bool = False) -> LabelledBatch:
        return LabelledBatch(
            self.x.to(device, non_blocking=non_blocking),
            self.y.to(device, non_blocking=non_blocking),
        )


def within_classes(
    coupling: Callable[..., CoupledBatch],
    x0: Tensor,
    x1: Tensor,
    y: Tensor,
    generator: torch.Generator | None = None,
    **options,
) -> CoupledBatch:
    """``coupling`` solved separately on the rows of each class: the x0 and x1 rows i with
    y_i = c are coupled among themselves (x0 drawn independently of the labels, so each class's
    noise is a sample of the reference). The pairs come class by class (classes in increasing
    order); ``index0`` / ``index1`` index the whole batch, so the label of pair k is
    ``y[index1[k]]`` (= ``y[index0[k]]``)."""
    if y.dim() != 1 or y.shape[0] != x1.shape[0] or x0.shape[0] != x1.shape[0]:
        raise ValueError("coupling within classes needs equal batches and one label per row")
    parts = []
    for c in torch.unique(y).tolist():
        rows = torch.nonzero(y == c).reshape(-1)
        sub = coupling(x0[rows], x1[rows], generator, **options)
        parts.append((sub, rows[sub.index0], rows[sub.index1]))
    return CoupledBatch(
        x0=torch.cat([p[0].x0 for p in parts]),
        x1=torch.cat([p[0].x1 for p in parts]),
        index0=torch.cat([p[1] for p in parts]),
        index1=torch.cat([p[2] for p in parts]),
    )


def independent_coupling(
    x0: Tensor, x1: Tensor, generator: torch.Generator | None = None
) -> CoupledBatch:
    """The independent coupling: x0[i] with x1[i] (the batches are already independent draws)."""
    f0, f1 = _check_batches(x0, x1)
    if f0.shape[0] != f1.shape[0]:
        raise ValueError("independent coupling pairs rows: x0 and x1 need the same batch size")
    idx = torch.arange(x0.shape[0], device=x0.device)
    return CoupledBatch(x0=x0, x1=x1, index0=idx, index1=idx)


def _ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    try:
        from wasserflow.geometry.ot.minibatch import minibatch_ot_permutation
    except ImportError:
        from wasserflow.geometry.ot.exact import exact_ot

        plan = exact_ot(x0.detach(), x1.detach()).plan
        return plan.argmax(dim=1).to(x0.device)
    return minibatch_ot_permutation(x0.detach(), x1.detach()).to(x0.device)


def ot_coupling(x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> CoupledBatch:
    """Minibatch exact OT: x0[i] paired with x1[perm[i]], perm minimising
    sum_i |x0_i - x1_perm(i)|^2 (network simplex; an optimal plan between equal uniform batches
    is a permutation, Birkhoff). Needs equal batch sizes."""
    f0, f1 = _check_batches(x0, x1)
    if f0.shape[0] != f1.shape[0]:
        raise ValueError("minibatch OT pairing needs equal batch sizes: draw as many x0 as x1")
    perm = _ot_permutation(f0, f1)
    return CoupledBatch(
        x0=x0, x1=x1[perm], index0=torch.arange(x0.shape[0], device=x0.device), index1=perm
    )


def entropic_plan(
    x0: Tensor, x1: Tensor, reg: float, *, max_iter: int = 10_000, tol: float = 1e-9
) -> Tensor:
    """The entropic OT plan between uniform batches for C_ij = |x0_i - x1_j|^2 (float64, (n, m)).

    argmin_P <P, C> - reg H(P): the plan of POT's ``ot.sinkhorn(a, b, C, reg)`` (TorchCFM's
    OTPlanSampler), computed by :func:`wasserflow.geometry.entropic.sinkhorn` in the log domain
    with epsilon-scaling, so small reg (a bridge sigma far below the data scale) neither
    underflows nor takes POT's log-domain solver thousands of iterations. ``tol`` bounds the L1
    marginal error.
    """
    from wasserflow.geometry.ot.entropic import sinkhorn

    if not reg > 0:
        raise ValueError(f"entropic regularisation reg must be > 0, got {reg}")
    f0, f1 = _check_batches(x0, x1)
    res = sinkhorn(
        f0.detach().double(),
        f1.detach().double(),
        epsilon=float(reg),
        tol=tol,
        max_iter=max_iter,
        kernel_dtype=torch.float64,
    )
    P = res.plan
    if P is None or not torch.isfinite(P).all():
        raise ValueError(f"Sinkhorn failed for reg = {reg}: increase reg")
    return P.to(x0.device)


def entropic_coupling(
    x0: Tensor,
    x1: Tensor,
    generator: torch.Generator | None = None,
    *,
    reg: float | None = None,
    sigma: float | None = None,
    n_pairs: int | None = None,
) -> CoupledBatch:
    """n_pairs (default len(x0)) pairs (i, j) drawn i.i.d. with replacement from the entropic
    plan P(reg); give ``reg`` directly or the bridge ``sigma`` with reg = 2 sigma^2
    (SB-CFM, Tong et al. 2024 / TorchCFM)."""
    if (reg is None) == (sigma is None):
        raise ValueError("give exactly one of reg or sigma (reg = 2 sigma^2)")
    if reg is None:
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        reg = 2.0 * sigma**2
    P = entropic_plan(x0, x1, reg)
    n = x0.shape[0] if n_pairs is None else int(n_pairs)
    if n < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    flat = (P / P.sum()).reshape(-1)  # on the device of the inputs and of the generator
    k = torch.multinomial(flat, n, replacement=True, generator=generator).to(x0.device)
    i, j = k // P.shape[1], k % P.shape[1]
    return CoupledBatch(x0=x0[i], x1=x1[j], index0=i, index1=j)


def reflow_coupling(
    x0: Tensor, sampler: Callable[[Tensor], Tensor], generator: torch.Generator | None = None
) -> CoupledBatch:
    """x1 = sampler(x0) computed without gradients: the coupling a trained flow induces
    (rectified flow reflow, Liu et al. 2023). ``sampler`` maps noise (n, ...) to data (n, ...)."""
    _flat(x0, "x0")
    with torch.no_grad():
        x1 = sampler(x0)
    if not isinstance(x1, Tensor) or x1.shape != x0.shape:
        raise ValueError("the reflow sampler must return a tensor of x0's shape")
    return CoupledBatch(
        x0=x0, x1=x1, index0=torch.arange(x0.shape[0], device=x0.device), index1=None
    )


COUPLINGS: dict[str, Callable[..., CoupledBatch]] = {
    "independent": independent_coupling,
    "ot": ot_coupling,
    "entropic": entropic_coupling,
}


def couple_labelled(
    name: str,
    x0: Tensor,
    batch: LabelledBatch,
    generator: torch.Generator | None = None,
    *,
    per_class: bool = True,
    **options,
) -> LabelledBatch:
    """The coupling ``name`` of the noise ``x0`` with the labelled data ``batch``, within each
    class (``per_class``) or label-blind, as (B', 2, ...) pairs [x0, x1] with the label of each
    pair's data point (module doc)."""
    fn = get_coupling(name)
    if per_class:
        c = within_classes(fn, x0, batch.x, batch.y, generator, **options)
    else:
        c = fn(x0, batch.x, generator, **options)
    return LabelledBatch(torch.stack([c.x0, c.x1], dim=1), batch.y[c.index1])


def get_coupling(name: str) -> Callable[..., CoupledBatch]:
    """A coupling of (x0, x1) batches by name: independent, ot or entropic."""
    if name not in COUPLINGS:
        raise ValueError(f"unknown coupling {name!r}: choose one of {sorted(COUPLINGS)}")
    return COUPLINGS[name]
