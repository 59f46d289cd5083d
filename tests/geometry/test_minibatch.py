"""Minibatch OT pairing: optimal against POT's exact solver and scipy's assignment solver."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from wasserflow.geometry.ot.minibatch import minibatch_ot, minibatch_ot_permutation


def _cost_matrix(x0: torch.Tensor, x1: torch.Tensor) -> np.ndarray:
    return ot.dist(x0.double().numpy(), x1.double().numpy(), metric="sqeuclidean")


def _check_optimal(x0: torch.Tensor, x1: torch.Tensor) -> None:
    n = x0.shape[0]
    perm = minibatch_ot_permutation(x0, x1)
    assert perm.dtype == torch.int64 and perm.shape == (n,)
    assert sorted(perm.tolist()) == list(range(n))  # a permutation
    C = _cost_matrix(x0, x1)
    ours = C[np.arange(n), perm.numpy()].mean()
    w = np.full(n, 1.0 / n)
    pot = ot.emd2(w, w, C, numItermax=10_000_000)
    r, c = linear_sum_assignment(C)
    hungarian = C[r, c].mean()
    scale = max(abs(pot), 1e-300)
    assert abs(ours - pot) <= 1e-9 * scale + 1e-15
    assert abs(ours - hungarian) <= 1e-9 * scale + 1e-15


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 64),
    d=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    ties=st.booleans(),
)
def test_permutation_is_optimal_against_pot_and_hungarian(n, d, seed, ties):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, d, generator=g, dtype=torch.float64) * 2 + 1
    if ties:  # integer grid points: many equal costs and duplicated points
        x0 = torch.round(x0)
        x1 = torch.round(x1)
    _check_optimal(x0, x1)


def test_duplicates_and_identical_batches():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    perm = minibatch_ot_permutation(x, x)
    assert (x[perm] == x).all()  # zero cost: every point is paired with a copy of itself
    _check_optimal(x, x.flip(0))


def test_batch_256_float32_and_result_fields():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(256, 2, generator=g)
    x1 = torch.randn(256, 2, generator=g) * 0.5 + torch.tensor([3.0, 0.0])
    _check_optimal(x0, x1)
    res = minibatch_ot(x0, x1)
    C = _cost_matrix(x0, x1)
    w = np.full(256, 1.0 / 256)
    assert res.cost == pytest.approx(ot.emd2(w, w, C, numItermax=10_000_000), rel=1e-9)
    f, h = res.potentials
    # dual feasibility f_i + g_j <= C_ij and complementary slackness on the pairs
    assert (f.numpy()[:, None] + h.numpy()[None, :] <= C + 1e-9).all()
    assert np.allclose(
        f.numpy() + h.numpy()[res.permutation.numpy()],
        C[np.arange(256), res.permutation.numpy()],
        atol=1e-9,
    )


def test_high_dimension_uses_expanded_cost():
    g = torch.Generator().manual_seed(1)
    _check_optimal(torch.randn(40, 64, generator=g), torch.randn(40, 64, generator=g))


@pytest.mark.parametrize(
    "x0, x1, match",
    [
        (torch.zeros(3, 2), torch.zeros(4, 2), "equal batch sizes"),
        (torch.zeros(3, 2), torch.zeros(3, 3), "dimension mismatch"),
        (torch.zeros(0, 2), torch.zeros(0, 2), "empty"),
        (torch.full((2, 2), float("nan")), torch.zeros(2, 2), "NaN"),
    ],
)
def test_bad_input(x0, x1, match):
    with pytest.raises(ValueError, match=match):
        minibatch_ot_permutation(x0, x1)
