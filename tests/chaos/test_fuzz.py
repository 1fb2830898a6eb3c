"""Fuzzed entries for every message type: parsing either yields a valid message or a MessageError.

Seeded mutations of real messages (random bytes, cut values, odd number and boolean
spellings, dropped and duplicated fields) go through ``M.from_fields`` and, for the
streams the workers consume, through a real ``Bus.consume`` on Redis: no other exception
ever escapes, every entry is either handled or dead-lettered, none is left pending.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aredis
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import MESSAGE_TYPES, Message, MessageError

from tests.core.test_messages import SAMPLES

KEYS = Keys("fuzz")
SPELLINGS = (b"", b" ", b"-0", b"-0.0", b"NaN", b"nan", b"inf", b"-inf", b"1e999", b"+1", b" 1", b"1 ", b"0x1",
             b"1_0", "١".encode(), "٣.٥".encode(), b"yes", b"TRUE", b"True", b"1", b"0", b"null", b"[]", b"{}",
             b"[1,", b'{"a": NaN}', b"\xff", b"\xc3(", b"\x00", b"\r\n", b"\x1b[2J", b"9" * 400)


def mutate(fields: dict[str, str], rng: random.Random) -> dict[bytes, bytes]:
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(list(raw)) if raw else b"x"
        roll = rng.random()
        if roll < 0.4:
            raw[key] = rng.choice(SPELLINGS)
        elif roll < 0.6:
            raw[key] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        elif roll < 0.7:
            raw[key] = raw[key][: rng.randint(0, len(raw[key]))]
        elif roll < 0.8:
            raw.pop(key, None)
        elif roll < 0.9:
            raw[bytes(rng.randrange(256) for _ in range(4))] = rng.choice(SPELLINGS)
        else:
            raw[key] = raw[key] * rng.randint(2, 50)
    return raw


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda m: m.TYPE)
def test_mutated_fields_parse_or_raise_message_error_only(sample: Message) -> None:
    rng = random.Random(f"fuzz-{sample.TYPE}")
    kind = type(sample)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(2_000):
        try:
            kind.from_fields(mutate(sample.to_fields(), rng))
            outcomes["parsed"] += 1
        except MessageError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1_000  # most mutations are caught, and nothing else was raised


async def test_fuzzed_entries_in_every_consumed_stream_are_handled_or_dead_lettered(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    raw = aredis.Redis.from_url(redis_url)
    bus = Bus(client, keys=KEYS)
    rng = random.Random("fuzz-streams")
    by_type = {type(m).TYPE: m for m in SAMPLES}
    for name in ("ai.signal", "trade.intent", "gate.decision"):
        stream = KEYS.stream(name)
        sample = by_type[name]
        for _ in range(150):
            await raw.xadd(stream, mutate(sample.to_fields(), rng))  # type: ignore[arg-type]
        handled: list[str] = []
        letters_before = await client.xlen(KEYS.deadletter)

        async def handler(batch: list[Parsed[Message]], sink: list[str] = handled) -> None:
            sink.extend(p.id for p in batch)

        stop = asyncio.Event()
        task = asyncio.create_task(bus.consume(stream=stream, group="g", consumer="c", message_type=MESSAGE_TYPES[name],
                                               handler=handler, stop=stop, block_ms=20))
        deadline = asyncio.get_running_loop().time() + 20
        while len(handled) + await client.xlen(KEYS.deadletter) - letters_before < 150:
            assert asyncio.get_running_loop().time() < deadline, (name, len(handled))
            assert not task.done(), task
            await asyncio.sleep(0.05)
        stop.set()
        await task
        assert (await client.xpending(stream, "g"))["pending"] == 0
    await client.aclose()
    await raw.aclose()
