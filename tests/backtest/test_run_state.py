"""`qt run` keeps its state between runs (a data folder per profile, embedded Redis with AOF), and
`qt run --start/--end` replays a span of a replay exchange's data.

Every run here is the real `qt run` in a child process on its own embedded Redis; the folder is read
back by starting a real embedded Redis on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys
from quantum_trader.ledger.positions import Position
from quantum_trader.runstate import DataDirBusy, data_dir_for, hold

from tests.backtest.conftest import profile_file

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("paper")
POSITION = Position(symbol="BTCUSDT", side="BUY", qty=0.002, entry_price=50_000.0, stop_loss=0.0, take_profit=0.0,
                    opened_ts=1_700_000_000_000, order_id="PAPER-seeded", intent_id="seeded")


def qt_run(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """`qt run` in its own process; one that outlives ``timeout`` is asked for its task and thread stacks
    (SIGUSR2, SIGUSR1: core/diagnostics.py) before it is killed, and the test fails showing them."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # its own embedded Redis
    cmd = [sys.executable, "-m", "quantum_trader.cli", "run", "--no-view", "--http-port", "0", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR2)
            proc.send_signal(signal.SIGUSR1)
            time.sleep(3)
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"qt run {' '.join(args)} still running after {timeout:g} s; its stacks:\n{err[-20000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _seed(folder: Path) -> None:
    """What an earlier run leaves: an open position, a closed trade's event, a promoted model's name."""
    with EmbeddedRedis(data_dir=folder) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.hset(KEYS.positions, POSITION.symbol, POSITION.to_json())
        client.hset(KEYS.risk_state, mapping={"closed_total": 3, "realized_pnl_total": 1.25})
        client.set(KEYS.model_promoted, "20261201-0000-abc")
        client.xadd(KEYS.position_event, {"v": "1", "event": "CLOSED", "symbol": "ETHUSDT"})
        client.close()


def _read(folder: Path) -> dict[str, object]:
    with EmbeddedRedis(data_dir=folder) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        out: dict[str, object] = {
            "positions": client.hgetall(KEYS.positions), "model": client.get(KEYS.model_promoted),
            "events": client.xlen(KEYS.position_event), "universe": client.get(KEYS.universe_active),
        }
        client.close()
        return out


def test_positions_trades_and_model_survive_a_restart_and_the_exit_says_where(tmp_path: Path) -> None:
    folder = tmp_path / "paper"
    _seed(folder)
    run = qt_run("--duration", "3", "--data-dir", str(folder))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RUN_STATE_RESUMED" in run.stderr and "open_positions=1" in run.stderr
    assert "RUN_STATE_KEPT" in run.stderr
    assert "RUN_OPEN_POSITION" in run.stderr and "symbol=BTCUSDT side=BUY qty=0.002" in run.stderr
    assert f"state kept in {folder}: 1 open position, 3 closed trades" in run.stdout
    assert "model 20261201-0000-abc" in run.stdout
    assert "BTCUSDT" in run.stdout.split("open positions", 1)[1]
    kept = _read(folder)  # after the run's own Redis stopped: what the folder holds
    assert kept["positions"] == {"BTCUSDT": POSITION.to_json()}
    assert kept["model"] == "20261201-0000-abc"
    assert kept["events"] == 1
    assert kept["universe"], "what the run itself wrote (the universe) is kept too"


def test_fresh_starts_with_an_empty_state(tmp_path: Path) -> None:
    folder = tmp_path / "paper"
    _seed(folder)
    run = qt_run("--duration", "2", "--data-dir", str(folder), "--fresh")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RUN_FRESH" in run.stderr and "RUN_STATE_EMPTY" in run.stderr
    assert "0 open positions, 0 closed trades" in run.stdout
    kept = _read(folder)
    assert kept["positions"] == {} and kept["model"] is None and kept["events"] == 0


def test_the_default_folder_is_per_profile_and_overridable() -> None:
    assert data_dir_for("paper", env={}) == Path(".qt/paper")
    assert data_dir_for("paper", env={"QT_DATA_DIR": "/srv/qt"}) == Path("/srv/qt/paper")
    assert data_dir_for("paper", explicit="/x/y", env={"QT_DATA_DIR": "/srv/qt"}) == Path("/x/y")


def test_a_second_run_on_the_same_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    with hold(tmp_path / "paper"):
        with pytest.raises(DataDirBusy, match=rf"in use by another qt run \(pid {os.getpid()}\)"):
            with hold(tmp_path / "paper"):
                pass
    with hold(tmp_path / "paper"):  # released on exit
        pass


def test_fresh_with_redis_url_is_refused_in_one_line() -> None:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    run = subprocess.run([sys.executable, "-m", "quantum_trader.cli", "run", "--fresh"], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stderr.startswith("qt run: --fresh applies to the embedded Redis") and run.stderr.count("\n") == 1


# -- qt run --start/--end on a replay exchange -------------------------------------------------------


def test_replay_span_runs_and_stops_at_its_end(tmp_path: Path, replay_15m: Path) -> None:
    profile = profile_file(tmp_path, replay_15m)
    run = qt_run("--profile", str(profile), "--start", "2023-11-12T00:00", "--end", "2023-11-12T03:00",
                 "--speed", "3600", "--data-dir", str(tmp_path / "bt"), "--duration", "60")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RUN_REPLAY_SPAN" in run.stderr and "start_ms=1699747200000 end_ms=1699758000000" in run.stderr
    assert "RUN_REPLAY_END" in run.stderr and "RUN_DURATION_REACHED" not in run.stderr
    kept = _read_profile(tmp_path / "bt", "bt")
    assert kept, "the universe cycle ran against the replayed data (not stale against the wall clock)"


def _read_profile(folder: Path, name: str) -> str | None:
    with EmbeddedRedis(data_dir=folder) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        value: str | None = client.get(Keys(name).universe_active)
        client.close()
        return value


def test_replay_span_on_the_sim_is_one_line_and_exit_2() -> None:
    run = qt_run("--start", "2024-01-01")
    assert run.returncode == 2
    assert run.stderr.startswith("qt run: --start/--end replay recorded data and need a replay exchange")
    assert run.stderr.count("\n") == 1


def test_an_empty_replay_span_is_one_line_and_exit_1(tmp_path: Path, replay_15m: Path) -> None:
    profile = profile_file(tmp_path, replay_15m)
    run = qt_run("--profile", str(profile), "--start", "2030-01-01")
    assert run.returncode == 1
    assert run.stderr.startswith("qt run: nothing to replay: 2030-01-01") and "the data runs" in run.stderr
    assert run.stderr.count("\n") == 1
    bad = qt_run("--profile", str(profile), "--start", "yesterday")
    assert bad.returncode == 2 and bad.stderr.startswith("qt run: --start 'yesterday'")


def test_positions_and_trades_read_the_kept_state_after_qt_run_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from quantum_trader.cli import main

    monkeypatch.setenv("QT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # no running qt run to find
    _seed(tmp_path / "paper")
    capsys.readouterr()
    assert main(["positions", "--profile", str(ROOT / "examples" / "paper.yaml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["symbol"] for p in doc["positions"]] == ["BTCUSDT"]
    assert main(["trades", "--profile", str(ROOT / "examples" / "paper.yaml"), "--json"]) == 0
    capsys.readouterr()
    empty = tmp_path / "none"
    monkeypatch.setenv("QT_DATA_DIR", str(empty))
    assert main(["positions", "--profile", str(ROOT / "examples" / "paper.yaml")]) == 1
    assert "no Redis to read" in capsys.readouterr().err


def test_a_server_left_running_by_a_killed_owner_is_stopped_before_a_new_one_opens_the_folder(
    tmp_path: Path,
) -> None:
    """kill -9 of `qt run` leaves its Redis running (a session of its own); two servers on one AOF would
    corrupt it, so the next start on the folder stops the orphan first — and keeps its data."""
    folder = tmp_path / "paper"
    orphan = EmbeddedRedis(data_dir=folder).start()
    client = redis.Redis.from_url(orphan.url, decode_responses=True)
    client.hset(KEYS.positions, POSITION.symbol, POSITION.to_json())
    client.close()
    pid = orphan.pid
    orphan._proc = None  # its owner dies without stopping it (the socket's temp dir stays)
    try:
        with EmbeddedRedis(data_dir=folder) as server:
            assert not Path(f"/proc/{pid}").exists(), "the orphan was stopped"
            client = redis.Redis.from_url(server.url, decode_responses=True)
            assert client.hgetall(KEYS.positions) == {"BTCUSDT": POSITION.to_json()}
            client.close()
    finally:
        if Path(f"/proc/{pid}").exists():  # the test failed: do not leave the orphan behind
            os.kill(pid, 15)
        orphan.stop()  # its socket's temporary directory
