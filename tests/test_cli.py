"""`qt` as a user types it: exit codes and one clear line on stderr, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def qt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader.cli", *args], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, **(env or {})}, timeout=60,
    )


def test_validate_accepts_the_examples() -> None:
    for name in ("paper", "testnet", "production"):
        result = qt("validate", f"examples/{name}.yaml")
        assert result.returncode == 0, result.stderr
        assert "valid TradingProfile" in result.stdout


def test_validate_reports_rule_violation_with_path_and_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: {name: bad}\nspec:\n  router: {targetOpenOrders: 12}\n")
    result = qt("validate", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{bad}: spec.router.targetOpenOrders: must be <= maxOpenOrders (12 > 10)"
    assert "Traceback" not in result.stderr


def test_validate_reports_invalid_yaml_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("metadata:\n  name: x\nspec: [\n")
    result = qt("validate", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad}:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_production_profile_with_strict_health_off_is_invalid_even_with_env_override(tmp_path: Path) -> None:
    bad = tmp_path / "prod.yaml"
    bad.write_text(
        "metadata: {name: prod}\nspec:\n  environment: production\n  exchange: {name: binanceusdm}\n"
        "  health: {strict: false}\n"
    )
    result = qt("validate", str(bad), env={"STRICT_HEALTH": "0", "TV_STRICT_HEALTH": "0"})
    assert result.returncode == 1
    assert "spec.health.strict: production requires health.strict: true" in result.stderr


def test_worker_without_redis_url_fails_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "quantum_trader.cli", "worker", "gate"], capture_output=True, text=True, cwd=ROOT,
        env=env, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "qt worker: REDIS_URL is not set: a worker needs the profile's Redis (qt run embeds one)"


def test_unknown_worker_is_a_usage_error() -> None:
    result = qt("worker", "nope", env={"REDIS_URL": "redis://127.0.0.1:1"})
    assert result.returncode == 2
    assert "unknown worker 'nope'" in result.stderr


def test_worker_drains_on_sigterm_and_exits_zero(redis_url: str) -> None:
    import signal
    import time

    import redis as sync_redis
    from quantum_trader.core.keys import Keys

    proc = subprocess.Popen(
        [sys.executable, "-m", "quantum_trader.cli", "worker", "gate", "--profile", "examples/paper.yaml",
         "--http-port", "0"],
        cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    key = Keys("paper").heartbeat("gate")
    deadline = time.time() + 30
    while time.time() < deadline and client.hget(key, "ready") != "1":
        time.sleep(0.1)
    assert client.hget(key, "ready") == "1", proc.stderr.read() if proc.poll() is not None else "not ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    assert "WORKER_STOPPED worker=gate profile=paper" in err
    assert "Traceback" not in err


def test_operator_help_is_the_operators_own() -> None:
    result = qt("operator", "--help")
    assert result.returncode == 0, result.stderr
    assert "--standalone" in result.stdout and "--namespace" in result.stdout
