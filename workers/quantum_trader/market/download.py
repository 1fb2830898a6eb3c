"""``qt data download``: history from an exchange (or the sim) into the replay format, resumable.

Writes, per symbol, ``DIR/<SYMBOL>_<timeframe>.csv`` (``ts,open,high,low,close,volume``, the replay
exchange's format) and, where the source has funding, ``DIR/<SYMBOL>_funding.csv`` (``ts,rate``).
Only closed bars are written (open time + timeframe <= ``--until``). A second run with the same
``--out`` resumes after the last complete row of each file (a row torn by a crash is dropped first),
so an interrupted download continues where it stopped and a later ``--until`` only fetches what is new.

Sources: ``binanceusdm`` (public market data through ccxt: ``fetch_ohlcv`` pages of 1000 bars and
``fetch_funding_rate_history``; no API keys) and ``sim`` (the simulated market of ``--seed``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

if TYPE_CHECKING:  # numpy, ccxt and rich load only when a download runs: `qt --help` stays fast
    from rich.progress import Progress, TaskID

    from quantum_trader.market.base import Bar, FundingRate

BAR_HEADER: Final = "ts,open,high,low,close,volume"
FUNDING_HEADER: Final = "ts,rate"
SOURCES: Final = ("binanceusdm", "sim")
SIM_PAGE_BARS: Final = 20_000
TIMEFRAMES: Final = ("1m", "5m", "15m", "1h", "4h", "1d")  # the replay's file timeframes (market.base.TIMEFRAME_MS)


def tf_ms(timeframe: str) -> int:
    from quantum_trader.market.base import TIMEFRAME_MS

    return TIMEFRAME_MS[timeframe]


class DownloadError(Exception):
    """A user-facing failure of ``qt data download`` (one line, exit 1)."""


# -- arguments ------------------------------------------------------------------------------------


def parse_when(text: str) -> int:
    """An ISO date or datetime (UTC unless it names an offset) or epoch milliseconds → epoch ms."""
    raw = text.strip()
    if raw.isdigit():
        return int(raw)
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise DownloadError(f"{text!r} is not a date (use 2025-01-31, 2025-01-31T12:00 or epoch ms)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    exchange: Literal["binanceusdm", "sim"]
    symbols: tuple[str, ...]
    timeframe: str
    since_ms: int
    until_ms: int
    out: Path
    seed: int = 7
    funding: bool = True


def request_from_args(args: argparse.Namespace, *, now_ms: int) -> DownloadRequest:
    symbols = tuple(dict.fromkeys(s.strip().upper() for s in args.symbols.split(",") if s.strip()))
    if not symbols:
        raise DownloadError("--symbols needs at least one symbol (e.g. BTCUSDT,ETHUSDT)")
    if args.timeframe not in TIMEFRAMES:
        raise DownloadError(f"--timeframe must be one of {' '.join(TIMEFRAMES)} (the replay's timeframes)")
    since = parse_when(args.since)
    until = min(parse_when(args.until), now_ms) if args.until else now_ms
    if since >= until:
        raise DownloadError(f"--since {iso(since)} is not before --until {iso(until)}")
    return DownloadRequest(
        exchange=args.exchange, symbols=symbols, timeframe=args.timeframe, since_ms=since, until_ms=until,
        out=Path(args.out), seed=args.seed, funding=not args.no_funding,
    )


# -- sources --------------------------------------------------------------------------------------


class Source(Protocol):
    """Where history comes from: pages of bars and of funding settlements."""

    name: str

    async def bars(self, symbol: str, timeframe: str, *, start_ms: int, end_ms: int) -> list[Bar]:
        """A page of bars opening in [start_ms, end_ms], oldest first (empty: nothing from start_ms on)."""
        ...

    async def funding(self, symbol: str, *, start_ms: int, end_ms: int) -> list[FundingRate] | None:
        """A page of funding settlements in [start_ms, end_ms], oldest first; None: no funding here."""
        ...

    async def close(self) -> None: ...


class BinanceSource:
    """Binance USDⓈ-M public market data through the adapter (ccxt, retries, weights, reason codes)."""

    name = "binanceusdm"

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange  # a BinanceExchange (data venue only is enough)

    async def bars(self, symbol: str, timeframe: str, *, start_ms: int, end_ms: int) -> list[Bar]:
        page: list[Bar] = await self.exchange.klines_between(symbol, timeframe, start_ms=start_ms, end_ms=end_ms)
        return page

    async def funding(self, symbol: str, *, start_ms: int, end_ms: int) -> list[FundingRate] | None:
        rates: list[FundingRate] = await self.exchange.funding_rates(symbol, since_ms=start_ms, until_ms=end_ms)
        return rates

    async def close(self) -> None:
        await self.exchange.close()


class SimSource:
    """The simulated market (a pure function of seed, symbol and time)."""

    name = "sim"

    def __init__(self, sim: Any, *, page_bars: int = SIM_PAGE_BARS) -> None:
        self.sim = sim  # a SimExchange whose clock stands at --until
        self.page_bars = page_bars

    async def bars(self, symbol: str, timeframe: str, *, start_ms: int, end_ms: int) -> list[Bar]:
        tf = tf_ms(timeframe)
        stop = min(end_ms + tf, start_ms + self.page_bars * tf)
        k = await asyncio.to_thread(self.sim.history, symbol, timeframe, start_ms=start_ms, end_ms=stop)
        cols = (k.open.tolist(), k.high.tolist(), k.low.tolist(), k.close.tolist(), k.volume.tolist())
        return [(int(t), *(c[i] for c in cols)) for i, t in enumerate(k.ts.tolist())]

    async def funding(self, symbol: str, *, start_ms: int, end_ms: int) -> list[FundingRate] | None:
        fetch = getattr(self.sim, "funding_rates", None)
        if fetch is None:
            return None
        rates: list[FundingRate] = await fetch(symbol, since_ms=start_ms, until_ms=end_ms)
        return rates

    async def close(self) -> None:
        await self.sim.close()


def build_source(request: DownloadRequest) -> Source:
    if request.exchange == "sim":
        from quantum_trader.core.clock import ManualClock
        from quantum_trader.core.profile import ExchangeSettings
        from quantum_trader.market.sim import SimExchange

        sim = SimExchange(ExchangeSettings(name="sim", seed=request.seed), clock=ManualClock(request.until_ms))
        return SimSource(sim)
    from quantum_trader.core.clock import WallClock
    from quantum_trader.market.binance import BinanceExchange, CcxtTransport, make_client

    data = CcxtTransport(make_client(testnet=False), venue="mainnet")
    return BinanceSource(BinanceExchange(data=data, trade=None, clock=WallClock(), no_trade_reason="paper_mode"))


# -- files ----------------------------------------------------------------------------------------


def resume_point(path: Path, header: str) -> int | None:
    """The ``ts`` of the last complete row of ``path`` (None: no file or no rows yet).

    A last line without its newline (a write cut short) is removed first; a file whose header is
    not ``header`` is refused rather than appended to.
    """
    if not path.exists():
        return None
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    lines = data.decode("utf-8-sig", errors="replace").splitlines()
    if not lines:
        return None
    if lines[0].strip() != header:
        raise DownloadError(f"{path}: header is {lines[0].strip()!r}, not {header!r}; move it or choose another --out")
    for line in reversed(lines[1:]):
        if line.strip():
            try:
                return int(line.split(",", 1)[0])
            except ValueError:
                raise DownloadError(f"{path}: last row {line[:60]!r} does not start with an epoch-ms ts") from None
    return None


def _append(path: Path, header: str, rows: Sequence[str]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8") as fh:
        if new:
            fh.write(header + "\n")
        fh.write("".join(r + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


def bar_row(bar: Bar) -> str:
    return ",".join([str(bar[0]), *(repr(float(x)) for x in bar[1:])])


# -- the download ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SymbolOutcome:
    symbol: str
    bars_path: Path
    bars_new: int
    first_ts: int | None
    last_ts: int | None
    funding_new: int | None  # None: the source has no funding
    error: str = ""


def closed_span(request: DownloadRequest) -> tuple[int, int]:
    """(first bar open, last bar open) of the closed bars the request covers."""
    tf = tf_ms(request.timeframe)
    first = math.ceil(request.since_ms / tf) * tf
    last = request.until_ms // tf * tf - tf
    return first, last


async def _download_bars(
    source: Source, request: DownloadRequest, symbol: str, *, progress: Progress, task: TaskID
) -> int:
    """Append the missing closed bars of one symbol; the number of new bars."""
    tf = tf_ms(request.timeframe)
    path = request.out / f"{symbol}_{request.timeframe}.csv"
    first, last = closed_span(request)
    done = resume_point(path, BAR_HEADER)
    start = first if done is None else max(first, done + tf)
    progress.update(task, total=max(1, (last - first) // tf + 1), completed=max(0, (start - first) // tf))
    new = 0
    while start <= last:
        page = [b for b in await source.bars(symbol, request.timeframe, start_ms=start, end_ms=last)
                if start <= b[0] <= last]
        if not page:
            break
        _append(path, BAR_HEADER, [bar_row(b) for b in page])
        new += len(page)
        start = page[-1][0] + tf
        progress.update(task, completed=(start - first) // tf)
    progress.update(task, completed=(last - first) // tf + 1)
    return new


async def _download_funding(source: Source, request: DownloadRequest, symbol: str) -> int | None:
    path = request.out / f"{symbol}_funding.csv"
    done = resume_point(path, FUNDING_HEADER)
    start = request.since_ms if done is None else max(request.since_ms, done + 1)
    new = 0
    while start <= request.until_ms:
        page = await source.funding(symbol, start_ms=start, end_ms=request.until_ms)
        if page is None:
            return None
        page = [f for f in page if start <= f.ts <= request.until_ms]
        if not page:
            break
        _append(path, FUNDING_HEADER, [f"{f.ts},{f.rate!r}" for f in page])
        new += len(page)
        start = page[-1].ts + 1
    return new


async def download(request: DownloadRequest, source: Source, *, show_progress: bool) -> list[SymbolOutcome]:
    """Download every symbol; a symbol that fails is reported with its reason, the others proceed."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from quantum_trader.market.base import ExchangeError

    request.out.mkdir(parents=True, exist_ok=True)
    outcomes: list[SymbolOutcome] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not show_progress) as progress:
        for symbol in request.symbols:
            task = progress.add_task(f"{symbol} {request.timeframe}", total=None)
            path = request.out / f"{symbol}_{request.timeframe}.csv"
            try:
                new = await _download_bars(source, request, symbol, progress=progress, task=task)
                funding = await _download_funding(source, request, symbol) if request.funding else None
            except ExchangeError as exc:
                outcomes.append(SymbolOutcome(symbol, path, 0, None, None, None, error=f"{exc.reason}: {exc}"))
                continue
            first_ts, last_ts = resume_first(path), resume_point(path, BAR_HEADER)
            outcomes.append(SymbolOutcome(symbol, path, new, first_ts, last_ts, funding))
    return outcomes


def resume_first(path: Path) -> int | None:
    """The ``ts`` of the first row of a replay file (None when it has none)."""
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as fh:
        fh.readline()
        row = fh.readline()
    return int(row.split(",", 1)[0]) if row.strip() else None


def summary_line(o: SymbolOutcome, *, timeframe: str) -> str:
    if o.last_ts is None or o.first_ts is None:
        return f"{o.symbol} {timeframe}: no bars in the span -> {o.bars_path}"
    funding = "" if o.funding_new is None else f", funding +{o.funding_new}"
    return (f"{o.symbol} {timeframe}: {iso(o.first_ts)} .. {iso(o.last_ts)} (+{o.bars_new} bars{funding})"
            f" -> {o.bars_path}")


def run(args: argparse.Namespace, *, now_ms: int | None = None, source: Source | None = None) -> int:
    """``qt data download``: 0 when every symbol downloaded, 1 when any failed (one line each)."""
    try:
        request = request_from_args(args, now_ms=now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000))
        src = source or build_source(request)
    except DownloadError as exc:
        print(f"qt data download: {exc}", file=sys.stderr)
        return 2

    async def main() -> list[SymbolOutcome]:
        try:
            return await download(request, src, show_progress=args.progress and sys.stderr.isatty())
        finally:
            await src.close()

    try:
        outcomes = asyncio.run(main())
    except DownloadError as exc:
        print(f"qt data download: {exc}", file=sys.stderr)
        return 1
    for o in outcomes:
        if o.error:
            print(f"qt data download: {o.symbol}: {o.error}", file=sys.stderr)
        else:
            print(summary_line(o, timeframe=request.timeframe))
    return 1 if any(o.error for o in outcomes) else 0


def register(sub: Any) -> None:
    """Add ``qt data download`` to the ``qt`` parser's subcommands."""
    data = sub.add_parser("data", help="market data: download history into the replay format")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    p = data_sub.add_parser(
        "download", help="OHLCV (and funding) of some symbols into DIR/<SYMBOL>_<tf>.csv, resumable",
        description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None,
    )
    p.add_argument("--exchange", choices=SOURCES, default="binanceusdm")
    p.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    p.add_argument("--timeframe", required=True, help=" | ".join(TIMEFRAMES))
    p.add_argument("--since", required=True, help="first bar: ISO date/datetime (UTC) or epoch ms")
    p.add_argument("--until", default=None, help="end (exclusive; default: now): ISO date/datetime or epoch ms")
    p.add_argument("--out", required=True, help="output folder (a replay exchange's data folder)")
    p.add_argument("--seed", type=int, default=7, help="the sim's seed (--exchange sim)")
    p.add_argument("--no-funding", action="store_true", help="bars only")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run, log_format=os.environ.get("QT_LOG_FORMAT", "text"))
