import numpy as np
import pytest
import torch

from t2ibench.analysis.pid_math import pid_from_pmi


def test_pid_identities_scalar():
    p = pid_from_pmi(2.0, 0.5, 3.0)
    assert p.redundancy == 0.5 and p.unique1 == 1.5 and p.unique2 == 0.0
    assert p.synergy == pytest.approx(1.0)
    assert p.unique1 + p.redundancy == 2.0 and p.unique2 + p.redundancy == 0.5


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_pid_identities_maps(lib):
    rng = np.random.default_rng(1)
    i1, i2 = rng.random((16, 16)), rng.random((16, 16))
    i12 = i1 + i2 + rng.normal(0, 0.3, (16, 16))
    if lib == "torch":
        i1, i2, i12 = map(torch.as_tensor, (i1, i2, i12))
    p = pid_from_pmi(i1, i2, i12)
    f = (lambda t: t.numpy()) if lib == "torch" else np.asarray
    np.testing.assert_allclose(f(p.unique1 + p.redundancy), f(i1))
    np.testing.assert_allclose(f(p.unique2 + p.redundancy), f(i2))
    np.testing.assert_allclose(f(p.redundancy + p.unique1 + p.unique2 + p.synergy), f(i12))
    # non-negative where the definition says so (inputs non-negative): R, U1, U2
    for t in (p.redundancy, p.unique1, p.unique2):
        assert (f(t) >= 0).all()
    # one of the unique terms is zero at every pixel
    assert (np.minimum(f(p.unique1), f(p.unique2)) == 0).all()
    # synergy can be negative: no sign constraint
    assert (f(p.synergy) < 0).any()


def test_independent_terms_have_no_redundancy_pattern():
    # one term tells nothing: R = 0, U2 = 0, U1 = i1, S = i12 - i1
    p = pid_from_pmi(1.2, 0.0, 1.5)
    assert p.redundancy == 0 and p.unique2 == 0 and p.unique1 == 1.2 and p.synergy == pytest.approx(0.3)
