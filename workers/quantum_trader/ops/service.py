"""The async shell of the operations commands, against one profile's Redis.

``qt pause|resume|flatten|positions|trades|risk reset`` and the REST API call the
same :class:`Ops` methods; each reads Redis, asks :mod:`quantum_trader.ops.core`
what to do, writes, and records one audit entry on ``stream:ops.audit``.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Mapping
from typing import Any, Final, Literal

import redis.asyncio as aredis

from quantum_trader.core.bus import Bus
from quantum_trader.core.clock import Clock, WallClock
from quantum_trader.core.messages import ExecutionResult, MessageError, PositionEvent, decode_raw
from quantum_trader.core.profile import TradingProfile
from quantum_trader.gate.core import kill_score
from quantum_trader.inspect.timebase import TimeBase, parse_clock
from quantum_trader.ledger.positions import Position, parse_positions
from quantum_trader.ledger.risk import RiskState
from quantum_trader.ops import core
from quantum_trader.ops.core import Action, Result

AUDIT_MAXLEN: Final = 10_000
SCAN_CHUNK: Final = 500

# equity_peak := realized_pnl_total, loss_streak := 0, error_rate := 0, atomically; returns the old values.
RISK_RESET_LUA: Final = """
local old = redis.call('HMGET', KEYS[1], 'equity_peak', 'loss_streak', 'error_rate', 'realized_pnl_total')
local total = old[4] or '0'
redis.call('HSET', KEYS[1], 'equity_peak', total, 'loss_streak', '0', 'error_rate', '0')
return old
"""


def local_actor() -> str:
    """``user@host`` of whoever runs ``qt``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _s(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class Ops:
    """Operations on one profile. ``actor``/``via`` say who asks (recorded in every audit entry)."""

    def __init__(
        self, client: aredis.Redis, *, profile: TradingProfile, actor: str, via: Literal["cli", "api"],
        clock: Clock | None = None,
    ) -> None:
        self.redis = client
        self.profile = profile
        self.keys = profile.keys
        self.actor = actor
        self.via: Literal["cli", "api"] = via
        self.clock = clock or WallClock()
        self.bus = Bus(client, keys=self.keys, worker="ops")

    # -- shared reads --------------------------------------------------------------------------
    async def _timebase(self) -> TimeBase:
        raw = await self.redis.hgetall(self.keys.run_clock)
        return parse_clock({_s(k): _s(v) for k, v in (raw or {}).items()})

    async def pipeline_now_ms(self) -> int:
        """The pipeline's clock now (``qt run --speed`` runs it ahead of wall time)."""
        tb = await self._timebase()
        return tb.sim_at(self.clock.now_ms()) if tb.recorded else self.clock.now_ms()

    async def wall_ages_ms(self, stamps: list[int]) -> list[int]:
        """Wall-time ages of pipeline-time stamps (the one time rule of ``qt check``)."""
        tb = await self._timebase()
        wall = self.clock.now_ms()
        return [tb.age_ms(sim_ts=ts, wall_now_ms=wall, clock="wall") for ts in stamps]

    async def _positions(self) -> tuple[dict[str, Position], list[str]]:
        return parse_positions(decode_raw(await self.redis.hgetall(self.keys.positions) or {}))

    async def _marks(self, symbols: list[str]) -> dict[str, float]:
        if not symbols:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for sym in symbols:
            pipe.hget(self.keys.position_snapshot(sym), "mark_price")
        marks: dict[str, float] = {}
        for sym, raw in zip(symbols, await pipe.execute(), strict=True):
            try:
                marks[sym] = float(_s(raw)) if raw is not None else 0.0
            except ValueError:
                marks[sym] = 0.0
        return {s: m for s, m in marks.items() if m > 0}

    async def _record(self, action: Action, result: Result, *, target: str = "",
                      detail: Mapping[str, Any] | None = None) -> Result:
        entry = core.audit(action, outcome="ok" if result.ok else "refused", actor=self.actor, via=self.via,
                           now_ms=self.clock.now_ms(), reason=result.reason, target=target,
                           detail=detail if detail is not None else {"message": result.message})
        await self.redis.xadd(self.keys.ops_audit, entry.to_fields(),  # type: ignore[arg-type]
                              maxlen=AUDIT_MAXLEN, approximate=True)
        return result

    # -- pause / resume ------------------------------------------------------------------------
    async def pause(self, *, reason: str = "") -> Result:
        current = await self.redis.get(self.keys.control_paused)
        if current is not None:
            owner = core.flag_owner(_s(current))
            result = Result("pause", False, f"already paused (by {owner})", core.R_ALREADY_PAUSED)
            return await self._record("pause", result)
        why = reason or "manual"
        await self.redis.set(self.keys.control_paused,
                             core.pause_flag(actor=self.actor, reason=why, now_ms=self.clock.now_ms()))
        result = Result("pause", True, "paused: the router publishes nothing and the gate blocks every new "
                        "position with 'paused'; exits (stop loss, take profit, time, qt flatten) still run", data={"reason": why})
        return await self._record("pause", result, detail={"reason": why})

    async def resume(self) -> Result:
        current = await self.redis.get(self.keys.control_paused)
        ok, reason, message = core.plan_resume(spec_paused=self.profile.spec.paused,
                                               flag=_s(current) if current is not None else None)
        if ok:
            await self.redis.delete(self.keys.control_paused)
        return await self._record("resume", Result("resume", ok, message, reason))

    # -- flatten -------------------------------------------------------------------------------
    async def flatten(self, symbol: str | None = None) -> Result:
        target = symbol or ""
        if self.profile.spec.paused:  # a pause (qt pause) blocks new risk only: flatten goes through it
            result = Result("flatten", False, "the profile sets spec.paused: true, so its trading workers are "
                            "scaled to zero and nothing would execute the exit", core.R_PAUSED_BY_SPEC)
            return await self._record("flatten", result, target=target)
        positions, bad = await self._positions()
        marks = await self._marks(sorted(positions))
        intents, refused = core.flatten_intents(positions, marks, now_ms=await self.pipeline_now_ms(),
                                                symbol=symbol)
        for intent in intents:
            await self.bus.publish(self.keys.trade_intent, intent)
        sent = [i.symbol for i in intents]
        detail = {"symbols": sent, "refused": refused, "intent_ids": [i.intent_id for i in intents],
                  "unreadable": bad}
        if symbol is not None and not intents:
            why = refused.get(symbol, core.R_NO_POSITION)
            return await self._record("flatten", Result("flatten", False, f"{symbol}: {why.replace('_', ' ')}",
                                                        why, data=detail), target=target, detail=detail)
        message = (f"sent {len(sent)} reduce-only intent(s) through the gate: {', '.join(sent)}" if sent
                   else "no open positions")
        if refused:
            message += "; refused: " + ", ".join(f"{s} ({r})" for s, r in refused.items())
        return await self._record("flatten", Result("flatten", True, message, data=detail), target=target,
                                  detail=detail)

    # -- reads ---------------------------------------------------------------------------------
    async def positions(self, *, audited: bool = True) -> Result:
        positions, bad = await self._positions()
        marks = await self._marks(sorted(positions))
        tb = await self._timebase()
        wall = self.clock.now_ms()
        ages = {s: tb.age_ms(sim_ts=p.opened_ts, wall_now_ms=wall, clock="wall") for s, p in positions.items()}
        rows = core.position_rows(positions, marks, ages_ms=ages)
        upnl = sum(r.unrealized_pnl_usd or 0.0 for r in rows)
        data = {"positions": [r.to_json() for r in rows], "unrealized_pnl_usd": upnl, "unreadable": bad}
        result = Result("positions", True, f"{len(rows)} open position(s)", data=data)
        if audited:
            await self._record("positions", result, detail={"count": len(rows)})
        return result

    async def _newest(self, stream: str, *, want: int, keep: Any, stop_before_ts: int = 0) -> list[dict[str, str]]:
        """Up to ``want`` newest entries that ``keep`` accepts, not older than ``stop_before_ts``."""
        out: list[dict[str, str]] = []
        upper = "+"
        while len(out) < want:
            rows = await self.redis.xrevrange(stream, max=upper, min="-", count=SCAN_CHUNK)
            if not rows:
                break
            for _, raw in rows:
                fields = decode_raw(raw or {})
                if stop_before_ts and int(fields.get("ts", "0") or 0) < stop_before_ts:
                    return out[:want]
                if keep(fields):
                    out.append(fields)
            upper = "(" + _s(rows[-1][0])
        return out[:want]

    async def trades(self, *, limit: int = 50, symbol: str | None = None, audited: bool = True,
                     export: bool = False) -> tuple[Result, list[core.Trade]]:
        """The newest ``limit`` trades (position events) with their fills."""
        def mine(f: Mapping[str, str]) -> bool:
            return symbol is None or f.get("symbol") == symbol

        events = []
        for f in await self._newest(self.keys.position_event, want=limit, keep=mine):
            try:
                events.append(PositionEvent.from_fields(f))
            except MessageError:
                continue
        fills = []
        oldest = min((e.ts for e in events), default=0)
        for f in await self._newest(self.keys.execution_result, want=2 * limit + 10,
                                    keep=lambda f: f.get("status") == "FILLED" and mine(f), stop_before_ts=oldest):
            try:
                fills.append(ExecutionResult.from_fields(f))
            except MessageError:
                continue
        rows = core.trades(events, fills, mode=self.profile.spec.mode)
        realized = sum(t.realized_pnl_usd or 0.0 for t in rows)
        result = Result("trades", True, f"{len(rows)} trade(s)",
                        data={"trades": [t.to_json() for t in rows], "realized_pnl_usd": realized})
        if audited:
            await self._record("trades", result, target=symbol or "",
                               detail={"count": len(rows), "limit": limit, "csv": export})
        return result, rows

    async def risk(self) -> dict[str, Any]:
        """The kill score and its inputs, now."""
        raw = await self.redis.hgetall(self.keys.risk_state)
        try:
            risk = RiskState.from_hash(decode_raw(raw or {}))
        except ValueError as exc:
            return {"error": str(exc)}
        now = await self.pipeline_now_ms()
        settings = self.profile.spec.gate
        return {"kill_score": kill_score(risk, settings=settings, now_ms=now), "drawdown_usd": risk.drawdown_usd,
                "equity_peak": risk.equity_peak, "realized_pnl_total": risk.realized_pnl_total,
                "loss_streak": risk.loss_streak, "error_rate": risk.error_rate_at(now),
                "warning": settings.kill_score_warning, "critical": settings.kill_score_critical}

    # -- risk reset ----------------------------------------------------------------------------
    async def risk_reset(self) -> Result:
        before = await self.risk()
        old = await self.redis.eval(RISK_RESET_LUA, 1, self.keys.risk_state)
        after = await self.risk()
        names = ("equity_peak", "loss_streak", "error_rate", "realized_pnl_total")
        previous = {n: (_s(v) if v is not None else None) for n, v in zip(names, old, strict=True)}
        score_before = before.get("kill_score")
        score_after = after.get("kill_score")
        message = (f"kill score {score_before:.2f} → {score_after:.2f}: drawdown measured from now "
                   f"(equity peak := realised PnL total), loss streak and error rate cleared"
                   if isinstance(score_before, float) and isinstance(score_after, float)
                   else "risk state reset")
        detail = {"before": before, "after": after, "previous_fields": previous}
        return await self._record("risk_reset", Result("risk_reset", True, message, data=detail), detail=detail)

    # -- status --------------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        """Paused or not, workers, open orders, risk, serving model: one JSON document."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(k.control_paused)
        pipe.get(k.open_orders)
        pipe.get(k.model_promoted)
        pipe.hlen(k.positions)
        for w in ("universe", "ai", "router", "snapshot", "gate", "executor"):
            pipe.hgetall(k.heartbeat(w))
        replies = await pipe.execute()
        paused_raw, open_orders, promoted, n_positions = replies[:4]
        wall = self.clock.now_ms()
        workers: dict[str, Any] = {}
        for w, hb in zip(("universe", "ai", "router", "snapshot", "gate", "executor"), replies[4:], strict=True):
            fields = {_s(a): _s(b) for a, b in (hb or {}).items()}
            ts = int(fields["ts"]) if fields.get("ts", "").isdigit() else None
            workers[w] = {"alive": ts is not None, "heartbeat_age_ms": wall - ts if ts is not None else None,
                          "processed": int(fields.get("processed", "0") or 0)}
        paused_flag = _s(paused_raw) if paused_raw is not None else None
        return {
            "profile": self.profile.name,
            "environment": self.profile.spec.environment,
            "paused": bool(paused_flag) or self.profile.spec.paused,
            "paused_by": core.flag_owner(paused_flag) if paused_flag else ("spec" if self.profile.spec.paused else ""),
            "open_orders": _s(open_orders) if open_orders is not None else None,
            "open_positions": int(n_positions or 0),
            "model_promoted": _s(promoted) if promoted is not None else None,
            "workers": workers,
            "risk": await self.risk(),
        }

    async def audit_log(self, *, limit: int = 20) -> list[dict[str, Any]]:
        rows = await self.redis.xrevrange(self.keys.ops_audit, count=limit)
        out: list[dict[str, Any]] = []
        for _, raw in rows or []:
            try:
                out.append(core.OpsAudit.from_fields(decode_raw(raw or {})).model_dump())
            except MessageError:
                out.append({"raw": json.dumps(decode_raw(raw or {}))})
        return out
