"""Run one gate/executor worker as its own OS process (crash-safety test, benchmark).

    python -m tests.executor.runner gate --redis-url URL --profile-json '{...}' --consumer gate-1
SIGTERM stops it cleanly; SIGKILL is what the crash test sends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal

from quantum_trader.core import logs
from quantum_trader.core.clock import WallClock
from quantum_trader.core.profile import parse_profile
from quantum_trader.core.service import WorkerContext, freeze_startup_heap, redis_client, worker_main

from tests.executor.fixtures import StaticExchange


async def amain(args: argparse.Namespace) -> None:
    prof = parse_profile(json.loads(args.profile_json))
    client = redis_client(args.redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    ctx = WorkerContext(name=args.worker, profile=prof, redis=client, clock=WallClock(), stop=stop,
                        exchange_factory=StaticExchange, consumer=args.consumer)
    freeze_startup_heap()  # as run_workers does
    try:
        await worker_main(args.worker, prof)(ctx)
    finally:
        await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("worker", choices=["gate", "executor"])
    p.add_argument("--redis-url", required=True)
    p.add_argument("--profile-json", required=True)
    p.add_argument("--consumer", required=True)
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args()
    logs.configure(level=getattr(logging, args.log_level))
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
