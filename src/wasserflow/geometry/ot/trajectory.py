"""Geometry of sampled trajectories: action, geodesic gap, path energy, straightness.

For trajectories x_i(t_k), k = 0..K, on a grid of total length T = t_K - t_0, the discrete
Benamou-Brenier action is

    A = T * mean_i sum_k |x_i(t_{k+1}) - x_i(t_k)|^2 / (t_{k+1} - t_k),

which is >= the cost of its own pairing mean_i |x_i(t_K) - x_i(t_0)|^2 (Cauchy-Schwarz) and
hence >= W2^2(start, end). A - W2^2 (the geodesic gap) vanishes exactly on straight,
constant-speed trajectories along an optimal pairing: the OT geodesics of docs/design.md section 3.
The normalized path energy |A - W2^2| / W2^2 is Tong et al. (2023); the straightness
S = int_0^1 E |v_s - (x(1) - x(0))|^2 ds on the rescaled unit clock is Liu et al. (2022), and
on a grid S = A - mean_i |x_i(t_K) - x_i(t_0)|^2 exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .exact import exact_ot
from .results import PathGeometry


def _check_traj(traj: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(traj, Tensor) or traj.dim() < 3:
        raise ValueError("traj must be a tensor of shape (K + 1, n, d) (time, particle, space)")
    traj = traj.reshape(traj.shape[0], traj.shape[1], -1).to(torch.float64)
    times = torch.as_tensor(times, dtype=torch.float64, device=traj.device).reshape(-1)
    if times.shape[0] != traj.shape[0]:
        raise ValueError(
            f"times has {times.shape[0]} entries for {traj.shape[0]} trajectory frames"
        )
    if traj.shape[0] < 2:
        raise ValueError("a trajectory needs at least two time points")
    dt = torch.diff(times)
    if not ((dt > 0).all() or (dt < 0).all()):
        raise ValueError("times must be strictly monotone")
    if not torch.isfinite(traj).all():
        raise ValueError("traj holds NaN or inf values (a diverged sampler?)")
    return traj, times


def trajectory_action(traj: Tensor, times: Tensor) -> float:
    """The discrete action A of trajectories traj (K + 1, n, ...) on the grid times (K + 1,)."""
    traj, times = _check_traj(traj, times)
    dt = torch.diff(times).abs()
    sq = (torch.diff(traj, dim=0) ** 2).sum(-1)  # (K, n)
    return float(dt.sum() * (sq / dt[:, None]).sum(0).mean())


def trajectory_geometry(
    traj: Tensor, times: Tensor, *, endpoint_w2_squared: float | None = None
) -> PathGeometry:
    """Action, geodesic gap, normalized path energy and straightness of a trajectory set.

    The endpoint W2^2 is exact OT between traj[0] and traj[-1] (uniform weights) unless given.
    """
    traj, times = _check_traj(traj, times)
    dt = torch.diff(times).abs()
    T = dt.sum()
    steps = torch.diff(traj, dim=0)
    action = float(T * ((steps**2).sum(-1) / dt[:, None]).sum(0).mean())
    chord = (traj[-1] - traj[0]) / T
    straight = float(
        T * ((steps / dt[:, None, None] - chord) ** 2).sum(-1).mul(dt[:, None]).sum(0).mean()
    )
    pairing = float(((traj[-1] - traj[0]) ** 2).sum(-1).mean())
    if endpoint_w2_squared is None:
        endpoint_w2_squared = exact_ot(traj[0], traj[-1]).cost
    w2sq = float(endpoint_w2_squared)
    return PathGeometry(
        action=action,
        endpoint_w2_squared=w2sq,
        geodesic_gap=action - w2sq,
        normalized_path_energy=abs(action - w2sq) / max(w2sq, 1e-300),
        straightness=straight,
        pairing_cost=pairing,
    )
