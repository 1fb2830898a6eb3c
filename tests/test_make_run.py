"""`make run` in a terminal: the live view, then Ctrl-C drains, the final frame is shown once, and make exits 0."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_make_run_exits_zero_after_ctrl_c_with_the_final_screen_once(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "COLUMNS": "140", "LINES": "50", "TERM": "xterm"}
    env.pop("REDIS_URL", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: make in a terminal, as a person types it
        os.chdir(ROOT)
        os.execve(make, [make, "--no-print-directory", "run", "ARGS=--http-port 0 --speed 30"], env)
    screen = b""
    interrupted_at = 0.0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        if not interrupted_at and b"positions" in screen and b"running " in screen:
            time.sleep(2)
            os.write(fd, b"\x03")  # Ctrl-C
            interrupted_at = time.monotonic()
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert interrupted_at, f"the live view never appeared:\n{text[-3000:]}"
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    assert "Interrupt" not in text  # make was not killed by the Ctrl-C
    assert text.count("stopped after") == 1, text[-3000:]  # the final frame, once
    log = (tmp_path / "paper.log").read_text()
    assert "RUN_STOPPED" in log and "WORKER_STOPPED worker=router" in log
    assert "ConnectionError" not in log  # the embedded Redis stayed up for the drain (not hit by the Ctrl-C)
