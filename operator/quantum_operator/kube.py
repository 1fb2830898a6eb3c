"""A narrow Kubernetes API port (get / create / merge-patch) and the converging apply.

The reconcile talks to this :class:`KubeApi` protocol only. :class:`KopfKube`
implements it on kopf's own authenticated HTTP client (the credentials kopf
obtained at login: kubeconfig, service account or the tests' login handler),
so the operator needs no second Kubernetes client library.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.configs import configuration

from quantum_operator.render import Manifest, collection_path, object_path

MERGE_PATCH = "application/merge-patch+json"
Outcome = Literal["created", "patched", "unchanged"]


class KubeError(Exception):
    """Any API failure, with the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubeApi(Protocol):
    async def get(self, path: str) -> dict[str, Any] | None: ...  # None: 404

    async def create(self, path: str, body: Manifest) -> dict[str, Any]: ...

    async def patch(self, path: str, body: Manifest) -> dict[str, Any]: ...  # JSON merge patch


class KopfKube:
    """:class:`KubeApi` over kopf's authenticated client; call only inside the running operator."""

    def __init__(
        self, *, settings: configuration.OperatorSettings, logger: logging.Logger | None = None
    ) -> None:
        self._settings = settings
        self._logger = logger or logging.getLogger("quantum_operator.kube")
        self._timeout = aiohttp.ClientTimeout(total=15, sock_connect=5)

    async def _call(self, method: str, path: str, body: Manifest | None = None) -> dict[str, Any] | None:
        headers = {"Content-Type": MERGE_PATCH} if method == "patch" else None
        try:
            response = await kopf_api.request(
                method,
                path,
                payload=body,
                headers=headers,
                settings=self._settings,
                logger=self._logger,
                timeout=self._timeout,
                backoffs=[0.5, 1.0],
            )
            async with response:
                data = await response.json(content_type=None)
        except kopf_errors.APINotFoundError:
            if method == "get":
                return None
            raise KubeError(f"{method.upper()} {path}: not found", status=404) from None
        except kopf_errors.APIError as exc:
            raise KubeError(f"{method.upper()} {path}: {exc}", status=exc.status or 0) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(f"{method.upper()} {path}: {exc!r}") from None
        return data if isinstance(data, dict) else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        return await self._call("get", path)

    async def create(self, path: str, body: Manifest) -> dict[str, Any]:
        return await self._call("post", path, body) or {}

    async def patch(self, path: str, body: Manifest) -> dict[str, Any]:
        return await self._call("patch", path, body) or {}


def is_subset(desired: Any, current: Any) -> bool:
    """True when every field we set is already there (server-added defaults are ignored).

    Lists must have the same length and match element by element (containers, env, ports).
    """
    if isinstance(desired, Mapping):
        if not isinstance(current, Mapping):
            return False
        return all(k in current and is_subset(v, current[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(current, list) or len(desired) != len(current):
            return False
        return all(is_subset(d, c) for d, c in zip(desired, current, strict=True))
    if (
        isinstance(desired, (int, float))
        and not isinstance(desired, bool)
        and isinstance(current, (int, float))
    ):
        return float(desired) == float(current)
    return bool(desired == current)


def merge_patch_for(desired: Manifest, current: Mapping[str, Any]) -> Manifest:
    """The merge patch that converges ``current`` to ``desired``.

    Merge patches replace lists wholesale and merge maps; keys we no longer
    render in ConfigMap ``data`` are removed explicitly (null).
    """
    body: Manifest = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    if desired.get("kind") == "ConfigMap":
        stale = {k: None for k in (current.get("data") or {}) if k not in desired.get("data", {})}
        body["data"] = {**desired.get("data", {}), **stale}
    return body


@dataclass(frozen=True, slots=True)
class Applied:
    kind: str
    name: str
    outcome: Outcome
    current: Mapping[str, Any]  # the object as the server returned it (its status is the observation)


async def apply(kube: KubeApi, desired: Manifest) -> Applied:
    """Create, or merge-patch when it differs; a no-op when it already matches (converges)."""
    meta = desired["metadata"]
    path = object_path(desired)
    current = await kube.get(path)
    if current is None:
        try:
            created = await kube.create(
                collection_path(desired["apiVersion"], desired["kind"], meta["namespace"]), desired
            )
            return Applied(desired["kind"], meta["name"], "created", created)
        except KubeError as exc:
            if exc.status != 409:  # created concurrently: fall through to patch
                raise
            current = await kube.get(path) or {}
    comparable = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    same_keys = desired.get("kind") != "ConfigMap" or set(current.get("data") or {}) == set(desired["data"])
    if same_keys and is_subset(comparable, current):
        return Applied(desired["kind"], meta["name"], "unchanged", current)
    patched = await kube.patch(path, merge_patch_for(desired, current))
    return Applied(desired["kind"], meta["name"], "patched", patched or current)
