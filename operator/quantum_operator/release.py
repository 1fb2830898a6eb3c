"""``qt operator --release-finalizers``: what the chart's pre-delete hook runs on ``helm uninstall``.

A live profile carries the operator's finalizer so that deleting it first sets
``control:no_new_positions``. Once the operator is uninstalled nobody would remove that
finalizer: deleting the profile, and with it its namespace, would hang in ``Terminating``.
The hook therefore (1) scales the operator's Deployment to zero and waits until no replica
is left (a running operator would re-add the finalizer), then (2) removes the operator's
finalizer from every TradingProfile in the watched namespaces. The profiles and their
workers keep running; deleting them later completes at once (owner references clean up).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from quantum_trader.core.logs import EventLog

from quantum_operator import names
from quantum_operator.kube import MERGE_PATCH, KubeApi, KubeError
from quantum_operator.render import Manifest

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_log = EventLog(component="operator")


class HttpKube:
    """:class:`KubeApi` over plain aiohttp: in-cluster service account, or a given server + token.

    For the one-shot hook (kopf's client works only inside a running operator)."""

    def __init__(self, *, server: str, token: str = "", ca_file: str = "", timeout: float = 15.0) -> None:
        self._server = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def in_cluster(cls) -> HttpKube:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeError("not in a cluster (KUBERNETES_SERVICE_HOST unset)")
        token = (SERVICE_ACCOUNT_DIR / "token").read_text(encoding="utf-8").strip()
        return cls(server=f"https://{host}:{port}", token=token, ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: Manifest | None = None) -> dict[str, Any] | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        headers = {"Content-Type": MERGE_PATCH} if method == "PATCH" else {}
        data = json.dumps(body) if body is not None else None
        try:
            async with self._session.request(
                method, self._server + path, data=data, headers=headers, ssl=self._ssl
            ) as resp:
                if resp.status == 404 and method == "GET":
                    return None
                payload = await resp.json(content_type=None)
                if resp.status >= 400:
                    message = payload.get("message", "") if isinstance(payload, dict) else ""
                    raise KubeError(f"{method} {path}: {resp.status} {message}", status=resp.status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise KubeError(f"{method} {path}: {exc!r}") from None
        return payload if isinstance(payload, dict) else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        return await self._call("GET", path)

    async def create(self, path: str, body: Manifest) -> dict[str, Any]:
        return await self._call("POST", path, body) or {}

    async def patch(self, path: str, body: Manifest) -> dict[str, Any]:
        return await self._call("PATCH", path, body) or {}


def profiles_path(namespace: str) -> str:
    return f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PLURAL}"


@dataclass(frozen=True, slots=True)
class Released:
    namespace: str
    name: str


async def scale_down(kube: KubeApi, *, namespace: str, deployment: str, timeout: float = 120.0) -> None:
    """Scale the operator's Deployment to zero and wait until no replica runs."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
    current = await kube.get(path)
    if current is None:
        return
    await kube.patch(path, {"spec": {"replicas": 0}})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        current = await kube.get(path)
        if current is None or not int((current.get("status") or {}).get("replicas", 0) or 0):
            _log.event("OPERATOR_SCALED_DOWN", namespace=namespace, deployment=deployment)
            return
        await asyncio.sleep(1.0)
    raise KubeError(f"Deployment {deployment} still has replicas after {timeout:.0f}s")


async def release_finalizers(
    kube: KubeApi, *, namespaces: Sequence[str], finalizer: str
) -> list[Released]:
    """Remove ``finalizer`` from every TradingProfile in ``namespaces`` (other finalizers stay)."""
    out: list[Released] = []
    for namespace in namespaces:
        listing = await kube.get(profiles_path(namespace)) or {}
        for item in listing.get("items") or []:
            meta = item.get("metadata") or {}
            finalizers = list(meta.get("finalizers") or [])
            if finalizer not in finalizers:
                continue
            keep = [f for f in finalizers if f != finalizer]
            patch: Manifest = {"metadata": {"finalizers": keep or None}}
            if meta.get("resourceVersion"):
                patch["metadata"]["resourceVersion"] = meta["resourceVersion"]
            await kube.patch(f"{profiles_path(namespace)}/{meta['name']}", patch)
            _log.event("FINALIZER_RELEASED", namespace=namespace, profile=meta["name"])
            out.append(Released(namespace, str(meta["name"])))
    return out
