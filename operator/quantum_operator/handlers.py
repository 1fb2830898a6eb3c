"""Thin kopf handlers: everything real happens in :mod:`quantum_operator.reconcile`.

``build_operator`` returns a fresh registry + settings (no module-level
decorators), so ``qt operator``, the tests and the benchmark each get their
own operator instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import kopf
from quantum_trader.core.logs import EventLog

from quantum_operator import names
from quantum_operator.config import OperatorConfig
from quantum_operator.kube import KopfKube
from quantum_operator.observe import RedisPool
from quantum_operator.reconcile import Reconciler, Result, document_issues

RESOURCE: Final = (names.GROUP, names.VERSION, names.PLURAL)
FINALIZER: Final = f"{names.GROUP}/finalizer"
WEBHOOK_ID: Final = "validate-tradingprofile"
_log = EventLog(component="operator")


@dataclass(frozen=True, slots=True)
class Operator:
    registry: kopf.OperatorRegistry
    settings: kopf.OperatorSettings
    reconciler: Reconciler


def is_live(spec: Mapping[str, Any], **_: Any) -> bool:
    """Only production profiles get the delete handler (and thus a finalizer)."""
    return spec.get("environment") == "production"


def without_finalizer(registry: kopf.OperatorRegistry, handler_id: str) -> None:
    """kopf gives every timer a finalizer (to stop it before the object goes). The refresh timer
    needs none: a reconcile racing a deletion only writes children the garbage collector removes.
    Without this, paper profiles would carry a finalizer too, and hang deletion without an operator."""
    spawning = registry._spawning  # kopf has no public switch for timers
    spawning._handlers[:] = [
        dataclasses.replace(h, requires_finalizer=False) if h.id == handler_id else h
        for h in spawning._handlers
    ]


def status_patch(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` plus explicit nulls for map keys that vanished (merge patches never delete)."""
    out: dict[str, Any] = dict(new)
    for key, before in old.items():
        if key == "kopf" or key.startswith("_"):
            continue
        if key not in new:
            out[key] = None
        elif isinstance(before, Mapping) and isinstance(new[key], Mapping):
            out[key] = status_patch(new[key], before)
    return out


def post_events(body: kopf.Body, result: Result) -> None:
    for event in result.events:
        if event.type == "Warning":
            kopf.warn(body, reason=event.reason, message=event.message)
        else:
            kopf.info(body, reason=event.reason, message=event.message)


def configure_settings(settings: kopf.OperatorSettings) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO  # kopf.info/warn calls of ours are the user-facing events...
    settings.posting.loggers = False  # ...and kopf's own per-object log lines are not posted
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # a deleted profile waits for its timer to exit before the finalizer goes: re-check often
    settings.background.cancellation_polling = 1.0


def build_operator(
    config: OperatorConfig,
    *,
    admission: bool = False,
    login: bool = True,
    settings: kopf.OperatorSettings | None = None,
) -> Operator:
    """A fresh operator. ``admission``: also register the validating webhook handler (kopf then
    requires ``settings.admission.server``). ``login``: log in with the pod's service account, else
    the kubeconfig (tests pass False and add their own ``@kopf.on.login``)."""
    registry = kopf.OperatorRegistry()
    settings = settings or kopf.OperatorSettings()
    configure_settings(settings)
    reconciler = Reconciler(config=config, redis=RedisPool(timeout=config.redis_timeout))
    kube_slot: dict[str, KopfKube] = {}

    if login:

        @kopf.on.login(registry=registry, id="login")
        def login_fn(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        kube_slot["kube"] = KopfKube(settings=settings)
        _log.event(
            "OPERATOR_START",
            image=config.worker_image,
            redis_secret=config.redis_secret,
            interval=config.reconcile_interval,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await reconciler.redis.close()
        _log.event("OPERATOR_STOP")

    async def reconcile(body: kopf.Body, patch: kopf.Patch) -> None:
        if body.metadata.get("deletionTimestamp"):
            return
        result = await reconciler.run(
            body, kube=kube_slot["kube"], adopt=lambda objs: kopf.adopt(objs, owner=body)
        )
        patch.status.update(status_patch(result.status, body.get("status") or {}))
        post_events(body, result)

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile")
    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile")
    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile")
    async def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await reconcile(body, patch)

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        id="refresh",
        interval=config.reconcile_interval,
        initial_delay=config.reconcile_interval,
    )
    async def on_timer(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        """Abandoned when the operator stops (a level-triggered reconcile loses nothing)."""
        stopped: kopf.DaemonStopped = kwargs["stopped"]
        work = asyncio.ensure_future(reconcile(body, patch))
        stop = asyncio.ensure_future(stopped.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, stop):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if work.done() and not work.cancelled():
            work.result()  # re-raise a failure (kopf retries the timer)

    without_finalizer(registry, "refresh")

    @kopf.on.delete(*RESOURCE, registry=registry, id="stop-new-positions", when=is_live)
    async def on_delete_live(body: kopf.Body, **_: Any) -> None:
        """Live profile: tell the executor to open nothing new before the owner references clean up."""
        error = await reconciler.stop_new_positions(body, kube=kube_slot["kube"])
        name = body.metadata.name or ""
        if error:
            _log.warn("NO_NEW_POSITIONS_FAILED", profile=name, error=error)
            kopf.warn(body, reason="StopNewPositionsFailed", message=f"best effort, deleting anyway: {error}")
        else:
            _log.event("NO_NEW_POSITIONS_SET", profile=name)
            kopf.info(body, reason="StopNewPositions", message="control:no_new_positions set before deletion")

    if admission:

        @kopf.on.validate(*RESOURCE, registry=registry, id=WEBHOOK_ID, operations=["CREATE", "UPDATE"])
        def validate(body: kopf.Body, **kwargs: Any) -> None:
            """Same rules and messages as `qt validate` (one line per issue). An UPDATE that leaves the
            spec alone (metadata, finalizers, annotations) passes, so a profile that got in while the
            webhook was down can still be handled and deleted."""
            old = kwargs.get("old")
            if isinstance(old, Mapping) and old.get("spec") == body.get("spec"):
                return
            # the whole object: a missing spec, the name, and unknown fields (the CRD keeps them for us)
            _spec, error = document_issues(
                {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
            )
            if error:
                _log.event("ADMISSION_REJECTED", profile=body.metadata.name, issues=error.replace("\n", "; "))
                raise kopf.AdmissionError(error, code=422)

    return Operator(registry=registry, settings=settings, reconciler=reconciler)
