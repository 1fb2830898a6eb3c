"""``qt run``'s state between runs: the data folder of a profile, and what it kept there.

The embedded Redis of ``qt run`` keeps its append-only file in the profile's data folder —
``./.qt/<profile>/`` by default, ``$QT_DATA_DIR/<profile>/`` when that is set, or ``--data-dir DIR``.
Everything the pipeline writes lives in that Redis (positions, the risk state, cooldowns, the
streams that make the trade history, the model registry and the promoted model), so all of it
survives a stop, a crash or a reboot; the next ``qt run`` of the profile resumes from it.
``--fresh`` removes the Redis files first. One ``qt run`` at a time holds a folder (an exclusive
lock on ``qt-run.lock``): a second one is refused, naming the first one's pid.

:func:`read_state` reads what was kept (through the ledger rooms' parsers); :func:`state_events`
and :func:`state_text` say it as log lines and as a short summary for a person (pure).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aredis

from quantum_trader.core.keys import Keys
from quantum_trader.inspect import fmt
from quantum_trader.ledger.positions import Position, parse_positions
from quantum_trader.ledger.risk import CLOSED_TOTAL, REALIZED_PNL_TOTAL

DATA_DIR_ENV: Final = "QT_DATA_DIR"
DEFAULT_BASE: Final = ".qt"
LOCK_FILE: Final = "qt-run.lock"
REDIS_FILES: Final = ("appendonlydir", "appendonly.aof", "dump.rdb")  # what --fresh removes


class DataDirBusy(Exception):
    """Another ``qt run`` holds the folder."""


def data_dir_for(profile: str, *, explicit: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The profile's data folder: ``explicit``, else ``$QT_DATA_DIR/<profile>``, else ``./.qt/<profile>``."""
    if explicit:
        return Path(explicit).expanduser()
    base = (os.environ if env is None else env).get(DATA_DIR_ENV) or DEFAULT_BASE
    return Path(base).expanduser() / profile


def has_state(folder: Path) -> bool:
    """True when the folder holds Redis data from an earlier run."""
    return any((folder / name).exists() for name in REDIS_FILES)


def clear(folder: Path) -> list[str]:
    """``--fresh``: remove the Redis files of the folder (nothing else in it); the names removed."""
    removed = []
    for name in REDIS_FILES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
        elif path.exists():
            path.unlink()
            removed.append(name)
    return removed


@contextlib.contextmanager
def hold(folder: Path) -> Iterator[Path]:
    """Hold the folder for this process (created if missing); :class:`DataDirBusy` when another holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DataDirBusy(f"the data folder {folder} is in use by another qt run (pid {holder}); stop it, "
                              "or give this run its own folder with --data-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def kept_redis(profile: str) -> Iterator[str | None]:
    """The state ``qt run`` kept for ``profile``, on an embedded Redis started on its folder for the moment
    (held like a run: :class:`DataDirBusy` while a ``qt run`` uses it); None when nothing was kept."""
    from quantum_trader.core.embedded import EmbeddedRedis

    folder = data_dir_for(profile)
    if not has_state(folder):
        yield None
        return
    with hold(folder), EmbeddedRedis(data_dir=folder) as server:
        yield server.url


@dataclass(frozen=True, slots=True)
class KeptState:
    """What a profile's Redis holds across runs."""

    positions: tuple[Position, ...] = ()
    marks: Mapping[str, float] = field(default_factory=dict)  # symbol → last snapshot mark (if any)
    closed_trades: int = 0
    realized_pnl_usd: float = 0.0
    promoted_model: str = ""  # "" = none
    fallback_model: str = ""  # the latest training's best baseline ("" = none)
    trade_events: int = 0  # entries of stream:position.event (the trade history `qt trades` reads)
    unreadable: tuple[str, ...] = ()  # symbols whose stored position did not parse

    def unrealized_pnl_usd(self, p: Position) -> float | None:
        mark = self.marks.get(p.symbol)
        return None if not mark else (mark - p.entry_price) * p.qty * p.direction


async def read_state(client: aredis.Redis, keys: Keys) -> KeptState:
    """Read what the profile's Redis kept (one round trip, then the marks of the open positions)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.positions)
    pipe.hmget(keys.risk_state, [CLOSED_TOTAL, REALIZED_PNL_TOTAL])
    pipe.get(keys.model_promoted)
    pipe.get(keys.model_fallback)
    pipe.xlen(keys.position_event)
    raw_positions, (closed, pnl), promoted, fallback, events = await pipe.execute()
    positions, bad = parse_positions(raw_positions or {})
    symbols = sorted(positions)
    marks: dict[str, float] = {}
    if symbols:
        pipe = client.pipeline(transaction=False)
        for sym in symbols:
            pipe.hget(keys.position_snapshot(sym), "mark_price")
        for sym, mark in zip(symbols, await pipe.execute(), strict=True):
            with contextlib.suppress(TypeError, ValueError):
                marks[sym] = float(mark)
    return KeptState(
        positions=tuple(positions[s] for s in symbols), marks=marks, closed_trades=_int(closed),
        realized_pnl_usd=_float(pnl), promoted_model=_str(promoted), fallback_model=_fallback_name(fallback),
        trade_events=int(events or 0), unreadable=tuple(sorted(bad)),
    )


def _str(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v or "")


def _int(v: Any) -> int:
    try:
        return int(float(_str(v) or 0))
    except ValueError:
        return 0


def _float(v: Any) -> float:
    try:
        return float(_str(v) or 0.0)
    except ValueError:
        return 0.0


def _fallback_name(raw: Any) -> str:
    import json

    with contextlib.suppress(ValueError, TypeError, AttributeError):
        doc = json.loads(_str(raw))
        return str(doc.get("name") or "")
    return ""


def model_text(state: KeptState) -> str:
    if state.promoted_model:
        return f"model {state.promoted_model}"
    if state.fallback_model:
        return f"no promoted model (fallback-{state.fallback_model})"
    return "no trained model"


def state_events(state: KeptState, *, where: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Log lines (event, fields): ``kind`` is ``RUN_STATE_KEPT`` (on exit) or ``RUN_STATE_RESUMED`` (at start);
    then one ``RUN_OPEN_POSITION`` per open position."""
    out: list[tuple[str, dict[str, Any]]] = [(kind, {
        "where": where, "open_positions": len(state.positions), "closed_trades": state.closed_trades,
        "realized_pnl_usd": round(state.realized_pnl_usd, 4), "trade_events": state.trade_events,
        "model": state.promoted_model or "-", "fallback": state.fallback_model or "-",
    })]
    for p in state.positions:
        upnl = state.unrealized_pnl_usd(p)
        out.append(("RUN_OPEN_POSITION", {
            "symbol": p.symbol, "side": p.side, "qty": p.qty, "entry_price": p.entry_price,
            "stop_loss": p.stop_loss, "take_profit": p.take_profit, "opened_ts": p.opened_ts,
            "unrealized_pnl_usd": "-" if upnl is None else round(upnl, 4),
        }))
    for sym in state.unreadable:
        out.append(("RUN_POSITION_UNREADABLE", {"symbol": sym}))
    return out


def state_text(state: KeptState, *, where: str, ticks: Mapping[str, float] | None = None) -> str:
    """The exit summary for a person: what was kept, where, and the open positions."""
    ticks = ticks or {}
    n = len(state.positions)
    lines = [
        f"state kept in {where}: {n} open position{'' if n == 1 else 's'}, {state.closed_trades} closed trade"
        f"{'' if state.closed_trades == 1 else 's'} (realised {fmt.money(state.realized_pnl_usd, signed=True)}), "
        f"{model_text(state)}; the next `qt run` of this profile resumes from it (`--fresh` starts clean)",
    ]
    if state.positions:
        lines.append("open positions (their stop loss and take profit are watched again when qt run restarts):")
        for p in state.positions:
            upnl = state.unrealized_pnl_usd(p)
            tick = ticks.get(p.symbol)
            sl = fmt.price(p.stop_loss, tick) if p.stop_loss else "-"
            tp = fmt.price(p.take_profit, tick) if p.take_profit else "-"
            lines.append(f"  {p.symbol:<14} {p.side:<4} qty {fmt.quantity(p.qty):>12}  entry "
                         f"{fmt.price(p.entry_price, tick):>12}  SL {sl}  TP {tp}  unrealised "
                         f"{'-' if upnl is None else fmt.money(upnl, signed=True)}")
    for sym in state.unreadable:
        lines.append(f"  {sym}: stored position unreadable (see `qt positions`)")
    return "\n".join(lines)
