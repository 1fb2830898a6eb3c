"""The reduced chaos run (seconds): the full one is ``make chaos`` (tests/chaos/harness.py)."""

from __future__ import annotations

from tests.chaos.harness import Config, run


def test_kills_redis_restart_poison_and_a_neighbour_lose_duplicate_and_reorder_nothing() -> None:
    lines: list[str] = []
    counts = run(Config(intents=600, kills=2, redis_restarts=1, chunk=50, chunk_every_s=0.3,
                        poison_every=43, drain_timeout_s=60.0), log=lines.append)
    print(counts.line())
    assert counts.failures() == [], (counts.line(), counts.inversions, lines)  # claim after the replacement is up: < 5 s
    assert counts.entries_in == counts.acked_in == 600
    assert counts.decided == 600 and counts.executed > 0
    assert counts.worker_deaths == 2 and counts.redis_restarts == 1
    assert counts.poison_in > 0 and counts.dead_lettered == counts.poison_in
    assert set(counts.deadletter_by_code) <= {"malformed", "non_utf8"}
