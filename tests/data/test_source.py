"""DataSource parsing and sampling; Standardizer JSON round trip and exact mixture push-forward."""

import json
import math

import pytest
import torch

from wasserflow.data import (
    FiniteSource,
    MixtureSource,
    SamplerSource,
    Standardizer,
    get_mixture,
    make_source,
    source_names,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_named_source_samples_its_shape():
    for name in source_names():
        src = make_source(name)
        x = src.sample(7, gen(0))
        assert x.shape == (7, *src.shape) and x.dtype == torch.float32, name
        assert src.dim == math.prod(src.shape)
        assert torch.equal(x, make_source(src.spec).sample(7, gen(0))), name
    assert isinstance(make_source("moons"), SamplerSource)
    assert make_source("moons").mixture is None
    assert make_source("8gaussians").mixture is not None
    assert isinstance(make_source("gmm2d"), MixtureSource)
    assert isinstance(make_source("digits"), FiniteSource)
    assert make_source("gmm8d", dtype=torch.float64).sample(2, gen(0)).dtype == torch.float64


def test_finite_source_draws_with_replacement_reproducibly():
    pts = torch.arange(10.0).reshape(5, 2)
    src = FiniteSource("five", pts)
    x = src.sample(200, gen(1))
    rows = {tuple(r) for r in x.tolist()}
    assert rows == {tuple(r) for r in pts.tolist()}  # only members, all of them after 200 draws
    assert torch.equal(x, src.sample(200, gen(1)))
    assert not torch.equal(x, src.sample(200, gen(2)))


def test_standardizer_json_round_trip_and_inverse():
    x = make_source("gmm2d").sample(5000, gen(3)).double()
    s = Standardizer.fit(x)
    z = s.transform(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(2, dtype=torch.float64))
    s2 = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    assert s2 == s
    torch.testing.assert_close(s2.inverse(z), x)
    img = torch.randn(4, 1, 8, 8, generator=gen(0))
    sc = Standardizer.fit(img, per_dim=False)
    assert sc.is_scalar and sc.transform(img).shape == img.shape
    with pytest.raises(ValueError, match="std"):
        Standardizer((0.0,), (0.0,))
    with pytest.raises(ValueError, match="coordinates"):
        Standardizer((0.0, 1.0), (1.0, 1.0)).transform(torch.zeros(3, 3))


def test_transform_mixture_is_the_pushforward_density():
    gm = get_mixture("gmm2d")
    s = Standardizer((0.3, -1.0), (2.0, 0.5))
    t = s.transform_mixture(gm)
    x = gm.sample(100, gen(4))
    # change of variables: log p_Z(z) = log p_X(x) + sum log std
    lhs = t.log_prob(s.transform(x))
    rhs = gm.log_prob(x) + math.log(2.0) + math.log(0.5)
    torch.testing.assert_close(lhs, rhs)


def test_fit_standardizer_uses_exact_moments_or_whole_set():
    src = make_source("gaussian2d")
    s = src.fit_standardizer()
    assert s.mean == (1.0, -0.5)
    assert s.std == pytest.approx((math.sqrt(1.5), math.sqrt(0.5)))
    digits = make_source("digits")
    sd = digits.fit_standardizer(per_dim=False)
    assert sd.mean[0] == pytest.approx(float(digits.points.double().mean()))
