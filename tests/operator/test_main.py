"""`qt operator` argument handling and configuration from the environment."""

from __future__ import annotations

import pytest
from quantum_operator import main
from quantum_operator.config import config_from_env


def test_operator_options_parse_namespaces_and_webhook_addresses() -> None:
    args = main.parser().parse_args(["-n", "a", "-n", "b", "--standalone", "--dev-webhook", "127.0.0.1:9443"])
    assert args.namespace == ["a", "b"] and args.standalone and args.dev_webhook == ("127.0.0.1", 9443)
    with pytest.raises(SystemExit):
        main.parser().parse_args(["--webhook", "nowhere"])


def test_bad_operator_environment_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QT_RECONCILE_INTERVAL", "soon")
    assert main.run(["--standalone"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "qt operator: QT_RECONCILE_INTERVAL='soon': expected a number of seconds"


def test_config_from_env_defaults_and_overrides() -> None:
    cfg = config_from_env(
        {
            "QT_WORKER_IMAGE": "w:2",
            "QT_REDIS_SECRET": "r",
            "REDIS_URL": "redis://x",
            "QT_HEARTBEAT_STALE_AFTER": "90",
        }
    )
    assert (cfg.worker_image, cfg.redis_secret, cfg.redis_url, cfg.heartbeat_stale_after) == (
        "w:2",
        "r",
        "redis://x",
        90,
    )
    assert config_from_env({}).reconcile_interval == 30.0


def test_release_finalizers_outside_a_cluster_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main.run(["--release-finalizers", "-n", "trading"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "qt operator: --release-finalizers: not in a cluster (KUBERNETES_SERVICE_HOST unset)"
