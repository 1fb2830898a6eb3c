"""Issue 8: exchange credentials never appear in the logs of a full run, nor anywhere in Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
KEY = "KEYqt7c0ffee1234567890apikey"
SECRET = "SECqt9deadbeef0987654321secret"


def test_full_testnet_run_never_logs_or_stores_the_key_or_secret(redis_url: str, tmp_path: Path) -> None:
    profile = tmp_path / "tn.yaml"
    profile.write_text(
        "apiVersion: quantumtrader.io/v1alpha1\nkind: TradingProfile\nmetadata: {name: tn}\nspec:\n"
        "  environment: testnet\n  exchange: {name: binanceusdm, credentialsSecret: binance-testnet}\n"
    )
    outputs = []
    for fmt in ("text", "json"):
        run = subprocess.run(
            [sys.executable, "-m", "quantum_trader.cli", "run", "--profile", str(profile), "--duration", "8",
             "--no-view", "--http-port", "0", "--log-format", fmt],
            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
            env={**os.environ, "REDIS_URL": redis_url, "QT_EXCHANGE_KEY": KEY, "QT_EXCHANGE_SECRET": SECRET},
        )
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.append(run.stdout + run.stderr)
    text = "\n".join(outputs)
    assert "EXCHANGE_CONFIGURED" in text  # the adapter really ran with the credentials
    assert KEY not in text and SECRET not in text
    assert KEY[:12] not in text and SECRET[:12] not in text
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"stream":
            blob = repr(client.xrange(key))
        elif kind == b"hash":
            blob = repr(client.hgetall(key))
        elif kind == b"string":
            blob = repr(client.get(key))
        elif kind == b"set":
            blob = repr(client.smembers(key))
        else:
            continue
        assert KEY not in blob and SECRET not in blob, key
