"""``qt train``'s entry reach: the out-of-sample rows the router's guard lets through, and of those the
ones its expected-value rule would take after the profile's costs (a warning when none would)."""

from __future__ import annotations

from quantum_trader.ai.command import _entry_line, entry_reach, entry_warning
from quantum_trader.ai.dataset import Dataset
from quantum_trader.ai.training import TrainResult
from quantum_trader.core.profile import TradingProfile, parse_profile


def profile(**executor: float) -> TradingProfile:
    return parse_profile({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                          "metadata": {"name": "reach"}, "spec": {"executor": executor}})


def test_rows_with_a_positive_expected_value_are_counted_after_the_profiles_costs(
    trained: TrainResult, dataset: Dataset,
) -> None:
    cheap = entry_reach(trained, ds=dataset, profile=profile(feeBps=0.0, maxSlippageBps=0.0))
    shipped = entry_reach(trained, ds=dataset, profile=profile())
    assert cheap["rows_reaching"] == shipped["rows_reaching"] > 0  # the guard does not depend on costs
    assert cheap["cost_bps"] == 2.0 and shipped["cost_bps"] == 20.0  # spread only; 2×4 fees + 2 spread + 2×5 slip
    assert shipped["rows_positive_ev"] < cheap["rows_positive_ev"] <= cheap["rows_reaching"]
    assert "have a positive expected value after 20 bps of costs" in _entry_line(shipped)


def test_no_positive_expected_value_at_any_row_is_a_warning_that_names_the_costs(
    trained: TrainResult, dataset: Dataset,
) -> None:
    ruinous = entry_reach(trained, ds=dataset, profile=profile(feeBps=100.0, maxSlippageBps=1000.0))  # 2×100+2+2×500
    assert ruinous["rows_reaching"] > 0 and ruinous["rows_positive_ev"] == 0
    warning = entry_warning(ruinous)
    assert warning.startswith("WARNING: ") and "none has a positive expected value after 1202 bps" in warning
    assert _entry_line(ruinous) == warning
