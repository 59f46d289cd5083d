"""OT speed: wasserflow against POT (and GeomLoss where installed), side by side in one process.

    python benchmarks/ot_speed.py            # full run (several minutes)
    python benchmarks/ot_speed.py --quick    # small sizes, one repeat

Sections: exact W2 (wasserflow.geometry.exact_ot against ot.emd2 at full convergence, plus the
relative error of ot.emd2 at its default iteration limit), minibatch coupling (batch 256 and 1024,
d = 2, against ot.emd), entropic W2 (debiased Sinkhorn divergence against GeomLoss's tensorized
backend, with errors against the exact W2^2 where that is feasible).  Times are medians over
repeats, in seconds, and include the cost matrix.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import numpy as np
import ot
import torch

from wasserflow.geometry import exact_ot
from wasserflow.geometry.ot.entropic import sinkhorn_divergence
from wasserflow.geometry.ot.minibatch import minibatch_ot_permutation


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def clouds(n: int, d: int, seed: int = 0):
    """x ~ N(0, I); y: in 2-D a ring of 8 Gaussians (radius 2, std 0.3), else N(1, 0.25 I)."""
    g = torch.Generator().manual_seed(seed + 1000 * d + n)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if d == 2:
        k = torch.randint(0, 8, (n,), generator=g).to(torch.float64) * (2 * math.pi / 8)
        centres = 2.0 * torch.stack([k.cos(), k.sin()], 1)
        y = centres + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    else:
        y = 1.0 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, y


def pot_emd2(x, y, limit: int) -> float:
    n = x.shape[0]
    C = ot.dist(x.numpy(), y.numpy(), metric="sqeuclidean")
    w = np.full(n, 1.0 / n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(ot.emd2(w, w, C, numItermax=limit))


def exact_section(sizes, dims, repeats):
    print("\n## exact W2^2 (network simplex), seconds")
    print(
        f"{'d':>3} {'n':>5} {'wasserflow':>11} {'POT full':>9} {'ratio':>6} "
        f"{'|diff|/W2^2':>11} {'POT default-limit err':>21}"
    )
    for d in dims:
        for n in sizes:
            x, y = clouds(n, d)
            r = repeats if n <= 1000 else max(1, repeats // 2)
            t_wf, res = timed(lambda x=x, y=y: exact_ot(x, y), r)
            t_pot, full = timed(lambda x=x, y=y: pot_emd2(x, y, 10**10), r)
            default = pot_emd2(x, y, 100_000)
            print(
                f"{d:>3} {n:>5} {t_wf:>11.3f} {t_pot:>9.3f} {t_wf / t_pot:>6.2f} "
                f"{abs(res.cost - full) / full:>11.1e} {(default - full) / full:>+21.2%}",
                flush=True,
            )


def minibatch_section(sizes, repeats):
    print("\n## minibatch exact coupling (d = 2), milliseconds")
    print(f"{'n':>5} {'wasserflow':>11} {'ot.emd':>8} {'ratio':>6} {'same cost':>9}")
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        x0 = torch.randn(n, 2, generator=g)
        x1 = 2.0 * torch.randn(n, 2, generator=g) + torch.tensor([3.0, 0.0])

        def pot(x0=x0, x1=x1, n=n):
            C = ot.dist(x0.double().numpy(), x1.double().numpy(), metric="sqeuclidean")
            w = np.full(n, 1.0 / n)
            return torch.from_numpy(ot.emd(w, w, C, numItermax=10**8).argmax(1))

        r = repeats * 10 if n <= 256 else repeats * 2
        t_wf, perm = timed(lambda x0=x0, x1=x1: minibatch_ot_permutation(x0, x1), r)
        t_pot, perm_pot = timed(pot, r)
        c_wf = float(((x0 - x1[perm]) ** 2).sum(1).double().mean())
        c_pot = float(((x0 - x1[perm_pot]) ** 2).sum(1).double().mean())
        same = abs(c_wf - c_pot) <= 1e-6 * c_pot
        print(
            f"{n:>5} {1e3 * t_wf:>11.2f} {1e3 * t_pot:>8.2f} {t_wf / t_pot:>6.2f} {same!s:>9}",
            flush=True,
        )


def entropic_section(sizes, repeats, rel_eps, blurs):
    try:
        from geomloss import SamplesLoss
    except ImportError:
        SamplesLoss = None
    print("\n## entropic W2^2, d = 2: time (s) and relative error against exact W2^2")
    for n in sizes:
        x, y = clouds(n, 2)
        exact = pot_emd2(x, y, 10**10) if n <= 4000 else None
        both = torch.cat([x, y])
        scale = float(((both.amax(0) - both.amin(0)) ** 2).sum())
        r = repeats if n <= 1000 else 1

        def err(v, exact=exact):
            return f"{(v - exact) / exact:+.2%}" if exact else "n/a"

        for rel in rel_eps:
            eps = rel * scale
            t, res = timed(lambda x=x, y=y, e=eps: sinkhorn_divergence(x, y, epsilon=e), r)
            print(
                f"n={n:>5} wasserflow eps={rel:g}*diam^2={eps:.3g} time {t:7.2f}  "
                f"S={res.cost:.5f} err {err(res.cost)} iters {res.iterations}",
                flush=True,
            )
        if SamplesLoss is None:
            continue
        xf, yf = x.float(), y.float()
        for blur, scaling in blurs:
            if n > 4000 and scaling > 0.5:
                continue  # minutes per call at n = 10,000
            loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, backend="tensorized")
            t, v = timed(lambda f=loss, u=xf, w=yf: 2.0 * float(f(u, w)), r)  # cost |x-y|^2/2
            print(
                f"n={n:>5} geomloss blur={blur} scaling={scaling} (eps={2 * blur**2:.3g}) "
                f"time {t:7.2f}  S={v:.5f} err {err(v)}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--only", choices=["exact", "minibatch", "entropic"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, POT {ot.__version__}, threads {args.threads}")
    if args.quick:
        plan = dict(
            exact=([500, 1000], [2, 64], 1),
            minibatch=([256, 1024], 1),
            entropic=([1000], 1, [1e-3], [(0.05, 0.5)]),
        )
    else:
        plan = dict(
            exact=([500, 1000, 2000, 4000], [2, 64], 3),
            minibatch=([256, 1024], 3),
            entropic=([1000, 4000, 10000], 3, [3e-3, 1e-3], [(0.05, 0.5), (0.05, 0.9), (0.2, 0.9)]),
        )
    if args.only in (None, "minibatch"):
        minibatch_section(*plan["minibatch"])
    if args.only in (None, "entropic"):
        entropic_section(*plan["entropic"])
    if args.only in (None, "exact"):
        exact_section(*plan["exact"])


if __name__ == "__main__":
    main()
