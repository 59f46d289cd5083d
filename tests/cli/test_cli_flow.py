"""``wasserflow flow fp / jko``: F against the closed-form Ornstein-Uhlenbeck flow, F monotone,
pictures written, user potentials parsed, bad input reported in one line with exit code 2."""

import json
import math

import pytest
from _cli import run


def flow(argv, capsys, tmp_path, name="flow.png"):
    code, out, err = run(["flow", *argv, "--json", "-o", str(tmp_path / name)], capsys)
    assert code == 0, err
    res = json.loads(out)
    png = tmp_path / name
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return res


def ou_kl(t, m0=2.0, s0=0.5):
    """KL(N(m(t), v(t)) || N(0, 1)) along dX = -X dt + sqrt(2) dW from N(m0, s0^2) (1-D)."""
    m, v = m0 * math.exp(-t), s0**2 * math.exp(-2 * t) + 1 - math.exp(-2 * t)
    return 0.5 * (v + m * m - 1 - math.log(v))


def non_increasing(F):
    return all(b <= a + 1e-12 for a, b in zip(F, F[1:], strict=False))


def test_fp_matches_closed_form_ou(capsys, tmp_path):
    res = flow(["fp", "--steps", "100", "--scheme", "crank_nicolson"], capsys, tmp_path)
    assert res["t"][-1] == pytest.approx(1.0)
    assert non_increasing(res["F"])
    assert res["F"][0] == pytest.approx(ou_kl(0.0), rel=2e-3)
    assert res["F"][-1] == pytest.approx(ou_kl(1.0), rel=2e-3)
    assert max(abs(m - 1) for m in res["mass"]) < 1e-10


def test_fp_expression_equals_builtin_and_draws_2d(capsys, tmp_path):
    common = ["fp", "--dim", "2", "--steps", "4", "--cells", "32"]
    built = flow([*common, "--potential", "gaussian"], capsys, tmp_path, "a.png")
    expr = flow([*common, "--potential", "0.5*sum(x**2)"], capsys, tmp_path, "b.png")
    (tmp_path / "v.txt").write_text("0.5 * x[:, 0]**2 + 0.5 * x[:, 1]**2\n")
    from_file = flow([*common, "--potential", str(tmp_path / "v.txt")], capsys, tmp_path, "c.png")
    assert expr["F"] == pytest.approx(built["F"], rel=1e-9)
    assert from_file["F"] == pytest.approx(built["F"], rel=1e-9)
    assert non_increasing(built["F"])


def test_fp_prints_table(capsys, tmp_path):
    code, out, _ = run(["flow", "fp", "--steps", "3", "-o", str(tmp_path / "t.png")], capsys)
    assert code == 0 and "KL(rho || pi)" in out and (tmp_path / "t.png").exists()


def test_gaussian_jko_converges_to_ou_at_first_order(capsys, tmp_path):
    err = []
    for h, n in ((0.1, 10), (0.05, 20)):
        res = flow(
            ["jko", "--solver", "gaussian", "--h", str(h), "--steps", str(n)], capsys, tmp_path
        )
        assert non_increasing(res["F"]) and res["converged"]
        err.append(abs(res["F"][-1] - ou_kl(1.0)))
    assert 1.6 < err[0] / err[1] < 2.5  # error O(h): halving h halves it


def test_grid_jko_double_well(capsys, tmp_path):
    res = flow(
        [
            "jko",
            "--solver",
            "grid",
            "--potential",
            "double-well",
            "--h",
            "0.2",
            "--steps",
            "3",
            "--cells",
            "80",
        ],
        capsys,
        tmp_path,
    )
    assert non_increasing(res["F"]) and res["F"][-1] >= 0
    assert len(res["F"]) == 4 and res["method"] == "entropic_grid"


def test_particle_jko_2d(capsys, tmp_path):
    res = flow(
        [
            "jko",
            "--solver",
            "particles",
            "--potential",
            "gmm",
            "--dim",
            "2",
            "--h",
            "0.1",
            "--steps",
            "2",
            "--particles",
            "300",
        ],
        capsys,
        tmp_path,
    )
    assert non_increasing(res["F"]) and res["F"][-1] < res["F"][0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["fp", "--potential", "x.__class__"], "Attribute"),
        (["fp", "--potential", "__import__('os')"], "__import__"),
        (["fp", "--dim", "2", "--potential", "x"], "one value per point"),
        (["fp", "--potential", "x[:, 3]"], "fails on x"),
        (["fp", "--potential", "x[:, 9**9**9]"], "limited to 1,000,000"),
        (["jko", "--potential", "9**9**9 * x[:, 0]"], "overflows the float range"),
        (["fp", "--potential", "x[(0,) * 10**6]"], "tuple '(0,)' is not allowed"),
        (["fp", "--potential", "nope.txt"], "does not exist"),
        (["fp", "--dim", "3"], "1-D or 2-D"),
        (["fp", "--start-std", "0"], "std > 0"),
        (["jko", "--solver", "gaussian", "--potential", "gmm"], "Gaussian target"),
        (["jko", "--solver", "magic"], "--solver"),
        (["jko", "--h", "-0.1"], "positive"),
    ],
)
def test_bad_input_exits_2(capsys, tmp_path, argv, needle):
    code, _, err = run(["flow", *argv, "-o", str(tmp_path / "x.png")], capsys)
    assert code == 2 and needle in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "expr, needle",
    [
        ("x[:, 9**9**9]", "'9 ** 9' in an index is too large"),
        ("x[:, 2**20]", "'2 ** 20' in an index is too large"),
        ("x[:, 10**7]", "'10 ** 7' in an index is too large"),
        ("x[:, 1 + 2000000]", "index constant '2000000' is too large"),
        ("x[:, 1 % 0]", "'1 % 0' in an index divides by zero"),
        ("x[:, (-8) ** 0.5]", "not a real number"),
        ("x[:, 0] ** 9**9**9", "'9 ** 9 ** 9' overflows the float range"),
        ("1 / 0 + x[:, 0]", "'1 / 0' divides by zero"),
        ("9" * 400 + " * x[:, 0]", "a constant of 400 digits is beyond the float range"),
        ("x[(0,) * 10**6]", "the tuple '(0,)' is not allowed"),
        ("sum((x, x))", "the tuple '(x, x)' is not allowed"),
        ("x[True]", "only numeric constants"),
        ("x[...]", "only numeric constants"),
        ("x[:, 0]" + " + 1" * 600, "syntax nodes, above the limit 1000"),
        ("x[:, 0]" + " " * 10_000, "characters, above the limit 10000"),
    ],
)
def test_expression_bounds_refused_at_parse_time(expr, needle):
    import time

    from wasserflow.cli.flow import compile_expression

    start = time.monotonic()
    with pytest.raises(ValueError, match="potential ") as info:
        compile_expression(expr)
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert time.monotonic() - start < 1.0


def test_bounded_expressions_still_work():
    import torch

    from wasserflow.cli.flow import compile_expression

    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], dtype=torch.float64)
    cases = {
        "x[:, -1] + x[:, 2*1 - 2]": x[:, -1] + x[:, 0],
        "sum(x[:, 1:]**2) / 2 + 2**-1 + 10**9 * 0": (x[:, 1:] ** 2).sum(-1) / 2 + 0.5,
        "x[:, 2**0] ** 3 + 1000000000 * 0": x[:, 1] ** 3,
    }
    for expr, expected in cases.items():
        torch.testing.assert_close(compile_expression(expr)(x), expected)


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="POSIX timers")
def test_probe_time_limit(monkeypatch):
    import signal

    from wasserflow.cli import flow as flow_mod

    def slow(text):
        def energy(x):
            while True:
                pass

        return energy

    monkeypatch.setattr(flow_mod, "compile_expression", slow)
    monkeypatch.setattr(flow_mod, "PROBE_SECONDS", 0.05)
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(ValueError, match=r"took more than 0.05 s on 5 points \(the limit\)"):
        flow_mod.make_potential("x[:, 0]", 1)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
