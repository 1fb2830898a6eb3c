"""The replay exchange: recorded OHLCV files played back under a (usually virtual) clock.

The data folder holds ``<SYMBOL>_<timeframe>.csv`` files (DESIGN §4) with the header
``ts,open,high,low,close,volume`` and ``ts`` the bar's open time in epoch milliseconds UTC, or the
same columns as ``.parquet`` (needs pyarrow). Markets come from the file names with default
filters; klines are the bars that closed by the clock's now; a missing timeframe is aggregated
from a finer file; tickers come from the last 24 h of the finest timeframe; orders fill on an
in-memory paper book at the last close ± half the spread.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from quantum_trader.core.clock import Clock, DataClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import (
    TIMEFRAME_MS,
    ExchangeError,
    FundingRate,
    Klines,
    Market,
    OrderRequest,
    OrderResult,
    PerSymbol,
    Position,
    Ticker,
    per_symbol,
)
from quantum_trader.market.sim import TAKER_FEE, PaperBook
from quantum_trader.market.symbols import classify, filters_for_price, min_notional_for, split_symbol

F64 = npt.NDArray[np.float64]
HEADER: Final = ("ts", "open", "high", "low", "close", "volume")
SPREAD_BPS: Final = 2.0
FUNDING_HEADER: Final = ("ts", "rate")
MAX_FUNDING_RATE: Final = 0.05  # |rate| per settlement above this is a malformed file, not a market
_FUNDING_RE: Final = re.compile(r"^(?P<symbol>[A-Z0-9]+(?:_\d{6})?)_funding\.csv$")
_FILE_RE: Final = re.compile(
    r"^(?P<symbol>[A-Z0-9]+(?:_\d{6})?)_(?P<tf>1m|5m|15m|1h|4h|1d)\.(?P<ext>csv|parquet)$"
)


@dataclass(frozen=True, slots=True)
class _Series:
    ts: npt.NDArray[np.int64]
    ohlcv: F64  # (5, n)


def _malformed(path: Path, line: int, problem: str) -> ExchangeError:
    return ExchangeError(f"{path}:{line}: {problem}", reason="replay_malformed", endpoint="replay")


def _parse_csv(path: Path, tf_ms: int) -> _Series:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ExchangeError(f"{path}: cannot read ({exc.strerror})", reason="replay_malformed") from None
    lines = text.splitlines()
    if not lines or tuple(c.strip() for c in lines[0].split(",")) != HEADER:
        got = lines[0] if lines else "an empty file"
        raise _malformed(path, 1, f"header must be {','.join(HEADER)} (got {got!r})")
    ts: list[int] = []
    rows: list[tuple[float, float, float, float, float]] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        cells = raw.split(",")
        if len(cells) != 6:
            raise _malformed(path, lineno, f"expected 6 fields, got {len(cells)}")
        try:
            t = int(cells[0])
        except ValueError:
            raise _malformed(
                path, lineno, f"ts is not an integer epoch-ms value ({cells[0].strip()!r})"
            ) from None
        try:
            o, h, lo, c, v = (float(x) for x in cells[1:])
        except ValueError:
            raise _malformed(path, lineno, "open/high/low/close/volume must be numbers") from None
        ts.append(t)
        rows.append((o, h, lo, c, v))
    series = _Series(
        ts=np.asarray(ts, dtype=np.int64), ohlcv=np.asarray(rows, dtype=np.float64).reshape(-1, 5).T.copy()
    )
    _validate(path, series, tf_ms=tf_ms, first_line=2, lines=lines)
    return series


def _validate(path: Path, s: _Series, *, tf_ms: int, first_line: int, lines: list[str] | None) -> None:
    """Check every bar; the first bad bar raises with its line number."""

    def line_of(i: int) -> int:
        if lines is None:
            return first_line + i
        seen = -1
        for lineno, raw in enumerate(lines[1:], start=2):
            if raw.strip():
                seen += 1
                if seen == i:
                    return lineno
        return first_line + i

    o, h, lo, c, v = s.ohlcv
    checks: list[tuple[npt.NDArray[np.bool_], str]] = [
        (~np.all(np.isfinite(s.ohlcv), axis=0), "non-finite number"),
        (lo <= 0, "low must be > 0"),
        (h < np.maximum(o, c), "high is below open or close"),
        (lo > np.minimum(o, c), "low is above open or close"),
        (v < 0, "volume must be >= 0"),
        (s.ts % tf_ms != 0, f"ts is not aligned to the timeframe ({tf_ms} ms)"),
    ]
    bad = [(int(np.argmax(mask)), why) for mask, why in checks if mask.any()]
    order = np.flatnonzero(np.diff(s.ts) <= 0)
    if order.size:
        bad.append((int(order[0]) + 1, "ts must increase strictly"))
    if bad:
        i, why = min(bad)
        raise _malformed(path, line_of(i), why)


def _parse_funding(path: Path) -> list[FundingRate]:
    """``<SYMBOL>_funding.csv``: header ``ts,rate``, ``ts`` epoch ms increasing, ``rate`` a finite fraction."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ExchangeError(f"{path}: cannot read ({exc.strerror})", reason="replay_malformed") from None
    if not lines or tuple(c.strip() for c in lines[0].split(",")) != FUNDING_HEADER:
        got = lines[0] if lines else "an empty file"
        raise _malformed(path, 1, f"header must be {','.join(FUNDING_HEADER)} (got {got!r})")
    out: list[FundingRate] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        cells = raw.split(",")
        if len(cells) != 2:
            raise _malformed(path, lineno, f"expected 2 fields, got {len(cells)}")
        try:
            ts, rate = int(cells[0]), float(cells[1])
        except ValueError:
            raise _malformed(path, lineno, "ts must be epoch ms and rate a number") from None
        if not np.isfinite(rate) or abs(rate) > MAX_FUNDING_RATE:
            raise _malformed(path, lineno, f"rate {rate!r} is not a funding rate (|rate| <= {MAX_FUNDING_RATE})")
        if out and ts <= out[-1].ts:
            raise _malformed(path, lineno, "ts must increase strictly")
        out.append(FundingRate(ts=ts, rate=rate))
    return out


def _parse_parquet(path: Path, tf_ms: int) -> _Series:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ExchangeError(
            f"{path}: reading Parquet needs pyarrow: `make install EXTRAS=parquet` "
            "(or pip install 'quantum-trader[parquet]'), or use CSV",
            reason="replay_parquet_unavailable",
        ) from None
    try:
        table = pq.read_table(path, columns=list(HEADER))
    except Exception as exc:  # pyarrow raises many types: report one clear error
        raise ExchangeError(f"{path}: cannot read Parquet ({exc})", reason="replay_malformed") from None
    ts = np.asarray(table.column("ts").to_numpy(), dtype=np.int64)
    ohlcv = np.vstack([np.asarray(table.column(c).to_numpy(), dtype=np.float64) for c in HEADER[1:]])
    series = _Series(ts=ts, ohlcv=ohlcv)
    _validate(path, series, tf_ms=tf_ms, first_line=1, lines=None)  # parquet: "line" = row number
    return series


def _aggregate(s: _Series, *, fine_ms: int, tf_ms: int) -> _Series:
    """Complete coarse bars only (every fine bar of the group present)."""
    k = tf_ms // fine_ms
    if s.ts.size == 0:
        return s
    group = s.ts // tf_ms
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    counts = np.diff(np.append(starts, s.ts.size))
    starts = starts[counts == k]
    idx = starts[:, None] + np.arange(k)
    o, h, lo, c, v = s.ohlcv
    out = np.vstack((o[starts], h[idx].max(axis=1), lo[idx].min(axis=1), c[idx[:, -1]], v[idx].sum(axis=1)))
    return _Series(ts=group[starts] * tf_ms, ohlcv=out)


class ReplayExchange:
    """Recorded OHLCV as an :class:`~quantum_trader.market.base.Exchange` (``name="replay"``)."""

    name: str = "replay"

    def __init__(self, settings: ExchangeSettings, *, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        folder = Path(settings.data).expanduser()
        if not folder.is_dir():
            raise ExchangeError(f"replay data folder {folder} does not exist", reason="replay_data")
        self.folder = folder
        self._files: dict[tuple[str, str], Path] = {}
        self._funding_files: dict[str, Path] = {}
        self._funding: dict[str, list[FundingRate]] = {}
        for path in sorted(folder.iterdir()):
            fm = _FUNDING_RE.match(path.name)
            if fm is not None:
                self._funding_files[fm.group("symbol")] = path
                continue
            m = _FILE_RE.match(path.name)
            if m is None:
                continue
            key = (m.group("symbol"), m.group("tf"))
            if key in self._files:
                raise ExchangeError(
                    f"{path}: duplicate data for {key[0]} {key[1]} ({self._files[key].name})",
                    reason="replay_malformed",
                )
            self._files[key] = path
        if not self._files:
            raise ExchangeError(
                f"replay data folder {folder} has no <SYMBOL>_<timeframe>.csv files", reason="replay_data"
            )
        self._series: dict[tuple[str, str], _Series] = {}
        self._markets: dict[str, Market] | None = None
        self._book = PaperBook(venue="replay", taker_fee=TAKER_FEE)

    # ---- data ----

    def symbols(self) -> list[str]:
        return sorted({s for s, _ in self._files})

    def _finest(self, symbol: str) -> str:
        tfs = [tf for s, tf in self._files if s == symbol]
        if not tfs:
            raise ExchangeError(f"unknown symbol {symbol}", reason="unknown_symbol")
        return min(tfs, key=lambda tf: TIMEFRAME_MS[tf])

    def _load(self, symbol: str, timeframe: str) -> _Series:
        key = (symbol, timeframe)
        cached = self._series.get(key)
        if cached is not None:
            return cached
        if timeframe not in TIMEFRAME_MS:
            raise ExchangeError(f"unknown timeframe {timeframe!r}", reason="bad_timeframe")
        tf_ms = TIMEFRAME_MS[timeframe]
        path = self._files.get(key)
        if path is not None:
            series = _parse_parquet(path, tf_ms) if path.suffix == ".parquet" else _parse_csv(path, tf_ms)
        else:
            finer = [
                tf
                for s, tf in self._files
                if s == symbol and TIMEFRAME_MS[tf] < tf_ms and tf_ms % TIMEFRAME_MS[tf] == 0
            ]
            if not finer:
                if not any(s == symbol for s, _ in self._files):
                    raise ExchangeError(f"unknown symbol {symbol}", reason="unknown_symbol")
                have = ", ".join(sorted({tf for s2, tf in self._files if s2 == symbol}, key=lambda tf: TIMEFRAME_MS[tf]))
                raise ExchangeError(
                    f"replay has no {timeframe} bars for {symbol} (it has {have}; a {timeframe} series needs "
                    f"a {timeframe} file or a finer one that divides it) in {self.folder}",
                    reason="no_data",
                )
            fine = max(finer, key=lambda tf: TIMEFRAME_MS[tf])
            series = _aggregate(self._load(symbol, fine), fine_ms=TIMEFRAME_MS[fine], tf_ms=tf_ms)
        self._series[key] = series
        return series

    def time_range(self) -> tuple[int, int]:
        """(first bar open, last bar close) over all files, e.g. to start a virtual clock."""
        first, last = None, None
        for symbol, tf in self._files:
            s = self._load(symbol, tf)
            if s.ts.size:
                lo, hi = int(s.ts[0]), int(s.ts[-1]) + TIMEFRAME_MS[tf]
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
        if first is None or last is None:
            raise ExchangeError(f"replay data in {self.folder} has no bars", reason="no_data")
        return first, last

    def lacking(self, timeframe: str) -> list[str]:
        """Symbols that have neither a ``timeframe`` file nor a finer file it can be aggregated from."""
        tf_ms = TIMEFRAME_MS[timeframe]
        return [
            s
            for s in self.symbols()
            if not any(
                s2 == s and TIMEFRAME_MS[tf] <= tf_ms and tf_ms % TIMEFRAME_MS[tf] == 0 for s2, tf in self._files
            )
        ]

    def _closed(self, symbol: str, timeframe: str, end_ms: int) -> tuple[_Series, int]:
        """The series and the number of its bars closed at ``end_ms``."""
        s = self._load(symbol, timeframe)
        n = int(np.searchsorted(s.ts, end_ms - TIMEFRAME_MS[timeframe], side="right"))
        return s, n

    # ---- Exchange ----

    async def markets(self) -> list[Market]:
        await asyncio.sleep(0)
        if self._markets is None:
            out: dict[str, Market] = {}
            for symbol in self.symbols():
                try:
                    base, quote = split_symbol(symbol)
                except ValueError as exc:
                    raise ExchangeError(f"{self.folder}: {exc}", reason="replay_malformed") from None
                s = self._load(symbol, self._finest(symbol))
                price = float(np.median(s.ohlcv[3])) if s.ts.size else 1.0
                cls = classify(base)
                f = filters_for_price(price, min_notional=min_notional_for(cls))
                out[symbol] = Market(
                    symbol=symbol,
                    base=base,
                    quote=quote,
                    contract="delivery" if "_" in symbol else "perpetual",
                    status="TRADING",
                    tick_size=f.tick_size,
                    step_size=f.step_size,
                    min_notional=f.min_notional,
                    max_qty=f.max_qty,
                    min_qty=f.min_qty,
                    asset_class=cls,
                    onboard_ms=int(s.ts[0]) if s.ts.size else 0,
                )
            self._markets = out
        return list(self._markets.values())

    async def tickers(self) -> dict[str, Ticker]:
        await asyncio.sleep(0)
        now = self.clock.now_ms()
        out: dict[str, Ticker] = {}
        for symbol in self.symbols():
            tf = self._finest(symbol)
            s, n = self._closed(symbol, tf, now)
            if n == 0:
                continue
            lo = int(np.searchsorted(s.ts, now - 86_400_000, side="left"))
            c, v = s.ohlcv[3, lo:n], s.ohlcv[4, lo:n]
            last = float(s.ohlcv[3, n - 1])
            half = last * SPREAD_BPS / 2e4
            out[symbol] = Ticker(
                symbol=symbol,
                last=last,
                quote_volume_24h=float(np.sum(c * v)),
                bid=last - half,
                ask=last + half,
                ts=now,
            )
        return out

    async def klines(self, symbol: str, timeframe: str, *, limit: int, end_ms: int | None = None) -> Klines:
        await asyncio.sleep(0)
        if limit < 1:
            raise ExchangeError("limit must be >= 1", reason="bad_limit", endpoint="klines")
        now = self.clock.now_ms()
        end = now if end_ms is None else min(end_ms, now)
        s, n = self._closed(symbol, timeframe, end)
        lo = max(0, n - limit)
        o, h, low, c, v = (np.ascontiguousarray(x) for x in s.ohlcv[:, lo:n])
        return Klines(symbol, timeframe, s.ts[lo:n].copy(), o, h, low, c, v)

    async def backfill(self, symbol: str, timeframe: str) -> None:
        """Recorded history cannot be repaired: a no-op (health audits see the data as it is)."""
        self._finest(symbol)

    def _mark(self, symbol: str, now: int) -> float:
        s, n = self._closed(symbol, self._finest(symbol), now)
        if n == 0:
            raise ExchangeError(f"no {symbol} bar closed before now", reason="no_data")
        return float(s.ohlcv[3, n - 1])

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        await asyncio.sleep(0)
        now = self.clock.now_ms()
        return {s: self._mark(s, now) for s in symbols}

    async def mark_prices_each(self, symbols: list[str]) -> PerSymbol[float]:
        """Mark prices per symbol: an unlisted symbol is ``unknown_symbol``, the rest are priced."""
        return await per_symbol(symbols, self._mark_one)

    async def _mark_one(self, symbol: str) -> float:
        return (await self.mark_prices([symbol]))[symbol]

    async def klines_each(
        self, symbols: list[str], timeframe: str, *, limit: int, end_ms: int | None = None
    ) -> PerSymbol[Klines]:
        """:meth:`klines` per symbol; a symbol that fails is reported with its reason, the rest proceed."""
        return await per_symbol(symbols, lambda s: self.klines(s, timeframe, limit=limit, end_ms=end_ms))

    async def funding_rates(self, symbol: str, *, since_ms: int, until_ms: int) -> list[FundingRate]:
        """Settlements from ``<SYMBOL>_funding.csv`` in [since_ms, until_ms] that happened by now
        (none when the folder has no funding file for the symbol: nothing is charged)."""
        await asyncio.sleep(0)
        self._finest(symbol)  # unknown symbol → unknown_symbol
        rates = self._funding.get(symbol)
        if rates is None:
            path = self._funding_files.get(symbol)
            rates = _parse_funding(path) if path is not None else []
            self._funding[symbol] = rates
        last = min(until_ms, self.clock.now_ms())
        return [f for f in rates if since_ms <= f.ts <= last]

    async def positions(self) -> list[Position]:
        now = self.clock.now_ms()
        return self._book.positions({s: self._mark(s, now) for s in self._book.open_symbols()})

    async def place_order(self, order: OrderRequest) -> OrderResult:
        seen = self._book.get(order.client_order_id)
        if seen is not None:
            return seen
        markets = {m.symbol: m for m in await self.markets()}
        market = markets.get(order.symbol)
        if market is None:
            raise ExchangeError(f"unknown symbol {order.symbol}", reason="unknown_symbol")
        mark = self._mark(order.symbol, self.clock.now_ms())
        half = max(mark * SPREAD_BPS / 2e4, market.tick_size / 2)
        return self._book.place(order, market=market, mark=mark, half_spread=half)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        res = self._book.get(client_order_id)
        return res if res is not None and res.symbol == symbol else None

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        res = self._book.get(client_order_id)
        if res is None or res.symbol != symbol:
            raise ExchangeError(f"unknown order {client_order_id}", reason="unknown_order", endpoint="cancel")
        self._book.cancel(client_order_id)

    async def close(self) -> None:
        return None


def _parse_at(at: str) -> int:
    """An ISO date or datetime (UTC unless it says otherwise) or epoch ms → epoch ms."""
    from datetime import UTC, datetime

    text = at.strip()
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExchangeError(
            f"--at {at!r} is not an ISO date/datetime (e.g. 2024-03-01 or 2024-03-01T12:00) or epoch ms",
            reason="bad_time",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def replay_clock(
    settings: ExchangeSettings, *, needs: Mapping[str, Sequence[str]], at: str | None = None
) -> DataClock:
    """The clock a command runs under on a replay exchange: the data's last bar close, or ``at``.

    ``needs`` maps a profile setting to the timeframes it reads (``{"spec.ai.timeframe": ["15m"]}``);
    a symbol without such bars is refused with one line naming the symbol, the timeframe and the
    setting, instead of surfacing later as a fetch failure or as ``stale`` against the wall clock.
    """
    exchange = ReplayExchange(settings, clock=DataClock(0))
    for setting, timeframes in needs.items():
        for tf in timeframes:
            lacking = exchange.lacking(tf)
            if lacking:
                have = sorted({t for s, t in exchange._files if s == lacking[0]}, key=lambda tf: TIMEFRAME_MS[tf])
                more = f" (and {len(lacking) - 1} more symbols)" if len(lacking) > 1 else ""
                shown = tf if len(timeframes) == 1 else "[" + ", ".join(timeframes) + "]"
                raise ExchangeError(
                    f"replay has no {tf} bars for {lacking[0]}{more}; {setting} is {shown} "
                    f"(the folder has {', '.join(have)} for it: change {setting} or add {tf} files)",
                    reason="no_data",
                )
    first, last = exchange.time_range()
    if at is None:
        return DataClock(last)
    at_ms = _parse_at(at)
    if not first < at_ms <= last:
        raise ExchangeError(
            f"--at {at} is outside the replay data ({_iso(first)} .. {_iso(last)})", reason="bad_time"
        )
    return DataClock(at_ms)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def write_csv(path: Path, klines: Klines) -> None:
    """Write bars in the replay format (``ts,open,high,low,close,volume``); e.g. to record the sim."""
    cols = (klines.open, klines.high, klines.low, klines.close, klines.volume)
    lines = [",".join(HEADER)]
    for i, t in enumerate(klines.ts.tolist()):
        lines.append(",".join([str(t)] + [repr(float(c[i])) for c in cols]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
