"""The Brenier criterion (symmetric PSD Jacobian) against maps whose Jacobians are known: a
rotation (asymmetry sin^2 theta), gradients of convex and concave functions, and a rotation
solved as an ODE through the engine's own Euler sampler (forward mode through torch.no_grad)."""

import math

import pytest
import torch

from wasserflow.metrics import coupling_gap, jacobian_symmetry
from wasserflow.metrics.gap_cases import plane_rotation
from wasserflow.samplers import get_sampler


def _x(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("d, theta", [(2, 0.4), (64, 1.0), (784, 0.3)])
def test_a_rotation_has_asymmetry_sin_squared_theta(d, theta):
    """|R - R^T|_F^2 / (4 |R|_F^2) = (d/2) 8 sin^2 / (4 d) = sin^2 theta for plane rotations."""
    r = plane_rotation(d, theta)
    res = jacobian_symmetry(lambda x: x @ r.T, _x(300, d))
    assert res.asymmetry_lower <= math.sin(theta) ** 2 <= res.asymmetry_upper
    assert res.negative_curvature == 0.0 and res.rejects_optimality


def test_the_gradient_of_a_convex_function_passes():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 16, generator=g, dtype=torch.float64)

    def grad_u(x):  # u = |x|^2 / 2 + sum log cosh(w_k . x): D grad u = I + W^T diag(sech^2) W
        return x + torch.tanh(x @ w.T) @ w

    res = jacobian_symmetry(grad_u, _x(200, 16))
    assert res.asymmetry < 1e-20 and not res.rejects_optimality
    assert res.negative_curvature == 0.0


def test_the_gradient_of_a_concave_function_fails_on_curvature():
    res = jacobian_symmetry(lambda x: -2 * x, _x(100, 4))
    assert res.asymmetry < 1e-20 and res.negative_curvature == 1.0 and res.rejects_optimality


def test_an_ode_rotation_through_the_euler_sampler():
    """dx/dt = Omega x, Omega skew, by 50 Euler steps: D Phi = (I + h Omega)^50 exactly, whose
    asymmetry is computed here from the matrix itself."""
    d, steps = 6, 50
    om = torch.zeros(d, d, dtype=torch.float64)
    om[0, 1], om[1, 0], om[2, 3], om[3, 2] = -1.0, 1.0, -0.5, 0.5
    euler, grid = get_sampler("euler"), torch.linspace(0, 1, steps + 1, dtype=torch.float64)

    def phi(x):
        with torch.no_grad():
            return euler(lambda z, t: z @ om.T, x, grid).x

    j = torch.linalg.matrix_power(torch.eye(d, dtype=torch.float64) + om / steps, steps)
    want = float((j - j.T).pow(2).sum() / (4 * j.pow(2).sum()))
    res = jacobian_symmetry(phi, _x(2000, d, 2))
    assert res.asymmetry_lower <= want <= res.asymmetry_upper and res.rejects_optimality


def test_the_coupling_gap_carries_the_test_when_given_the_map():
    r = plane_rotation(8, 0.5)
    x = _x(400, 8, 3)
    res = coupling_gap(x, x @ r.T, source="normal", map=lambda z: z @ r.T)
    assert res.jacobian is not None and res.jacobian.n == 256
    assert res.jacobian.asymmetry == pytest.approx(math.sin(0.5) ** 2, rel=0.3)


def test_a_map_that_did_not_make_x1_is_refused():
    x = _x(100, 4, 4)
    with pytest.raises(ValueError, match="x1 is not map"):
        jacobian_symmetry(lambda z: 2 * z, x, x1=3 * x)


def test_a_map_forward_mode_cannot_enter_is_differenced():
    """A map that leaves torch (numpy) gets central differences, and the same asymmetry."""
    r = plane_rotation(4, 0.7)

    def numpy_map(z):
        return torch.as_tensor(z.detach().numpy() @ r.numpy().T)

    res = jacobian_symmetry(numpy_map, _x(300, 4, 5))
    assert res.method == "central-difference"
    assert res.asymmetry_lower <= math.sin(0.7) ** 2 <= res.asymmetry_upper


def test_a_map_that_detaches_its_output_is_refused():
    with pytest.raises(ValueError, match="detaches its output"):
        jacobian_symmetry(lambda z: (2 * z).detach(), _x(20, 3))
