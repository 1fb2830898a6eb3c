"""kmock made good enough for kopf (see ../shared/notes/kubernetes-testing.md) + the operator in a thread.

* resourceVersion / uid / creationTimestamp / generation are assigned like a real API server;
* watches replay only objects newer than the list's resourceVersion;
* the operator runs for real (kopf.run) in its own thread and event loop, logged in to kmock;
* every request is recorded as the RBAC verb it needs (``Emulator.calls``) and, once ``enforce()`` is
  given the chart's Role and ClusterRole, refused with 403 when they do not grant it, including the
  OwnerReferencesPermissionEnforcement admission plugin's rule (``blockOwnerDeletion`` on a child
  needs ``update`` on the owner's ``finalizers`` subresource).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import itertools
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiohttp.web
import kmock
import kopf
from kmock._internal import enums, rendering
from quantum_operator import names, rbac
from quantum_operator.config import OperatorConfig
from quantum_operator.handlers import Operator, build_operator

TP = kmock.resource(names.GROUP, names.VERSION, names.PLURAL)
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
SERVICES = kmock.resource("", "v1", "services")
CRONJOBS = kmock.resource("batch", "v1", "cronjobs")
SECRETS = kmock.resource("", "v1", "secrets")
EVENTS = kmock.resource("", "v1", "events")
REQUEST_HISTORY = 20
OPERATOR_TOKEN = "operator-service-account"  # the operator logs in with it; the tests' own client is admin
_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update"}


@dataclass(frozen=True, order=True)
class Call:
    """One permission a request needed: ``verb`` on ``group``/``resource`` (``plural[/sub]``)."""

    verb: str
    group: str
    resource: str
    namespaced: bool

    def __str__(self) -> str:
        scope = "namespaced" if self.namespaced else "cluster"
        return f"{self.verb} {self.group or 'core'}/{self.resource} ({scope})"


def rbac_verb(request: rendering.Request) -> str:
    """The RBAC verb the API server's authorizer derives from a request."""
    method = str(request.method.value if request.method is not None else "").upper()
    if method == "GET":
        if request.action == enums.action.WATCH or request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    if method == "DELETE":
        return "delete" if request.name else "deletecollection"
    return _VERBS.get(method, method.lower())


class Emulator(kmock.KubernetesEmulator):
    """KubernetesEmulator + server-assigned metadata + resourceVersion-aware watches."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.calls = set()
        self.denied = []
        self._rv = itertools.count(1)
        self._last_rv = 0
        self.resources.load_bundled()
        self.resources[TP] = kmock.ResourceInfo(
            kind=names.KIND,
            singular=names.SINGULAR,
            namespaced=True,
            shortnames=set(names.SHORT_NAMES),
            verbs={"list", "watch", "get", "patch", "create", "update", "delete"},
            subresources={"status"},
        )

    calls: set[Call]
    denied: list[Call]

    def enforce(self, role: list[dict[str, Any]], cluster_role: list[dict[str, Any]]) -> None:
        """From now on refuse (403) what the Role (namespaced requests) and ClusterRole do not grant."""
        self._rules: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = (role, cluster_role)

    def _needs(self, request: rendering.Request) -> list[Call]:
        """What the operator's request needs (the tests' own admin requests carry no token)."""
        if request.resource is None or not request.resource.plural:
            return []  # discovery (/api, /apis/...): granted to every authenticated user
        if request.headers.get("Authorization") != f"Bearer {OPERATOR_TOKEN}":
            return []
        namespaced = request.namespace is not None
        resource = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
        out = [Call(rbac_verb(request), request.resource.group, resource, namespaced)]
        data = request.data
        if out[0].verb in ("create", "patch", "update") and isinstance(data, dict):
            for ref in (data.get("metadata") or {}).get("ownerReferences") or []:
                if ref.get("blockOwnerDeletion"):
                    group = str(ref.get("apiVersion", "")).rpartition("/")[0]
                    plural = next(
                        (r.plural for r, i in self.resources.items() if i.kind == ref.get("kind") and r.group == group),
                        str(ref.get("kind", "")).lower() + "s",
                    )
                    out.append(Call("update", group, f"{plural}/finalizers", namespaced))
        return out

    def _allowed(self, call: Call) -> bool:
        rules = getattr(self, "_rules", None)
        if rules is None:
            return True
        role, cluster_role = rules
        granted = [*role, *cluster_role] if call.namespaced else cluster_role
        return rbac.permits(granted, verb=call.verb, group=call.group, resource=call.resource)

    def _next_rv(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # kmock matches each request against its whole request history (O(n) per request): keep it short
        if len(self._requests) > 2 * REQUEST_HISTORY:
            del self._requests[:-REQUEST_HISTORY]
        needs = self._needs(request)
        self.calls.update(needs)
        refused = [c for c in needs if not self._allowed(c)]
        if refused:
            self.denied.extend(refused)
            message = f"forbidden by the chart's RBAC: {', '.join(map(str, refused))}"
            return aiohttp.web.json_response(
                {"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden",
                 "code": 403, "message": message},
                status=403,
            )
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if request.action == enums.action.CREATE:
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault(
                    "creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                )
                meta.setdefault("generation", 1)
                if request.namespace and not meta.get("namespace"):
                    meta["namespace"] = request.namespace
                meta["resourceVersion"] = self._next_rv()
            elif request.action == enums.action.UPDATE and request.name is not None:
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted:
                    current = self.objects[key].raw
                    if request.subresource is None and "spec" in data and data["spec"] != current.get("spec"):
                        meta["generation"] = int(current.get("metadata", {}).get("generation", 1)) + 1
                meta["resourceVersion"] = self._next_rv()
        return await super()._handle(request)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_list(request)
        if isinstance(payload, dict):
            payload["metadata"] = {"resourceVersion": str(self._last_rv)}
        return payload

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        raw = request.params.get("resourceVersion", "")
        since = int(raw) if raw.isdigit() else 0
        async for event in super()._serve_watch(request):
            if since and isinstance(event, dict) and event.get("type") == "ADDED":
                rv = str(event.get("object", {}).get("metadata", {}).get("resourceVersion", "0"))
                if rv.isdigit() and int(rv) <= since:
                    continue
            yield event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OperatorThread:
    """``kopf.run`` in a thread, logged in to ``server_url``; ``with`` starts and stops it."""

    server_url: str
    config: OperatorConfig
    namespaces: tuple[str, ...] = ("default",)
    webhook_port: int | None = None
    webhook_server: kopf.WebhookServer | None = None  # e.g. the HTTPS server `qt operator --webhook` builds
    operator: Operator = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _task: asyncio.Task[None] | None = None
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.webhook_server is not None:
            self.webhook_port = int(self.webhook_server.port or 0)
        self.operator = build_operator(self.config, admission=self.webhook_port is not None, login=False)
        settings = self.operator.settings
        settings.scanning.disabled = True
        settings.watching.reconnect_backoff = 0.1
        settings.networking.error_backoffs = [0.1, 0.2]
        settings.queueing.exit_timeout = 0.5
        settings.persistence.consistency_timeout = 0.5
        if self.webhook_server is not None:
            settings.admission.server = self.webhook_server
        elif self.webhook_port is not None:
            settings.admission.server = kopf.WebhookServer(
                addr="127.0.0.1", port=self.webhook_port, insecure=True
            )
        url = self.server_url

        @kopf.on.login(registry=self.operator.registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=url, insecure=True, token=OPERATOR_TOKEN)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._task = loop.create_task(
            kopf.operator(
                registry=self.operator.registry,
                settings=self.operator.settings,
                standalone=True,
                namespaces=list(self.namespaces),
                stop_flag=self._stop,
                ready_flag=self._ready,
            )
        )
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # surfaced to the test
            self.errors.append(exc)
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self.operator.reconciler.redis.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="kopf-operator", daemon=True)
        self._thread.start()
        ok = await asyncio.to_thread(self._ready.wait, 10)
        if not ok:
            raise RuntimeError(f"operator not ready in 10 s: {self.errors}")
        if self.webhook_port is not None:
            await wait_for(lambda: _port_open(self.webhook_port or 0), timeout=10, what="admission server")

    async def stop(self) -> None:
        """Graceful stop; after 1 s cancel (kopf waits 5 s for timers respawned during shutdown)."""
        self._stop.set()
        if self._thread is None:
            return
        await asyncio.to_thread(self._thread.join, 1.0)
        if self._thread.is_alive() and self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
            await asyncio.to_thread(self._thread.join, 10)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition", interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_exc: BaseException | None = None
    while loop.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            last_exc = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


def profile_body(
    name: str, spec: dict[str, Any] | None = None, *, namespace: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec if spec is not None else {},
    }


class Api:
    """Just enough of a Kubernetes client for the tests (what kubectl would do)."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.session = session

    def _tp(self, namespace: str, name: str = "") -> str:
        base = f"{self.url}/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PLURAL}"
        return f"{base}/{name}" if name else base

    async def create_profile(self, body: dict[str, Any]) -> dict[str, Any]:
        ns = body["metadata"].get("namespace", "default")
        async with self.session.post(self._tp(ns), json=body) as r:
            r.raise_for_status()
            return dict(await r.json())

    async def patch_profile(self, name: str, patch: dict[str, Any], *, namespace: str = "default") -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.session.patch(self._tp(namespace, name), json=patch, headers=headers) as r:
            r.raise_for_status()

    async def delete_profile(self, name: str, *, namespace: str = "default") -> None:
        async with self.session.delete(self._tp(namespace, name)) as r:
            r.raise_for_status()


def add_secret(emulator: Emulator, name: str, data: dict[str, str], *, namespace: str = "default") -> None:
    emulator.objects[SECRETS, namespace, name] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def make_config(**overrides: Any) -> OperatorConfig:
    base: dict[str, Any] = {
        "worker_image": "registry.test/qt-worker:1",
        "redis_secret": "qt-redis",
        "reconcile_interval": 0.3,
        "heartbeat_stale_after": 60.0,
        "startup_grace": 0.0,
        "redis_timeout": 0.5,
    }
    base.update(overrides)
    return OperatorConfig(**base)
