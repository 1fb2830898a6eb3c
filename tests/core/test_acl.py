"""Per-profile Redis ACL users on a real redis-server: a profile's user runs the whole pipeline and every
``qt`` command, and is refused another profile's keys and every administrative command.

The command list (core/acl.py) is checked against the code two ways: statically (every Lua
``redis.call``, every raw command literal and every redis-py command method in the workers) and at
run time (``INFO commandstats`` after a real ``qt run`` as the profile's user; ``ACL LOG`` empty).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.commands.core
from quantum_trader import cli
from quantum_trader.core import acl
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys
from redis.backoff import NoBackoff
from redis.retry import Retry

ROOT = Path(__file__).resolve().parents[2]
CODE = ROOT / "workers" / "quantum_trader"
GRANTED = set(acl.PROFILE_COMMANDS) | set(acl.OPTIONAL_COMMANDS)
CONTAINERS = {"xgroup", "xinfo", "script", "client", "acl", "config", "object", "memory", "function"}
# redis-py method names that are also ordinary Python idioms here (dict.get, Event.set, Path.unlink,
# bus.publish, ...): the run-time check below covers them.
AMBIGUOUS = {"get", "set", "delete", "keys", "time", "info", "exists", "copy", "sort", "type", "close",
             "pipeline", "lock", "unlink", "publish", "wait", "append", "dump", "move", "echo", "object",
             "client", "digest", "json", "eval", "expire", "scan", "execute_command"}  # fmt: skip
SPECIAL = {"xpending_range": ("xpending",), "register_script": ("evalsha", "script|load", "script|exists"),
           "xgroup_create": ("xgroup|create",), "xgroup_delconsumer": ("xgroup|delconsumer",)}  # fmt: skip


def _command(name: str, sub: str | None = None) -> str:
    name = name.lower()
    return f"{name}|{sub.lower()}" if name in CONTAINERS and sub else name


def used_commands() -> dict[str, set[str]]:
    """command → files, from the worker code's Lua scripts, raw command literals and redis-py methods."""
    methods = {m for m in dir(redis.commands.core.CoreCommands) if not m.startswith("_")} - AMBIGUOUS
    lua = re.compile(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"](?:\s*,\s*['\"]([A-Za-z]+)['\"])?")
    raw = re.compile(r"(?:raw_command\(\s*\w+\s*,|execute_command\(|once\(\[|\[(?=\s*\"X))\s*\"([A-Z]+)\"(?:\s*,\s*\"([A-Z]+)\")?")
    call = re.compile(r"\.([a-z_]+)\(")
    found: dict[str, set[str]] = {}
    for path in CODE.rglob("*.py"):
        if path.name == "embedded.py":  # the embedded server's own admin connection (creates the users)
            continue
        text = path.read_text()
        rel = str(path.relative_to(CODE))
        for m in [*lua.finditer(text), *raw.finditer(text)]:
            found.setdefault(_command(m.group(1), m.group(2)), set()).add(rel)
        for m in call.finditer(text):
            name = m.group(1)
            if name not in methods:
                continue
            head, _, sub = name.partition("_")
            for cmd in SPECIAL.get(name, (_command(head, sub) if head in CONTAINERS else name,)):
                found.setdefault(cmd, set()).add(rel)
    return found


def test_every_command_the_worker_code_sends_is_granted_to_a_profile_user() -> None:
    used = used_commands()
    assert {"xadd", "xreadgroup", "hset", "evalsha", "xgroup|delconsumer"} <= set(used)  # the scan sees the code
    missing = {cmd: sorted(files) for cmd, files in used.items() if cmd not in GRANTED}
    assert not missing, f"commands the code sends but core/acl.py does not grant: {missing}"


def test_no_administrative_or_keyspace_wide_command_is_granted() -> None:
    assert not GRANTED & set(acl.FORBIDDEN_COMMANDS)
    rules = acl.rules(Keys("alpha", namespace="team-a"))
    assert rules[:3] == ("~quantum:{team-a.alpha}:*", "resetchannels", "-@all")
    assert all(r.startswith("+") and "@" not in r for r in rules[3:])  # commands one by one, no category


@pytest.fixture
def two_profiles() -> Iterator[tuple[EmbeddedRedis, acl.ProfileUser, acl.ProfileUser]]:
    alpha = acl.ProfileUser(keys=Keys("alpha"), password="alpha-pass-" + "x" * 20)
    beta = acl.ProfileUser(keys=Keys("beta"), password="beta-pass-" + "y" * 20)
    with EmbeddedRedis(users=[alpha, beta], appendonly=False) as server:
        yield server, alpha, beta


def _client(server: EmbeddedRedis, user: acl.ProfileUser | None = None) -> redis.Redis:
    if user is None:
        return redis.Redis(unix_socket_path=str(server.socket_path), password=server.admin_password)
    return redis.Redis(unix_socket_path=str(server.socket_path), username=user.name, password=user.password)


def _refused(call: object, *args: object) -> str:
    with pytest.raises(redis.exceptions.NoPermissionError) as err:
        call(*args)  # type: ignore[operator]
    return str(err.value)


def test_a_profile_user_is_refused_another_profiles_keys(
    two_profiles: tuple[EmbeddedRedis, acl.ProfileUser, acl.ProfileUser],
) -> None:
    server, alpha, beta = two_profiles
    b = _client(server, beta)
    b.hset(beta.keys.positions, "BTCUSDT", "{}")
    a = _client(server, alpha)
    a.hset(alpha.keys.positions, "ETHUSDT", "{}")  # its own keys: fine
    assert a.hkeys(alpha.keys.positions) == [b"ETHUSDT"]
    # read B's positions, write an intent into B's stream, pause B, claim B's router lease
    assert "keys" in _refused(a.hgetall, beta.keys.positions)
    _refused(a.xadd, beta.keys.trade_intent, {"intent_id": "forged"})
    _refused(a.set, beta.keys.control_paused, "1")
    _refused(a.set, beta.keys.router_lease, "me")
    _refused(a.eval, "return redis.call('GET', KEYS[1])", 1, beta.keys.risk_state)  # scripts run as alpha
    _refused(a.get, "unprefixed")
    assert b.hkeys(beta.keys.positions) == [b"BTCUSDT"]


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "GET", "*"), ("KEYS", "*"),
     ("SCAN", "0"), ("MONITOR",), ("ACL", "LIST"), ("ACL", "SETUSER", "qt-alpha", "+@all"),
     ("SHUTDOWN",), ("SCRIPT", "FLUSH"), ("INFO",), ("SELECT", "1"), ("PUBLISH", "quantum:{alpha}:c", "x"),
     ("CLIENT", "KILL", "ID", "1"), ("BGSAVE",), ("SWAPDB", "0", "1"), ("XGROUP", "DESTROY", "quantum:{alpha}:s", "g")],
)
def test_a_profile_user_is_refused_administrative_commands(
    two_profiles: tuple[EmbeddedRedis, acl.ProfileUser, acl.ProfileUser], command: tuple[str, ...],
) -> None:
    server, alpha, _ = two_profiles
    a = _client(server, alpha)
    _refused(a.execute_command, *command)
    assert _client(server).ping()  # the server is still up


def test_without_a_password_nobody_gets_in(
    two_profiles: tuple[EmbeddedRedis, acl.ProfileUser, acl.ProfileUser],
) -> None:
    server, alpha, _ = two_profiles
    once = Retry(NoBackoff(), 0)  # an auth failure is final: no client retries
    for client in (redis.Redis(unix_socket_path=str(server.socket_path), retry=once),
                   redis.Redis(unix_socket_path=str(server.socket_path), username=alpha.name, password="wrong",
                               retry=once)):
        with pytest.raises(redis.exceptions.AuthenticationError):
            client.ping()
    text = (server.socket_path.parent / "users.acl").read_text()
    assert alpha.password not in text and server.admin_password not in text  # hashes only
    assert f"#{acl.password_hash(alpha.password)}" in text
    assert oct((server.socket_path.parent / f"{alpha.name}.password").stat().st_mode & 0o777) == "0o600"


def _commandstats(client: redis.Redis) -> set[str]:
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_") for name in info}


def test_the_profile_user_runs_the_whole_pipeline_and_every_qt_command_with_nothing_refused(
    two_profiles: tuple[EmbeddedRedis, acl.ProfileUser, acl.ProfileUser], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    server, alpha, _ = two_profiles
    profile = tmp_path / "alpha.yaml"
    # no fee or slippage: the untrained fallback's small edge clears the entry rule on any day the test runs
    # (the sim runs at wall time), so the pipeline trades and every command the workers send is exercised
    text = (ROOT / "examples" / "paper.yaml").read_text().replace("name: paper", "name: alpha", 1)
    text = text.replace("feeBps: 4, maxSlippageBps: 10", "feeBps: 0, maxSlippageBps: 0")
    if "feeBps: 0, maxSlippageBps: 0" not in text:
        raise RuntimeError("examples/paper.yaml changed: update this test's cost override")
    profile.write_text(text)
    admin = _client(server)
    admin.config_resetstat()
    admin.execute_command("ACL", "LOG", "RESET")
    credentials = {"REDIS_URL": server.url, **server.credentials_env(alpha.name), "XDG_RUNTIME_DIR": str(tmp_path)}
    env = {**{k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}, **credentials}
    run = subprocess.run([sys.executable, "-m", "quantum_trader.cli", "run", "--profile", str(profile), "--duration",
                          "25", "--speed", "120", "--no-view", "--http-port", "0"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "NOPERM" not in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    a = _client(server, alpha)
    fills = [f for _, f in a.xrange(alpha.keys.execution_result) if f[b"status"] == b"FILLED"]
    assert fills, run.stdout  # the pipeline traded, as alpha
    for key, value in credentials.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    for args in (("check", "--window", "10m"), ("why", "BTCUSDT"), ("positions",), ("trades", "--csv"),
                 ("pause", "--reason", "acl test"), ("resume",), ("flatten",), ("risk", "show"), ("risk", "reset"),
                 ("audit",)):
        code = cli.main([*args, "--profile", str(profile)])
        out, err = capsys.readouterr()
        assert code in (0, 1) and "cannot reach Redis" not in err, (args, err)
        assert "NOPERM" not in out + err, (args, err)
    assert admin.execute_command("ACL", "LOG") == []  # Redis refused nothing
    sent = _commandstats(admin) - {"acl|log", "info", "config|resetstat", "auth", "hello", "ping"}
    assert sent <= GRANTED, sent - GRANTED
    assert {"xreadgroup", "evalsha", "xautoclaim", "hincrbyfloat"} <= sent  # the run exercised the bus and ledgers


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_qt_run_embeds_a_redis_that_needs_the_profiles_password_and_its_commands_find_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)

    def qt(*args: str) -> list[str]:
        return [sys.executable, "-m", "quantum_trader.cli", *args, "--profile", "examples/paper.yaml"]

    run = subprocess.Popen(qt("run", "--duration", "20", "--no-view", "--http-port", "0"), cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        marker = tmp_path / "paper.redis-url"
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        url = marker.read_text().strip()
        sock = url.removeprefix("unix://")
        with pytest.raises(redis.exceptions.AuthenticationError):  # no password, no access
            redis.Redis(unix_socket_path=sock, retry=Retry(NoBackoff(), 0)).ping()
        paused = subprocess.run(qt("pause", "--reason", "acl"), cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert paused.returncode == 0, paused.stderr
        password = (Path(sock).parent / "qt-paper.password").read_text()
        for pid in (run.pid, *_children(run.pid)):  # qt run and its redis-server: never on a command line
            assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        c = redis.Redis(unix_socket_path=sock, username="qt-paper", password=password, decode_responses=True)
        assert c.exists(Keys("paper").control_paused)
        with pytest.raises(redis.exceptions.NoPermissionError):
            c.flushall()
    finally:
        run.terminate()
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err[-2000:]
    assert password not in out + err
