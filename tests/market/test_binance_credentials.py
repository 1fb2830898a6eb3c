"""Credentials come only from env vars or Secret-mounted files and never reach a log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic
import pytest
from quantum_trader.core import logs
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import ExchangeError, OrderRequest
from quantum_trader.market.binance import BinanceExchange
from quantum_trader.market.credentials import CredentialsError, load_credentials

from .test_binance_replay import FAKE_KEY, FAKE_SECRET, NOW_MS, Reply, logged, recorded_market_data


def test_environment_variables_are_the_first_source(tmp_path: Path) -> None:
    creds = load_credentials({"QT_EXCHANGE_KEY": "k1", "QT_EXCHANGE_SECRET": "s1",
                              "QT_EXCHANGE_CREDENTIALS_DIR": str(tmp_path)})
    assert creds is not None and (creds.api_key, creds.secret, creds.source) == ("k1", "s1", "env")


def test_secret_mounted_files_are_read_from_the_credentials_dir(tmp_path: Path) -> None:
    (tmp_path / "apiKey").write_text("filekey\n")
    (tmp_path / "secret").write_text("filesecret\n")
    creds = load_credentials({"QT_EXCHANGE_CREDENTIALS_DIR": str(tmp_path)})
    assert creds is not None and (creds.api_key, creds.secret, creds.source) == ("filekey", "filesecret", "files")


def test_no_credentials_configured_is_none(tmp_path: Path) -> None:
    assert load_credentials({"QT_EXCHANGE_CREDENTIALS_DIR": str(tmp_path / "absent")}) is None


@pytest.mark.parametrize(
    "env",
    [{"QT_EXCHANGE_KEY": "only-the-key"}, {"QT_EXCHANGE_SECRET": "only-the-secret"}],
)
def test_half_configured_environment_is_an_error_without_the_value(env: dict[str, str]) -> None:
    with pytest.raises(CredentialsError) as err:
        load_credentials(env)
    assert "only-the" not in str(err.value)


def test_half_configured_secret_dir_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "apiKey").write_text("filekey")
    with pytest.raises(CredentialsError, match="both"):
        load_credentials({"QT_EXCHANGE_CREDENTIALS_DIR": str(tmp_path)})


def test_credentials_repr_and_str_mask_the_values() -> None:
    creds = load_credentials({"QT_EXCHANGE_KEY": FAKE_KEY, "QT_EXCHANGE_SECRET": FAKE_SECRET})
    for text in (repr(creds), str(creds), f"{creds}", f"{[creds]}"):
        assert FAKE_KEY not in text and FAKE_SECRET not in text and "***" in text


def test_the_profile_cannot_carry_keys() -> None:
    with pytest.raises(pydantic.ValidationError):
        ExchangeSettings.model_validate({"name": "binanceusdm", "apiKey": FAKE_KEY})


async def test_a_full_adapter_session_never_logs_the_key_or_the_secret(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("text", level=logging.DEBUG)  # our one-line handler on stderr, everything at DEBUG
    caplog.set_level(logging.DEBUG)
    logging.getLogger("ccxt").setLevel(logging.DEBUG)  # the adapter must turn this back down
    env = {"QT_EXCHANGE_KEY": FAKE_KEY, "QT_EXCHANGE_SECRET": FAKE_SECRET}
    ex = BinanceExchange.from_settings(
        ExchangeSettings(name="binanceusdm", credentials_secret="binance-testnet"),
        clock=ManualClock(NOW_MS), environment="testnet", env=env,
    )
    replay = recorded_market_data()
    replay.add("GET", "/fapi/v3/positionRisk", Reply(file="positionRisk.json"))
    replay.add("GET", "/fapi/v1/openOrders", Reply(file="error_invalid_api_key.json", status=401))
    replay.add("POST", "/fapi/v1/order", Reply(timeout=True), Reply(file="order_filled.json"),
               Reply(file="error_min_notional.json", status=400))
    replay.add("GET", "/fapi/v1/order", Reply(file="error_order_not_found.json", status=400))
    replay.add("GET", "/fapi/v1/userTrades", Reply(file="userTrades_4072195417.json"))
    assert ex._trade is not None
    for client in (ex._data.client, ex._trade.client):
        replay.bind(client)
        client.enableRateLimit = False  # ccxt's pacing is real time; not needed offline

    await ex.markets()
    await ex.tickers()
    await ex.positions()
    with pytest.raises(ExchangeError) as err:
        await ex.open_orders()
    assert err.value.reason == "auth_failed"
    filled = await ex.place_order(OrderRequest(symbol="BTCUSDT", side="BUY", qty=0.002, client_order_id="intent-0001"))
    rejected = await ex.place_order(OrderRequest(symbol="BTCUSDT", side="BUY", qty=0.001, client_order_id="intent-0002"))
    assert (filled.status, rejected.reason) == ("FILLED", "min_notional")
    print(repr(ex), repr(err.value), filled, rejected)
    await ex.close()

    assert [c for c in replay.calls if c.headers.get("X-MBX-APIKEY") == FAKE_KEY]  # the key was really used
    captured = capsys.readouterr()
    everything = "\n".join((caplog.text, logged(caplog), captured.err, captured.out))
    assert "ORDER_OUTCOME_UNKNOWN" in everything and "EXCHANGE_CONFIGURED" in everything
    assert "key_source=env" in everything
    assert "ORDER_RESULT" in captured.err  # the one-line handler on stderr was captured too
    assert FAKE_KEY not in everything
    assert FAKE_SECRET not in everything
    for root_handler in list(logging.getLogger().handlers):
        if getattr(root_handler, "_qt", False):
            logging.getLogger().removeHandler(root_handler)
