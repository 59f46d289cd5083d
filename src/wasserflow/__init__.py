"""wasserflow: diffusion models and optimal-transport flow matching on one geometric footing.

On the Wasserstein manifold P2(R^d), diffusion is the gradient flow of the free energy
KL(rho || pi) (Fokker-Planck, discretised by the JKO scheme) and optimal-transport flow
matching follows Benamou-Brenier geodesics. Every model exposes one velocity field v(x, t) on
one clock (t = 0 noise, t = 1 data), so the geometry in :mod:`wasserflow.geometry` applies to
all of them alike.
"""

__version__ = "0.1.0"
