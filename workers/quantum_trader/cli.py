"""``qt``: the command line of DESIGN §5 (contract).

Every command takes ``--profile`` (default: ``examples/paper.yaml`` semantics)
and honours ``REDIS_URL``; ``--json`` output is one JSON document on stdout; bad
input gets one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from quantum_trader import __version__
from quantum_trader.core import diagnostics, logs
from quantum_trader.core.clock import Clock, VirtualClock, WallClock
from quantum_trader.core.keys import WORKERS
from quantum_trader.core.profile import (
    ProfileError,
    TradingProfile,
    default_profile,
    load_profile,
)

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
EXIT_USAGE: Final = 2


class CommandError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code attached."""

    def __init__(self, message: str, *, code: int = EXIT_FAIL) -> None:
        self.code = code
        super().__init__(message)


# -- shared plumbing ---------------------------------------------------------------------------


def _profile(path: str | None) -> TradingProfile:
    if path is None:
        default = Path("examples/paper.yaml")
        return load_profile(default) if default.exists() else default_profile("paper")
    return load_profile(path)


def run_url_file(profile: str) -> Path:
    """Where ``qt run`` leaves its embedded Redis URL so ``qt check``/``qt why`` can find it."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/quantum-trader-{os.getuid()}")
    return base / f"{profile}.redis-url"


def use_run_credentials(profile: TradingProfile, url: str) -> None:
    """A running ``qt run``'s embedded Redis enforces ACLs: read as the profile's user, whose password
    is in a 0600 file beside the server's socket (never on a command line). A password already given
    in the environment wins."""
    from quantum_trader.core.acl import username
    from quantum_trader.core.embedded import credentials_env_for

    if not (os.environ.get("REDIS_PASSWORD") or os.environ.get("REDIS_PASSWORD_FILE")):
        os.environ.update(credentials_env_for(url, username(profile.keys)))


def resolve_redis_url(profile: TradingProfile, *, required: bool = True) -> str | None:
    """``REDIS_URL``, else the URL of a running ``qt run`` for this profile."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    marker = run_url_file(profile.name)
    if marker.exists():
        candidate = marker.read_text().strip()
        sock = candidate.removeprefix("unix://")
        if not candidate.startswith("unix://") or Path(sock).exists():
            use_run_credentials(profile, candidate)
            return candidate
    if required:
        raise CommandError(
            f"no Redis to read: set REDIS_URL, or start `qt run --profile ...` for profile {profile.name!r} first"
        )
    return None


def _clock(speed: float) -> Clock:
    if speed == 1.0:
        return WallClock()
    return VirtualClock(start_ms=WallClock().now_ms(), speed=speed)


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    diagnostics.install_task_dumps(loop)  # kill -USR2: every task's stack (a worker that seems stuck)


# -- commands ----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from quantum_trader.inspect.validate import validate_file

    reports = [r for f in args.files for r in validate_file(f)]
    valid = all(r.valid for r in reports)
    if args.json:
        print(json.dumps({"valid": valid, "documents": [r.to_json() for r in reports]}, separators=(",", ":")))
        return EXIT_OK if valid else EXIT_FAIL
    for r in reports:
        for line in r.lines():
            print(line, file=sys.stdout if r.valid else sys.stderr)
    return EXIT_OK if valid else EXIT_FAIL


def cmd_worker(args: argparse.Namespace) -> int:
    profile = _profile(args.profile)
    if args.name not in WORKERS:
        raise CommandError(f"unknown worker {args.name!r}; choose one of: {', '.join(WORKERS)}", code=EXIT_USAGE)
    url = os.environ.get("REDIS_URL")
    if not url:
        raise CommandError("REDIS_URL is not set: a worker needs the profile's Redis (qt run embeds one)")
    port = int(os.environ.get("QT_HTTP_PORT", args.http_port))
    from quantum_trader.core.service import run_workers

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop(stop)
        await run_workers(
            [args.name], profile=profile, redis_url=url, clock=_clock(args.speed), stop=stop,
            http_port=port if port > 0 else None, restart=False,
        )

    try:
        asyncio.run(main())
    except Exception as exc:
        raise CommandError(f"worker {args.name} stopped: {type(exc).__name__}: {exc}") from None
    return EXIT_OK


def _replay_span(profile: TradingProfile, start: str | None, end: str | None) -> tuple[int, int] | None:
    """``qt run --start/--end``: the span of a replay exchange's data to replay (epoch ms), or None."""
    if start is None and end is None:
        return None
    name = profile.spec.exchange.name
    if name != "replay":
        raise CommandError(f"--start/--end replay recorded data and need a replay exchange (spec.exchange.name: "
                           f"replay; this profile's is {name}); for a past span of the {name} market use "
                           "`qt backtest --start/--end`", code=EXIT_USAGE)
    from quantum_trader.backtest.command import BacktestError, parse_time, warmup_ms
    from quantum_trader.backtest.data import replay_range
    from quantum_trader.backtest.report import _iso
    from quantum_trader.market.base import ExchangeError

    try:
        first, last = replay_range(profile.spec.exchange)
        t0 = parse_time(start, flag="--start") if start else min(first + warmup_ms(profile), last)
        t1 = min(parse_time(end, flag="--end") if end else last, last)
    except BacktestError as exc:
        raise CommandError(str(exc), code=EXIT_USAGE) from None
    except ExchangeError as exc:
        raise CommandError(str(exc)) from None
    if t0 >= t1 or t1 <= first:
        raise CommandError(f"nothing to replay: {_iso(t0)} .. {_iso(t1)} holds no replay data (the data runs "
                           f"{_iso(first)} .. {_iso(last)})")
    return t0, t1


def cmd_run(args: argparse.Namespace) -> int:
    from quantum_trader.runstate import data_dir_for
    from quantum_trader.runview import run_pipeline

    profile = _profile(args.profile)
    speed = args.speed if args.speed is not None else profile.spec.exchange.speed
    redis_url = os.environ.get("REDIS_URL")
    if redis_url and (args.fresh or args.data_dir):
        raise CommandError(f"{'--fresh' if args.fresh else '--data-dir'} applies to the embedded Redis; REDIS_URL is "
                           "set, so the state lives in that Redis (unset REDIS_URL, or clear it there)",
                           code=EXIT_USAGE)
    span = _replay_span(profile, args.start, args.end)
    if speed <= 0:
        raise CommandError("--speed must be > 0", code=EXIT_USAGE)
    clock = VirtualClock(start_ms=span[0], speed=speed) if span else _clock(speed)
    port: int | None = args.http_port or None
    if port is not None and not _port_free(port, args.host):
        print(f"qt run: port {port} is in use; serving no /metrics (use --http-port N)", file=sys.stderr)
        port = None
    return run_pipeline(
        profile,
        redis_url=redis_url,
        clock=clock,
        duration_s=args.duration,
        http_port=port,
        view=not args.no_view and sys.stdout.isatty(),
        url_file=run_url_file(profile.name),
        log_format=args.log_format,
        http_host=args.host,
        data_dir=None if redis_url else data_dir_for(profile.name, explicit=args.data_dir),
        fresh=args.fresh,
        span=span,
    )


def _data_clock(profile: TradingProfile, at: str | None, needs: dict[str, list[str]]) -> Clock | None:
    """On a replay exchange: the data's clock (last bar close, or ``--at``); else None (wall clock)."""
    if profile.spec.exchange.name != "replay":
        if at is not None:
            raise CommandError("--at needs a replay exchange (spec.exchange.name: replay)", code=EXIT_USAGE)
        return None
    from quantum_trader.market.base import ExchangeError
    from quantum_trader.market.replay import replay_clock

    try:
        return replay_clock(profile.spec.exchange, needs=needs, at=at)
    except ExchangeError as exc:
        raise CommandError(str(exc)) from None


def _replay_history_check(profile: TradingProfile, now_ms: int) -> None:
    """Replay: refuse up front, naming the setting, when ai.historyBars cannot give enough training rows."""
    from quantum_trader.backtest.data import load_replay
    from quantum_trader.backtest.history import history_shortfall
    from quantum_trader.market.base import TIMEFRAME_MS

    data = load_replay(profile.spec.exchange)
    tf = profile.spec.ai.timeframe
    counts = [data.get(s, tf).closed(now_ms, TIMEFRAME_MS[tf]) for s in data.markets]
    why = history_shortfall(profile.spec, symbols=len(counts), bars_available=max(counts, default=0))
    if why is not None:
        raise CommandError(f"cannot train: {why}")


def cmd_universe(args: argparse.Namespace) -> int:
    from quantum_trader.universe.command import run

    profile = _profile(args.profile)
    clock = _data_clock(profile, args.at, {"spec.universe.timeframes": list(profile.spec.universe.timeframes)})
    return run(profile, as_json=args.json, redis_url=os.environ.get("REDIS_URL"), clock=clock)


def cmd_train(args: argparse.Namespace) -> int:
    from quantum_trader.ai.command import run

    profile = _profile(args.profile)
    # Only a Redis named explicitly: never a running pipeline found by profile name without being asked.
    url = args.redis_url or os.environ.get("REDIS_URL") or None
    if args.to_run:
        marker = run_url_file(profile.name)
        if args.redis_url or not marker.exists():
            raise CommandError("--to-run takes no --redis-url" if args.redis_url else
                               f"--to-run: no running `qt run` of profile {profile.name!r} ({marker} is missing)",
                               code=EXIT_USAGE)
        url = marker.read_text().strip()
        use_run_credentials(profile, url)
    clock = _data_clock(profile, args.at, {"spec.ai.timeframe": [profile.spec.ai.timeframe]})
    if clock is not None:
        _replay_history_check(profile, clock.now_ms())
    return run(profile, as_json=args.json, redis_url=url, force=args.force, clock=clock)


def cmd_backtest(args: argparse.Namespace) -> int:
    from quantum_trader.backtest.command import run

    profile = _profile(args.profile)
    url = resolve_redis_url(profile, required=False) if args.model == "promoted" else None
    return run(args, profile=profile, redis_url=url)


def cmd_check(args: argparse.Namespace) -> int:
    from quantum_trader.inspect.check import run

    profile = _profile(args.profile)
    url = resolve_redis_url(profile)
    return run(profile, as_json=args.json, window_s=args.window, redis_url=str(url), clock=args.clock)


def cmd_why(args: argparse.Namespace) -> int:
    from quantum_trader.inspect.why import run

    profile = _profile(args.profile)
    url = resolve_redis_url(profile)
    from quantum_trader.inspect.ticks import tick_sizes

    symbol = args.symbol.strip().upper()
    return run(profile, symbol, as_json=args.json, redis_url=str(url), clock=args.clock,
               tick=tick_sizes(profile).get(symbol))


def cmd_operator(args: argparse.Namespace) -> int:
    from quantum_operator.main import run

    return run(list(args.rest))


def _ops_target(args: argparse.Namespace) -> tuple[TradingProfile, str]:
    profile = _profile(args.profile)
    return profile, str(resolve_redis_url(profile))


@contextlib.contextmanager
def _read_target(args: argparse.Namespace) -> Iterator[tuple[TradingProfile, str]]:
    """The profile's Redis for a command that reads (positions, trades, risk, audit): ``REDIS_URL`` or the
    running ``qt run``, else the state a stopped ``qt run`` kept in the profile's data folder."""
    from quantum_trader import runstate
    from quantum_trader.core.embedded import EmbeddedRedisError

    profile = _profile(args.profile)
    url = resolve_redis_url(profile, required=False)
    if url:
        yield profile, url
        return
    try:
        with runstate.kept_redis(profile.name) as kept:
            if kept is None:
                resolve_redis_url(profile)  # raises the usual "no Redis to read" line
            yield profile, str(kept)
    except (runstate.DataDirBusy, EmbeddedRedisError) as exc:
        raise CommandError(str(exc)) from None


def cmd_pause(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    profile, url = _ops_target(args)
    return command.pause(profile, url, reason=args.reason, as_json=args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    profile, url = _ops_target(args)
    return command.resume(profile, url, as_json=args.json)


def cmd_flatten(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    profile, url = _ops_target(args)
    return command.flatten(profile, url, symbol=args.symbol, as_json=args.json)


def cmd_positions(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    with _read_target(args) as (profile, url):
        return command.positions(profile, url, as_json=args.json)


def cmd_trades(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    if args.limit < 1:
        raise CommandError("--limit must be at least 1", code=EXIT_USAGE)
    with _read_target(args) as (profile, url):
        return command.trades(profile, url, limit=args.limit, symbol=args.symbol, as_csv=args.csv,
                              as_json=args.json)


def cmd_risk(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    if args.action == "reset":
        profile, url = _ops_target(args)
        return command.risk_reset(profile, url, as_json=args.json)
    with _read_target(args) as (profile, url):
        return command.risk_show(profile, url, as_json=args.json)


def cmd_audit(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    with _read_target(args) as (profile, url):
        return command.audit(profile, url, limit=max(1, args.limit), as_json=args.json)


def cmd_api(args: argparse.Namespace) -> int:
    from quantum_trader.ops import command

    profile, url = _ops_target(args)
    return command.serve_api(profile, url, host=args.host, port=args.port)


def cmd_completion(args: argparse.Namespace) -> int:
    from quantum_trader.completion import script

    print(script(build_parser(), shell=args.shell))
    return EXIT_OK


def _symbol_arg(text: str) -> str:
    symbol = text.strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{2,40}", symbol):
        raise argparse.ArgumentTypeError(f"expected a symbol such as BTCUSDT (got {text!r})")
    return symbol


# -- parser ------------------------------------------------------------------------------------


def _duration_arg(text: str) -> float:
    """argparse type for a duration: says what it expected, no exception name."""
    from quantum_trader.inspect.fmt import DurationError, parse_duration_arg

    try:
        seconds = parse_duration_arg(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration such as 90s, 5m or 1h30m (got {text!r})")
    return seconds


def _clock_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clock", choices=("wall", "sim"), default="wall",
                   help="measure windows and ages in wall time (default) or in the pipeline's simulated time")


def _command(
    sub: Any, name: str, *, summary: str, description: str, examples: Sequence[str], exits: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """A subcommand whose --help has a description, examples and its exit codes."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + f"\n\nexit codes:\n  {exits}"
    p: argparse.ArgumentParser = sub.add_parser(
        name, parents=list(parents), help=summary, description=textwrap.fill(description, 100), epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def _document(sub: Any, name: str, *, examples: Sequence[str], exits: str, subcommand: str = "") -> None:
    """Give a command registered by its own module (e.g. ``qt data``) examples and exit codes in --help."""
    parser: argparse.ArgumentParser | None = sub.choices.get(name)
    targets = [parser]
    if parser is not None and subcommand:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and subcommand in action.choices:
                targets.append(action.choices[subcommand])
    for p in targets:
        if p is not None and not p.epilog:
            p.formatter_class = argparse.RawDescriptionHelpFormatter
            p.epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + f"\n\nexit codes:\n  {exits}"
            p.description = p.description or next(
                (a.help for a in sub._choices_actions if a.dest == name), None)


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")


def build_parser() -> argparse.ArgumentParser:
    """qt's parser: the root, then each group of subcommands in the order ``qt --help`` lists them."""
    parents = [_common_options()]
    parser = _root_parser()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub, parents)
    _add_worker(sub, parents)
    _add_validate(sub, parents)
    _add_universe_train(sub, parents)
    _add_backtest(sub, parents)
    _add_inspect(sub, parents)
    _add_data(sub)
    _add_ops(sub, parents)
    _add_tools(sub)
    return parser


def _common_options() -> argparse.ArgumentParser:
    """The options every command takes (--profile, --log-format), as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", "-p", metavar="FILE",
                        help="TradingProfile YAML (default: examples/paper.yaml, or its settings built in)")
    common.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("QT_LOG_FORMAT", "text"),
                        help="one-line EVENT key=value logs (text) or JSON lines (default: $QT_LOG_FORMAT or text)")
    return common


def _root_parser() -> argparse.ArgumentParser:
    """``qt`` itself: description, epilog and --version (the subcommands are added by the caller)."""
    parser = argparse.ArgumentParser(
        prog="qt", description="Quantum Trader: universe → signals → intents → gate → execution, and why.",
        epilog="Every command takes --profile and honours REDIS_URL; `qt COMMAND --help` shows examples and exit "
               "codes.\nShell completion: eval \"$(qt completion bash)\"  (or zsh).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qt {__version__}")
    return parser


def _add_run(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt run``: the whole pipeline in one process."""
    p = _command(sub, "run", parents=parents, summary="all six workers in one process, with a live view",
                 description="Run universe, ai, router, snapshot, gate and executor in one process: on an "
                             "embedded Redis unless REDIS_URL is set, on the simulated exchange unless the profile "
                             "names another. A live view shows the funnel; Ctrl-C drains and stops. The same port "
                             "serves /metrics, /healthz and the operations API (/docs).",
                 examples=["qt run", "qt run --speed 60 --duration 300", "qt run --no-view --http-port 0",
                           "qt run --fresh", "qt run --profile replay.yaml --start 2024-03-01 --end 2024-03-02 --speed 600"],
                 exits="0 clean stop (Ctrl-C, SIGTERM, --duration, the end of --end)   1 could not start (no Redis "
                       "server, the data folder in use, nothing to replay)   2 bad arguments")
    p.add_argument("--duration", type=_duration_arg, default=None, metavar="DURATION",
                   help="stop after this long (wall time), e.g. 90, 5m, 1h30m")
    p.add_argument("--speed", type=float, default=None, metavar="X",
                   help="simulated market speed, X times wall time (default: spec.exchange.speed)")
    p.add_argument("--http-port", type=int, default=9100, metavar="PORT",
                   help="/metrics, /healthz and the API on this port (0: none; default 9100)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="listen address of /metrics, /healthz and the API (default 127.0.0.1: this machine only; "
                        "0.0.0.0 for every interface)")
    p.add_argument("--no-view", action="store_true", help="log lines on stderr instead of the live view")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where the embedded Redis keeps the profile's state between runs (default: "
                        "$QT_DATA_DIR/<profile>, else ./.qt/<profile>)")
    p.add_argument("--fresh", action="store_true",
                   help="start clean: remove the state kept in the data folder (positions, trades, models) first")
    p.add_argument("--start", default=None, metavar="T",
                   help="replay exchange: replay from T (ISO date/datetime UTC or epoch ms; default: the data's "
                        "start plus the warm-up the profile needs)")
    p.add_argument("--end", default=None, metavar="T",
                   help="replay exchange: stop when the replay reaches T (default: the data's last bar)")
    p.set_defaults(func=cmd_run)


def _add_worker(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt worker NAME``: one worker, as a container runs it."""
    p = _command(sub, "worker", parents=parents, summary="one worker (what a container runs)",
                 description="Run one worker against the profile's Redis (REDIS_URL), with /healthz, /readyz and "
                             "/metrics on --http-port (or $QT_HTTP_PORT).",
                 examples=["REDIS_URL=redis://redis:6379/0 qt worker gate --profile paper.yaml"],
                 exits="0 stopped on SIGTERM   1 REDIS_URL missing or the worker failed   2 unknown worker")
    name = p.add_argument("name", metavar="NAME", help=" | ".join(WORKERS))
    name.completions = WORKERS  # type: ignore[attr-defined]  # offered by `qt completion`
    p.add_argument("--http-port", type=int, default=8000, metavar="PORT", help="default 8000; 0: none")
    p.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)


def _add_validate(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt validate``: profile files checked offline."""
    p = _command(sub, "validate", parents=parents, summary="check profile files offline",
                 description="Check TradingProfile files with every rule the CRD, the webhook and the workers "
                             "apply: one line per problem with its path. A file may hold several documents "
                             "(---); each is checked.",
                 examples=["qt validate examples/paper.yaml", "qt validate profiles.yaml --json"],
                 exits="0 every document valid   1 a problem found (or a file unreadable)")
    p.add_argument("files", nargs="+", metavar="FILE")
    _json_arg(p)
    p.set_defaults(func=cmd_validate)


def _add_universe_train(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt universe`` and ``qt train``: one universe cycle, walk-forward training."""
    p = _command(sub, "universe", parents=parents, summary="one universe cycle: ranked table and funnel",
                 description="Run one universe cycle against the profile's exchange and print the ranked table, "
                             "the funnel per stage and the reason each symbol was dropped.",
                 examples=["qt universe", "qt universe --json | jq .funnel"],
                 exits="0 a universe was built   1 the cycle failed closed (nothing would be published)")
    _json_arg(p)
    p.add_argument("--at", help="replay: the cycle as of this time (ISO, UTC; default: the data's last bar)")
    p.set_defaults(func=cmd_universe)

    p = _command(sub, "train", parents=parents, summary="walk-forward training and out-of-sample report",
                 description="Train LightGBM models walk-forward (purged, embargoed), report out-of-sample "
                             "metrics, and promote a model that passes the quality gate into the running "
                             "pipeline's Redis (the ai worker hot-reloads it).",
                 examples=["qt train", "qt train --json", "qt train --redis-url redis://localhost:6379/0"],
                 exits="0 trained (promoted or not: the report says which)   1 failed")
    _json_arg(p)
    p.add_argument("--redis-url", default=None,
                   help="registry to write into (default: $REDIS_URL; without either, report only)")
    p.add_argument("--to-run", action="store_true",
                   help="write into the Redis of this profile's running `qt run` on this machine (named in the report)")
    p.add_argument("--force", action="store_true",
                   help="promote even if the quality gate refuses (recorded in the model card)")
    p.add_argument("--at", help="replay: train as of this time (ISO, UTC; default: the data's last bar)")
    p.set_defaults(func=cmd_train)


def _add_backtest(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt backtest``: its options live in :mod:`quantum_trader.backtest.options`."""
    p = _command(sub, "backtest", parents=parents, summary="the same decisions over history; report, trades, plots",
                 description="Run the pipeline's decisions over history (replay files or the sim) under a data "
                             "clock, walk-forward and after every cost: a summary, report.json, trades.csv, plots "
                             "and report.html.",
                 examples=["qt backtest --out out/", "qt backtest --start 2025-10-01 --end 2025-11-01 --json"],
                 exits="0 done   1 bad input (one line on stderr)   2 bad arguments")
    from quantum_trader.backtest.options import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_backtest)


def _add_inspect(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt check`` and ``qt why``: read-only views over the live Redis."""
    p = _command(sub, "check", parents=parents, summary="GO/NO-GO checklist over live Redis state",
                 description="The GO/NO-GO checklist over the profile's live Redis: gate reasons, snapshot misses, "
                             "EXECUTE and fills, tradable vs intent symbols, model, universe, allowlist, "
                             "heartbeats, trading enabled. The window is wall time unless --clock sim.",
                 examples=["qt check", "qt check --window 1h30m", "qt check --clock sim --json"],
                 exits="0 GO   1 NO-GO (or Redis unreadable)   2 bad arguments")
    _json_arg(p)
    p.add_argument("--window", default=300.0, type=_duration_arg, metavar="DURATION",
                   help="look-back window, e.g. 90s, 5m, 1h30m (default 5m)")
    _clock_arg(p)
    p.set_defaults(func=cmd_check)

    p = _command(sub, "why", parents=parents, summary="one symbol through every stage",
                 description="Why was (or wasn't) SYMBOL traded? Universe rank or veto, last signal, router fate, "
                             "snapshot, gate reason, execution and position, with a one-line verdict on top.",
                 examples=["qt why GALAUSDT", "qt why btcusdt --json", "qt why ETHUSDT --clock sim"],
                 exits="0 explained   1 not a symbol, or Redis unreadable")
    p.add_argument("symbol", metavar="SYMBOL")
    _json_arg(p)
    _clock_arg(p)
    p.set_defaults(func=cmd_why)


def _add_data(sub: Any) -> None:
    """``qt data download``: registered by its own module, documented here."""
    from quantum_trader.market.download import register as register_data

    register_data(sub)  # qt data download
    _document(sub, "data", subcommand="download", examples=[
        "qt data download --exchange sim --symbols BTCUSDT,ETHUSDT --timeframe 15m --since 2025-10-01 --out data/",
        "qt data download --symbols BTCUSDT --timeframe 1h --since 2025-01-01 --until 2025-07-01 --out data/"],
        exits="0 every symbol downloaded   1 a symbol failed (the others are kept; rerun resumes)   "
              "2 bad arguments")


_OPS_EXITS: Final = "0 done   1 refused (the reason code is printed) or Redis unreadable   2 bad arguments"


def _add_ops(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """The operations commands: each against the profile's Redis, each leaving an audit entry."""
    _add_pause_resume_flatten(sub, parents)
    _add_positions_trades(sub, parents)
    _add_risk_audit(sub, parents)
    _add_api(sub, parents)


def _add_pause_resume_flatten(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt pause``, ``qt resume`` and ``qt flatten``: the operator's controls."""
    p = _command(sub, "pause", parents=parents, summary="pause trading (router silent, gate blocks 'paused')",
                 description="Pause the profile: the router publishes nothing and the gate blocks every new "
                             "position with reason 'paused'. Exits still run (stop loss, take profit, time exit, "
                             "qt flatten). Audited.",
                 examples=['qt pause --reason "exchange maintenance"'], exits=_OPS_EXITS)
    p.add_argument("--reason", default="", help="why; recorded in the audit entry")
    _json_arg(p)
    p.set_defaults(func=cmd_pause)

    p = _command(sub, "resume", parents=parents, summary="resume a pause set by qt pause or the API",
                 description="Lift a pause set by `qt pause` or the API. A pause from the profile itself "
                             "(spec.paused: true, set by the operator) is refused: change the profile. Audited.",
                 examples=["qt resume"], exits=_OPS_EXITS)
    _json_arg(p)
    p.set_defaults(func=cmd_resume)

    p = _command(sub, "flatten", parents=parents, summary="close one position, or all",
                 description="Close SYMBOL's open position (or every open position) with reduce-only intents "
                             "that go through the gate and the executor like any exit: never blocked by the kill "
                             "score or a cooldown, executed exactly once. Refused while paused. Audited.",
                 examples=["qt flatten GALAUSDT", "qt flatten"], exits=_OPS_EXITS)
    p.add_argument("symbol", nargs="?", metavar="SYMBOL", type=_symbol_arg, help="default: every open position")
    _json_arg(p)
    p.set_defaults(func=cmd_flatten)


def _add_positions_trades(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt positions`` and ``qt trades``: what is open, what was done."""
    p = _command(sub, "positions", parents=parents, summary="open positions with unrealised PnL",
                 description="Open positions from state:positions, marked at the snapshot price: unrealised PnL, "
                             "notional, stop loss, take profit and how long each has been open. Audited.",
                 examples=["qt positions", "qt positions --json"], exits=_OPS_EXITS)
    _json_arg(p)
    p.set_defaults(func=cmd_positions)

    p = _command(sub, "trades", parents=parents, summary="recent trades with realised PnL; --csv to export",
                 description="Trades newest first: every position OPENED, or CLOSED with realised PnL and the close "
                             "reason (stop loss and take profit included), with its fill's price, fee and order. "
                             "Audited.",
                 examples=["qt trades", "qt trades --symbol BTCUSDT --limit 10", "qt trades --csv --limit 10000 > trades.csv"],
                 exits=_OPS_EXITS)
    p.add_argument("--limit", type=int, default=50, metavar="N", help="newest N trades (default 50)")
    p.add_argument("--symbol", type=_symbol_arg, metavar="SYMBOL", help="only this symbol")
    fmt_group = p.add_mutually_exclusive_group()
    fmt_group.add_argument("--csv", action="store_true", help="CSV with a header on stdout")
    fmt_group.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=cmd_trades)


def _add_risk_audit(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt risk show|reset`` and ``qt audit``."""
    p = _command(sub, "risk", parents=parents, summary="show the kill score, or reset it after review",
                 description="`qt risk show`: the kill score and its inputs (drawdown, loss streak, error rate). "
                             "`qt risk reset`: after review, measure the drawdown from now (equity peak := realised "
                             "total) and clear the loss streak and error rate. The reset is audited.",
                 examples=["qt risk show", "qt risk reset"], exits=_OPS_EXITS)
    p.add_argument("action", choices=("show", "reset"), metavar="show|reset")
    _json_arg(p)
    p.set_defaults(func=cmd_risk)

    p = _command(sub, "audit", parents=parents, summary="the newest operations and who did them",
                 description="The newest entries of stream:ops.audit: every operation from qt or the API, done or "
                             "refused, with the actor and the reason code.",
                 examples=["qt audit", "qt audit --limit 100 --json"], exits=_OPS_EXITS)
    p.add_argument("--limit", type=int, default=20, metavar="N", help="newest N entries (default 20)")
    _json_arg(p)
    p.set_defaults(func=cmd_audit)


def _add_api(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """``qt api``: the operations REST API alone."""
    p = _command(sub, "api", parents=parents, summary="serve the operations REST API alone",
                 description="Serve the operations API (the commands above over HTTP, OpenAPI page at /docs) for "
                             "the profile's Redis. Every /api/v1 endpoint needs `Authorization: Bearer $QT_API_TOKEN`; "
                             "without QT_API_TOKEN they all answer 503. `qt run` serves the same API on its port.",
                 examples=["QT_API_TOKEN=s3cret qt api --port 8080"],
                 exits="0 stopped on SIGTERM/Ctrl-C   1 no Redis")
    p.add_argument("--host", default="0.0.0.0", help="default 0.0.0.0")
    p.add_argument("--port", type=int, default=8080, help="default 8080")
    p.set_defaults(func=cmd_api)



def _add_tools(sub: Any) -> None:
    """``qt completion`` and ``qt operator`` (the latter's options belong to the operator)."""
    p = _command(sub, "completion", summary="print a shell completion script",
                 description="Print the completion script for bash or zsh. Load it in the current shell, or add "
                             "the line to ~/.bashrc / ~/.zshrc.",
                 examples=['eval "$(qt completion bash)"', 'eval "$(qt completion zsh)"'],
                 exits="0 printed   2 unknown shell")
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(func=cmd_completion, log_format="text")

    p = sub.add_parser("operator", help="the kopf operator (qt operator --help: its own options)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_operator, log_format=os.environ.get("QT_LOG_FORMAT", "text"))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["operator"]:  # every option (even --help) belongs to the operator's own parser
        from quantum_operator.main import run as run_operator

        return run_operator(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    logs.configure(args.log_format)
    if args.command in ("run", "worker"):
        diagnostics.install_thread_dumps()  # kill -USR1: every thread's stack, even with the loop blocked
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ProfileError as exc:
        for issue in exc.issues:
            print(f"{exc.source}: {issue}" if exc.source and issue.path else str(issue), file=sys.stderr)
        return EXIT_FAIL
    except CommandError as exc:
        print(f"qt {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `qt trades --csv | head`: the reader has all it wanted
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return EXIT_OK
    except ModuleNotFoundError as exc:
        print(f"qt {args.command}: not available in this build ({exc.name} is missing)", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:
        print(f"qt {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
