"""``qt operator``: run the TradingProfile operator.

    qt operator                         # $POD_NAMESPACE if set, else every namespace
    qt operator -n trading              # watch one namespace (repeatable)
    qt operator --all-namespaces        # cluster-wide (needs the ClusterRole variant of the RBAC)
    qt operator --dev-webhook 127.0.0.1:9443   # plain-HTTP admission server for local testing
    qt operator --release-finalizers -n trading --scale-down qt-quantum-trader-operator
                                        # helm's pre-delete hook: stop the operator, free every profile
    qt operator --webhook 0.0.0.0:9443 --webhook-cert tls.crt --webhook-key tls.key \
                --webhook-managed quantumtrader.io   # kopf keeps the ValidatingWebhookConfiguration

Configuration from the environment: QT_WORKER_IMAGE, QT_REDIS_SECRET, REDIS_URL,
QT_RECONCILE_INTERVAL, QT_HEARTBEAT_STALE_AFTER, QT_STARTUP_GRACE (see docs/operator.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import kopf
import prometheus_client
from quantum_trader.core import logs

from quantum_operator.config import config_from_env
from quantum_operator.handlers import FINALIZER, build_operator
from quantum_operator.kube import KubeError
from quantum_operator.release import HttpKube, release_finalizers, scale_down


def _addr(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt operator", description="Reconcile TradingProfiles into workers.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="namespace to watch (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    p.add_argument("--standalone", action="store_true", help="no peering (one operator replica)")
    p.add_argument(
        "--liveness",
        default="http://127.0.0.1:8080/healthz",
        help="liveness endpoint URL ('' to disable); containers: http://0.0.0.0:8080/healthz",
    )
    hook = p.add_mutually_exclusive_group()
    hook.add_argument(
        "--dev-webhook", type=_addr, metavar="HOST:PORT", help="plain-HTTP admission server (dev only)"
    )
    hook.add_argument("--webhook", type=_addr, metavar="HOST:PORT", help="HTTPS admission server")
    p.add_argument("--webhook-cert", default="", help="TLS certificate for --webhook (else self-signed)")
    p.add_argument("--webhook-key", default="", help="TLS key for --webhook")
    p.add_argument("--webhook-host", default=None, help="hostname the API server uses to reach the webhook")
    p.add_argument(
        "--webhook-managed",
        default="",
        metavar="NAME",
        help="let kopf create/patch the ValidatingWebhookConfiguration NAME (cluster RBAC)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("QT_OPERATOR_METRICS_PORT", "9090")),
        help="Prometheus /metrics of the operator (qt_operator_*); 0 disables",
    )
    p.add_argument(
        "--metrics-host",
        default=os.environ.get("QT_OPERATOR_METRICS_HOST", "127.0.0.1"),
        help="address /metrics listens on (default 127.0.0.1; containers: 0.0.0.0)",
    )
    p.add_argument(
        "--release-finalizers",
        action="store_true",
        help="remove the operator's finalizer from every profile of the namespaces, then exit (uninstall)",
    )
    p.add_argument(
        "--scale-down",
        default="",
        metavar="DEPLOYMENT",
        help="with --release-finalizers: first scale this operator Deployment to zero and wait",
    )
    p.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("QT_LOG_FORMAT", "text"))
    p.add_argument("-v", "--verbose", action="store_true")
    return p


async def _release(namespaces: list[str], *, scale: str) -> int:
    try:
        kube = HttpKube.in_cluster()
    except (KubeError, OSError) as exc:
        print(f"qt operator: --release-finalizers: {exc}", file=sys.stderr)
        return 1
    try:
        if scale:
            for namespace in namespaces:
                await scale_down(kube, namespace=namespace, deployment=scale)
        released = await release_finalizers(kube, namespaces=namespaces, finalizer=FINALIZER)
    except KubeError as exc:
        print(f"qt operator: --release-finalizers: {exc}", file=sys.stderr)
        return 1
    finally:
        await kube.close()
    print(f"released {len(released)} profile(s): {', '.join(f'{r.namespace}/{r.name}' for r in released)}")
    return 0


def admission_server(args: argparse.Namespace) -> kopf.WebhookServer | None:
    """The admission webhook server the options ask for: plain HTTP (``--dev-webhook``), HTTPS with the
    given certificate (``--webhook --webhook-cert --webhook-key``, what the chart runs), or none."""
    if args.dev_webhook:
        host, port = args.dev_webhook
        return kopf.WebhookServer(addr=host, port=port, insecure=True)
    if args.webhook:
        host, port = args.webhook
        return kopf.WebhookServer(
            addr=host,
            port=port,
            host=args.webhook_host,
            certfile=args.webhook_cert or None,
            pkeyfile=args.webhook_key or None,
        )
    return None


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_format, level=logging.DEBUG if args.verbose else logging.INFO)
    if args.release_finalizers:
        namespaces = list(args.namespace) or [os.environ.get("POD_NAMESPACE", "default")]
        return asyncio.run(_release(namespaces, scale=args.scale_down))
    try:
        config = config_from_env()
    except ValueError as exc:
        print(f"qt operator: {exc}", file=sys.stderr)
        return 2
    op = build_operator(config, admission=bool(args.dev_webhook or args.webhook))
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.metrics_host)
    server = admission_server(args)
    if server is not None:
        op.settings.admission.server = server
    if args.webhook_managed:
        op.settings.admission.managed = args.webhook_managed
    namespaces = list(args.namespace)
    if not namespaces and not args.all_namespaces and os.environ.get("POD_NAMESPACE"):
        namespaces = [os.environ["POD_NAMESPACE"]]  # in cluster: the operator's own namespace (Role RBAC)
    kopf.run(
        registry=op.registry,
        settings=op.settings,
        standalone=args.standalone,
        clusterwide=args.all_namespaces or not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness or None,
    )
    return 0


def main() -> None:  # `python -m quantum_operator.main`
    raise SystemExit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
