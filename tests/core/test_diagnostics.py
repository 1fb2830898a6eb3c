"""A `qt run` that seems stuck can be asked for its stacks: SIGUSR2 prints every asyncio task's, SIGUSR1
every thread's (a real `qt run` process on the sim and its own embedded Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_usr2_dumps_every_task_and_usr1_every_thread_and_the_run_goes_on(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    run = subprocess.Popen(
        [sys.executable, "-m", "quantum_trader.cli", "run", "--no-view", "--http-port", "0", "--duration", "20",
         "--data-dir", str(tmp_path / "paper")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # the workers are up once they log WORKER_STARTED; stderr is read by a thread while the run goes on
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(run.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        while not any("WORKER_STARTED" in line for line in lines):
            assert time.monotonic() < deadline and run.poll() is None, "".join(lines)[-3000:]
            time.sleep(0.2)
        run.send_signal(signal.SIGUSR2)
        run.send_signal(signal.SIGUSR1)
        run.wait(timeout=90)
        reader.join(timeout=10)
        text = "".join(lines)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, text[-3000:]  # neither signal stops the run
    assert "TASK_DUMP tasks=" in text and "TASK name=" in text and "Stack for <Task" in text
    assert "Current thread" in text or "Thread 0x" in text  # faulthandler's thread dump
    assert "RUN_STOPPED" in text
