"""`qt` as a user types it: exit codes and one clear line on stderr, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from quantum_trader.cli import build_parser, main
from quantum_trader.completion import commands

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main()` installs qt's log handler on this test's captured stderr: take it away again afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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


# -- help, completion, validate presentation (in process: fast) ---------------------------------------


def subcommands() -> list[str]:
    return [c.name for c in commands(build_parser()) if c.name != "operator"]


@pytest.mark.parametrize("name", subcommands())
def test_every_command_help_has_a_description_an_example_and_exit_codes(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "examples:\n  qt " in out or "examples:\n  eval" in out or "examples:\n  QT_" in out or \
        "examples:\n  REDIS_URL" in out, out
    assert "exit codes:\n  0 " in out, out
    description = out.split("\n\n")[1]
    assert len(description) > 40, out


def test_bash_completion_offers_commands_options_and_choices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on this machine")
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "qt.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        probe = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _qt; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        return subprocess.run([bash, "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    assert {"run", "check", "why", "flatten", "completion"} <= set(complete("qt", ""))
    assert complete("qt", "ch") == ["check"]
    assert set(complete("qt", "check", "--")) >= {"--window", "--clock", "--json", "--profile"}
    assert complete("qt", "check", "--clock", "") == ["wall", "sim"]
    assert complete("qt", "worker", "ga") == ["gate"]
    assert complete("qt", "risk", "") == ["show", "reset"]


def test_zsh_completion_defines_the_function_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#compdef qt") and "compdef _qt qt" in out
    for name in subcommands():
        assert f"\n    {name})\n" in out
    assert "'--clock[" in out and ":clock:(wall sim)'" in out
    zsh = shutil.which("zsh")
    if zsh is not None:
        subprocess.run([zsh, "-n", "-c", out], check=True)


def test_validate_checks_every_document_and_suggests_the_field_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "profiles.yaml"
    f.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: qt}\n---\n"
        "apiVersion: quantumtrader.io/v1alpha1\nkind: TradingProfile\nmetadata: {name: good}\nspec: {}\n---\n"
        "apiVersion: quantumtrader.io/v1alpha1\nkind: TradingProfile\nmetadata: {name: typo}\n"
        "spec:\n  router: {tragetOpenOrders: 2}\n---\n"
    )
    assert main(["validate", str(f)]) == 1
    captured = capsys.readouterr()
    assert f"{f} (document 1): skipped (Namespace: not a quantumtrader.io object)" in captured.out
    assert f"{f} (document 2): valid TradingProfile 'good'" in captured.out
    assert captured.err.strip() == (f"{f} (document 3): spec.router.tragetOpenOrders: unknown field "
                                    "'tragetOpenOrders' (did you mean 'targetOpenOrders'?)")
    assert main(["validate", "--json", str(f), "examples/paper.yaml"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and [d["valid"] for d in doc["documents"]] == [True, True, False, True]
    assert doc["documents"][2]["issues"] == [{"path": "spec.router.tragetOpenOrders",
                                             "message": "unknown field 'tragetOpenOrders'",
                                             "suggestion": "targetOpenOrders"}]


def test_ops_commands_print_done_or_refused_with_exit_codes(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["pause", "--reason", "drill"]) == 0
    assert capsys.readouterr().out.startswith("qt pause: paused:")
    assert main(["pause"]) == 1
    assert "qt pause: refused (already_paused): already paused (by qt)" in capsys.readouterr().err
    assert main(["flatten", "BTCUSDT"]) == 1  # while paused flatten is tried (exits pass a pause): no position
    assert "refused (no_position)" in capsys.readouterr().err
    assert main(["resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["positions", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["positions"] == []
    assert main(["trades", "--csv"]) == 0
    assert capsys.readouterr().out.startswith("time_utc,ts,symbol,side,qty,price")
    assert main(["risk", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kill_score"] == 0.0
    assert main(["audit", "--json"]) == 0
    actions = [e["action"] for e in json.loads(capsys.readouterr().out)]
    assert actions == ["trades", "positions", "resume", "flatten", "pause", "pause"]
    with pytest.raises(SystemExit) as exc:
        main(["flatten", "BTC-USDT"])
    assert exc.value.code == 2 and "expected a symbol such as BTCUSDT" in capsys.readouterr().err


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a LISTEN socket on ``port`` (read from /proc/net/tcp, as `ss` does)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, _, hexport = local.partition(":")
        if state == "0A" and int(hexport, 16) == port:
            found.add(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="needs Linux /proc/net/tcp")
def test_qt_run_listens_on_loopback_only_unless_told_otherwise() -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # its own embedded Redis
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantum_trader.cli", "run", "--profile", "examples/paper.yaml", "--no-view",
         "--duration", "60", "--http-port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 45
        while time.time() < deadline and not _listening_addresses(port) and proc.poll() is None:
            time.sleep(0.1)
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert build_parser().parse_args(["run", "--host", "0.0.0.0"]).host == "0.0.0.0"
