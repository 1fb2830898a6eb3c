"""``qt``: the command line of DESIGN §5 (contract).

Every command takes ``--profile`` (default: ``examples/paper.yaml`` semantics)
and honours ``REDIS_URL``; ``--json`` output is one JSON document on stdout; bad
input gets one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from quantum_trader import __version__
from quantum_trader.core import logs
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


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


# -- commands ----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.file)
    except ProfileError as exc:
        for issue in exc.issues:
            print(f"{args.file}: {issue}" if issue.path else str(issue), file=sys.stderr)
        return EXIT_FAIL
    spec = profile.spec
    print(
        f"{args.file}: valid TradingProfile {profile.name!r} (environment={spec.environment}, "
        f"exchange={spec.exchange.name}, mode={spec.mode}, strict_health={str(spec.health.strict).lower()})"
    )
    return EXIT_OK


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


def cmd_run(args: argparse.Namespace) -> int:
    from quantum_trader.runview import run_pipeline

    profile = _profile(args.profile)
    speed = args.speed if args.speed is not None else profile.spec.exchange.speed
    port: int | None = args.http_port or None
    if port is not None and not _port_free(port):
        print(f"qt run: port {port} is in use; serving no /metrics (use --http-port N)", file=sys.stderr)
        port = None
    return run_pipeline(
        profile,
        redis_url=os.environ.get("REDIS_URL"),
        clock=_clock(speed),
        duration_s=args.duration,
        http_port=port,
        view=not args.no_view and sys.stdout.isatty(),
        url_file=run_url_file(profile.name),
        log_format=args.log_format,
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


def cmd_universe(args: argparse.Namespace) -> int:
    from quantum_trader.universe.command import run

    profile = _profile(args.profile)
    clock = _data_clock(profile, args.at, {"spec.universe.timeframes": list(profile.spec.universe.timeframes)})
    return run(profile, as_json=args.json, redis_url=os.environ.get("REDIS_URL"), clock=clock)


def cmd_train(args: argparse.Namespace) -> int:
    from quantum_trader.ai.command import run

    profile = _profile(args.profile)
    # Only a Redis named explicitly: never a running pipeline found by profile name (another checkout's).
    clock = _data_clock(profile, args.at, {"spec.ai.timeframe": [profile.spec.ai.timeframe]})
    return run(profile, as_json=args.json, redis_url=args.redis_url or os.environ.get("REDIS_URL") or None,
               force=args.force, clock=clock)


def cmd_backtest(args: argparse.Namespace) -> int:
    from quantum_trader.backtest.command import run

    return run(args, profile=_profile(args.profile))


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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", "-p", help="TradingProfile YAML (default: examples/paper.yaml semantics)")
    common.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("QT_LOG_FORMAT", "text"))

    parser = argparse.ArgumentParser(
        prog="qt", description="Quantum Trader: universe → signals → intents → gate → execution, and why.",
    )
    parser.add_argument("--version", action="version", version=f"qt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", parents=[common], help="all six workers in one process (embedded Redis, sim)")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--speed", type=float, default=None, help="virtual clock speed (default: exchange.speed)")
    p.add_argument("--http-port", type=int, default=9100, help="/metrics, /healthz port (0: none)")
    p.add_argument("--no-view", action="store_true", help="log lines instead of the live funnel view")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("worker", parents=[common], help="one worker (what a container runs)")
    p.add_argument("name", help=" | ".join(WORKERS))
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("validate", parents=[common], help="check a profile offline")
    p.add_argument("file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("universe", parents=[common], help="one universe cycle: ranked table and funnel")
    p.add_argument("--json", action="store_true")
    p.add_argument("--at", help="replay: the cycle as of this time (ISO, UTC; default: the data's last bar)")
    p.set_defaults(func=cmd_universe)

    p = sub.add_parser("train", parents=[common], help="walk-forward training and out-of-sample report")
    p.add_argument("--json", action="store_true")
    p.add_argument("--redis-url", default=None,
                   help="registry to write into (default: $REDIS_URL; without either, report only)")
    p.add_argument("--force", action="store_true",
                   help="promote even if the quality gate refuses (recorded in the model card)")
    p.add_argument("--at", help="replay: train as of this time (ISO, UTC; default: the data's last bar)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("backtest", parents=[common], help="the same decisions over history; report, trades, plots")
    from quantum_trader.backtest.options import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("check", parents=[common], help="GO/NO-GO checklist over live Redis state")
    p.add_argument("--json", action="store_true")
    p.add_argument("--window", default=300.0, type=_duration_arg, metavar="DURATION",
                   help="look-back window, e.g. 90s, 5m, 1h30m (default 5m)")
    _clock_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("why", parents=[common], help="one symbol through every stage")
    p.add_argument("symbol")
    p.add_argument("--json", action="store_true")
    _clock_arg(p)
    p.set_defaults(func=cmd_why)

    from quantum_trader.market.download import register as register_data

    register_data(sub)  # qt data download

    p = sub.add_parser("operator", help="the kopf operator (arguments are passed through)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_operator, log_format=os.environ.get("QT_LOG_FORMAT", "text"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["operator"]:  # every option (even --help) belongs to the operator's own parser
        from quantum_operator.main import run as run_operator

        return run_operator(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    logs.configure(args.log_format)
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
    except ModuleNotFoundError as exc:
        print(f"qt {args.command}: not available in this build ({exc.name} is missing)", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:
        print(f"qt {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
