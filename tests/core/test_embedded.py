import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from quantum_trader.core.embedded import EmbeddedRedis


def test_embedded_server_starts_with_aof_and_supports_xautoclaim(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    client.xgroup_create("s", "g", id="0", mkstream=True)
    client.xadd("s", {"a": "1"})
    client.xreadgroup("g", "c1", {"s": ">"})
    _next_id, claimed, *_ = client.xautoclaim("s", "g", "c2", min_idle_time=0)
    assert len(claimed) == 1


def test_embedded_server_removes_its_directory_on_stop() -> None:
    server = EmbeddedRedis().start()
    sock = server.socket_path
    assert sock.exists()
    server.stop()
    assert not sock.parent.exists()


def test_ctrl_c_in_the_terminal_reaches_the_owner_not_the_embedded_server(tmp_path: Path) -> None:
    """Ctrl-C signals the terminal's whole foreground process group; the server must outlive it so
    the owner (``qt run``) can drain its workers against a live Redis before stopping the server."""
    script = (
        "import signal, sys, time\n"
        "from quantum_trader.core.embedded import EmbeddedRedis\n"
        "signal.signal(signal.SIGINT, lambda *_: None)\n"
        "server = EmbeddedRedis().start()\n"
        "print(server.socket_path, flush=True)\n"
        "sys.stdin.read()\n"
        "server.stop()\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             start_new_session=True, text=True)
    try:
        assert owner.stdout is not None and owner.stdin is not None
        sock = owner.stdout.readline().strip()
        os.killpg(owner.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        time.sleep(0.3)
        assert redis.Redis(unix_socket_path=sock).ping()
        owner.stdin.close()
        assert owner.wait(timeout=10) == 0
        assert not Path(sock).exists()
    finally:
        if owner.poll() is None:
            owner.kill()
