"""What a per-profile Redis ACL user costs: the bus (publish + consume + ack) and the exactly-once Lua path
(``publish_once``: HSETNX + XADD in one script) as the profile's ACL user vs the unrestricted ``default``
user, on the same redis-server in the same run, alternating rounds.

Run: .venv/bin/python bench/bench_acl.py [N]      (target: ratio acl/default >= 0.90; a noisy machine shows in the spread between rounds)
"""

from __future__ import annotations

import asyncio
import statistics
import time

import redis.asyncio as aredis
from bench_bus import N, bus_round, intent  # the same message and bus round as bench_bus.py
from quantum_trader.core.acl import ProfileUser
from quantum_trader.core.bus import Bus
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys

ROUNDS = 4  # alternating which user goes first (ABBA): the machine's load drifts


async def once_round(client: aredis.Redis, keys: Keys) -> float:
    bus = Bus(client, keys=keys, maxlen=1_000_000)
    n = N // 4
    t0 = time.perf_counter()
    for i in range(n):
        await bus.publish_once(keys.trade_intent, intent(i), ledger=keys.published_signals, ledger_field=f"s{i}",
                               ledger_value=f"i{i}")
    return n / (time.perf_counter() - t0)


async def main() -> None:
    user = ProfileUser(keys=Keys("bench"), password="bench-" + "p" * 30)
    with EmbeddedRedis(appendonly=False, users=[user]) as server:
        admin = aredis.Redis(unix_socket_path=str(server.socket_path), password=server.admin_password,
                             decode_responses=True)
        profile = aredis.Redis(unix_socket_path=str(server.socket_path), username=user.name,
                               password=user.password, decode_responses=True)
        results: dict[str, list[float]] = {"bus default": [], "bus acl": [], "once default": [], "once acl": []}
        server_us: dict[str, list[float]] = {"default": [], "acl": []}  # evalsha µs per call inside Redis
        order = [("default", admin), ("acl", profile)]
        for r in range(ROUNDS):
            for who, client in (order if r % 2 == 0 else order[::-1]):
                await admin.flushall()
                results[f"bus {who}"].append(await bus_round(client, user.keys))
                await admin.flushall()
                await admin.config_resetstat()
                results[f"once {who}"].append(await once_round(client, user.keys))
                stats = await admin.info("commandstats")
                server_us[who].append(float(stats["cmdstat_evalsha"]["usec_per_call"]))
        med = {k: statistics.median(v) for k, v in results.items()}
        spread = {k: (min(v), max(v)) for k, v in results.items()}
        print(f"{N} intents per bus round, {N // 4} publish_once calls per Lua round, {ROUNDS} rounds, medians")
        for key, unit in (("bus default", "msg/s"), ("bus acl", "msg/s"), ("once default", "calls/s"), ("once acl", "calls/s")):
            lo, hi = spread[key]
            print(f"{key:<13} median {med[key]:>9,.0f} {unit:<8} (rounds {lo:,.0f}..{hi:,.0f})")
        print(f"bus publish_many + consume, ratio acl/default : {med['bus acl'] / med['bus default']:.2f}  (target >= 0.90)")
        print(f"publish_once (Lua), ratio acl/default         : {med['once acl'] / med['once default']:.2f}  (target >= 0.90)")
        us = {k: statistics.median(v) for k, v in server_us.items()}
        print(f"publish_once inside Redis (commandstats), default {us['default']:.1f} µs/call, ACL {us['acl']:.1f} µs/call"
              f" (ratio {us['acl'] / us['default']:.2f}; not disturbed by client scheduling)")
        await admin.aclose()
        await profile.aclose()


if __name__ == "__main__":
    asyncio.run(main())
