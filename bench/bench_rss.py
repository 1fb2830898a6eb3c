"""Idle RSS of each worker process (`qt worker NAME`), next to a bare Python interpreter, same run.

Target: an idle worker < 120 MB. Run: .venv/bin/python bench/bench_rss.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import WORKERS, Keys

ROOT = Path(__file__).resolve().parents[1]
QT = [sys.executable, "-m", "quantum_trader.cli"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    workers = sys.argv[1:] or list(WORKERS)
    with EmbeddedRedis(appendonly=False) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        time.sleep(0.5)
        base = rss_mb(bare.pid)
        bare.kill()
        print(f"{'process':<22}{'RSS MB':>8}{'x bare':>8}")
        print(f"{'bare python':<22}{base:>8.1f}{1.0:>8.2f}")
        env = {**os.environ, "REDIS_URL": server.url}
        for i, name in enumerate(workers):
            proc = subprocess.Popen(
                [*QT, "worker", name, "--profile", str(ROOT / "examples" / "paper.yaml"), "--http-port", str(18100 + i)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.time() + 60
            while time.time() < deadline and not client.exists(Keys("paper").heartbeat(name)):
                time.sleep(0.2)
            time.sleep(5.0)  # idle
            rss = rss_mb(proc.pid) if proc.poll() is None else float("nan")
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = -9
            flag = "" if rss < 120 else "  (over 120 MB target)"
            print(f"{'qt worker ' + name:<22}{rss:>8.1f}{rss / base:>8.2f}   exit={code}{flag}")


if __name__ == "__main__":
    main()
