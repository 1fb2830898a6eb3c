"""An idle ai worker (and anything importing the ai package) must not load LightGBM/sklearn/scipy."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_worker_and_command_loads_no_heavy_library() -> None:
    code = (
        "import sys, quantum_trader.ai, quantum_trader.ai.worker, quantum_trader.ai.command;"
        "print(','.join(m for m in ('lightgbm', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
