import numpy as np
import pytest
from quantum_trader.universe.features import chi2_sf
from scipy.stats import chi2


@pytest.mark.parametrize("dof", [2, 4, 10, 20, 3])
def test_chi2_survival_function_matches_scipy(dof: int) -> None:
    x = np.array([0.0, 0.5, 3.0, 10.0, 18.3, 40.0, 200.0])
    np.testing.assert_allclose(chi2_sf(x, dof=dof), chi2.sf(x, dof), rtol=1e-12, atol=1e-15)


def test_chi2_survival_function_keeps_nan() -> None:
    assert np.isnan(chi2_sf(np.array([np.nan]), dof=10))[0]
