"""``qt universe [--json]``: one universe cycle, the ranked table and the funnel.

Exit 0 after a cycle that computed a universe (published too when ``redis_url``
is given), 1 when the cycle failed closed or could not be published (one line
on stderr). ``--json`` prints everything as one JSON document on stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any, Final, TextIO

from quantum_trader.core.clock import Clock, WallClock
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import TradingProfile
from quantum_trader.market.base import Exchange
from quantum_trader.universe import publication as pub
from quantum_trader.universe.cycle import CycleResult, Published, funnel_document, symbol_rows
from quantum_trader.universe.worker import UniverseConfig, UniverseState, cycle_once, strictness_refusal

MAX_LISTED_PER_REASON: Final = 12
LOGGER_NAME: Final = "quantum_trader"  # core.logs' logger


def _build_exchange(profile: TradingProfile, clock: Clock) -> Exchange:
    from quantum_trader.market.factory import build_exchange

    exchange: Exchange = build_exchange(profile.spec.exchange, clock=clock, environment=profile.spec.environment)
    return exchange


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def json_document(profile: TradingProfile, result: CycleResult, published: Published | None) -> dict[str, Any]:
    """Everything ``qt universe --json`` prints."""
    out: dict[str, Any] = {
        "profile": profile.name,
        "outcome": result.outcome,
        "reason": result.reason,
        "detail": result.detail,
        "published": published is not None,
    }
    if not result.ok:
        return out
    if published is not None:
        doc = published.document
        out["last_ok"] = published.last_ok
    else:
        rows = symbol_rows(result)
        doc = pub.build_document(
            symbols=rows,
            timeframes=result.timeframes,
            generated_at=result.now_ms,
            valid_for_s=profile.spec.universe.valid_for,
            hash_since=result.now_ms,
            checks=result.checks(),
        )
    out["universe"] = doc
    out["funnel"] = funnel_document(result, universe_hash=doc["universe_hash"])
    out["compute_ms"] = round(result.compute_ms, 2)
    return out


def render_text(document: dict[str, Any], *, timeframes: tuple[str, ...], out: TextIO) -> None:
    """The human table: ranked universe, funnel per stage, dropped symbols grouped by reason."""
    doc = document["universe"]
    fast, slow = timeframes[0], timeframes[-1]
    where = "published" if document["published"] else "not published (no REDIS_URL)"
    print(
        f"universe {doc['universe_hash']}  {doc['count']} symbols  generated {_iso(doc['generated_at'])}  "
        f"valid until {_iso(doc['valid_until'])}  {where}",
        file=out,
    )
    head = (
        f"{'rank':>4}  {'symbol':<14} {'score':>7} {'trend%':>8} {'mom ' + fast + '%':>10} "
        f"{'mom ' + slow + '%':>10} {'ATR%':>6} {'24h quote vol':>16} {'lev':>5}"
    )
    print(head, file=out)
    for row in doc["symbols"]:
        print(
            f"{row['rank']:>4}  {row['symbol']:<14} {_fmt(row.get('score'), '7.2f')} "
            f"{_fmt(row.get('trend'), '8.3f')} {_fmt(row.get('mom_' + fast), '10.3f')} "
            f"{_fmt(row.get('mom_' + slow), '10.3f')} {_fmt(row.get('atr_pct'), '6.3f')} "
            f"{_fmt(row.get('volume_24h'), '16,.0f')} {_fmt(row.get('leverage'), '5.1f')}",
            file=out,
        )
    if not doc["symbols"]:
        print("  (empty: every candidate was dropped; see the funnel)", file=out)
    funnel = document["funnel"]
    print("\nfunnel", file=out)
    print(f"  {'stage':<11} {'in':>5} {'out':>5}  dropped", file=out)
    for st in funnel["stages"]:
        why = ", ".join(f"{r} {n}" for r, n in st["dropped"].items())
        print(f"  {st['stage']:<11} {st['in']:>5} {st['out']:>5}  {why}", file=out)
    repair = funnel["repair"]
    print(
        f"  repair: {repair['rounds']} round(s), repaired {len(repair['repaired'])}, "
        f"still unhealthy {len(repair['still_unhealthy'])}, merged duplicates {len(funnel['merges'])}",
        file=out,
    )
    print("\ndropped symbols by reason", file=out)
    for reason, symbols in funnel["drops_by_reason"].items():
        shown = symbols[:MAX_LISTED_PER_REASON]
        more = len(symbols) - len(shown)
        tail = f" … +{more} more (--json lists all)" if more > 0 else ""
        print(f"  {reason} ({len(symbols)}): {' '.join(shown)}{tail}", file=out)


async def _run(
    profile: TradingProfile, *, redis_url: str | None, clock: Clock, exchange: Exchange | None
) -> tuple[CycleResult, Published | None]:
    log = EventLog(worker="universe", profile=profile.name)
    ex = exchange if exchange is not None else _build_exchange(profile, clock)
    redis: Any = None
    try:
        state = UniverseState()
        if redis_url:
            from quantum_trader.core.service import redis_client

            redis = redis_client(redis_url)
            state.previous = await pub.read_document(redis, profile.keys.universe_active)
        spec = profile.spec  # qt universe runs the worker's cycle with the worker's config
        config = UniverseConfig(universe=spec.universe, health=spec.health, environment=spec.environment)
        return await cycle_once(config=config, keys=profile.keys, exchange=ex, clock=clock, log=log, state=state,
                                redis=redis)
    finally:
        if redis is not None:
            await redis.aclose()
        if exchange is None:
            await ex.close()


def run(
    profile: TradingProfile,
    *,
    as_json: bool,
    redis_url: str | None,
    clock: Clock | None = None,
    exchange: Exchange | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """One cycle; print the table (or JSON); publish when ``redis_url`` is given. 0 ok, 1 fail-closed."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    refusal = strictness_refusal(environment=profile.spec.environment, health=profile.spec.health)
    if refusal is not None:
        print(f"qt universe: refused: {refusal}", file=stderr)
        return 1
    # the command reports on stdout/stderr itself: the worker's event lines would duplicate them
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        result, published = asyncio.run(
            _run(profile, redis_url=redis_url, clock=clock or WallClock(), exchange=exchange)
        )
    except Exception as exc:  # Redis or exchange construction trouble: one line, no traceback
        print(f"qt universe: failed: {type(exc).__name__}: {exc}", file=stderr)
        return 1
    finally:
        logger.setLevel(level)
    document = json_document(profile, result, published)
    if as_json:
        print(json.dumps(document, separators=(",", ":"), default=str), file=stdout)
    elif result.ok:
        render_text(document, timeframes=result.timeframes, out=stdout)
    if not result.ok:
        print(f"qt universe: fail-closed ({result.reason}): {result.detail}; nothing published", file=stderr)
        return 1
    return 0
