"""Stack dumps of a running process, for a ``qt run`` or ``qt worker`` that seems stuck.

* ``kill -USR1 <pid>``: every thread's Python stack to stderr (:mod:`faulthandler`; works even when the
  event loop itself is blocked).
* ``kill -USR2 <pid>``: every asyncio task's stack to stderr (while the event loop runs), one
  ``TASK name=… state=…`` header per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import signal
import sys
from typing import TextIO


def install_thread_dumps() -> None:
    """SIGUSR1 → every thread's stack on stderr."""
    if hasattr(signal, "SIGUSR1"):
        with contextlib.suppress(ValueError, RuntimeError, OSError, AttributeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)


def dump_tasks(file: TextIO | None = None) -> int:
    """Print every asyncio task of the running loop with its stack; returns how many."""
    out = file or sys.stderr
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    print(f"TASK_DUMP tasks={len(tasks)}", file=out)
    for task in tasks:
        state = "done" if task.done() else "pending"
        print(f"TASK name={task.get_name()} state={state} coro={task.get_coro()!r}", file=out)
        task.print_stack(file=out)
    out.flush()
    return len(tasks)


def install_task_dumps(loop: asyncio.AbstractEventLoop) -> None:
    """SIGUSR2 → every asyncio task's stack on stderr (while ``loop`` runs)."""
    if hasattr(signal, "SIGUSR2"):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGUSR2, dump_tasks)
