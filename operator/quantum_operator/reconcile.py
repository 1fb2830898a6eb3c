"""The one idempotent reconcile: TradingProfile body → applied objects + observed status.

Level-triggered: it renders everything from the spec, applies what differs
(create or merge patch), re-asserts the Redis pause flag, gathers observations
(Deployment status, Secrets, Redis heartbeats/universe/streams) and returns the
status and the Events to post. It never raises for bad input, a missing Secret,
an API error or an unreachable Redis: those become status + events.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from quantum_trader.core import metrics
from quantum_trader.core.acl import ProfileUser
from quantum_trader.core.acl import username as acl_username
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import (
    API_VERSION,
    KIND,
    ProfileError,
    TradingProfileSpec,
    parse_profile,
    parse_spec,
)

from quantum_operator import names
from quantum_operator.config import OperatorConfig
from quantum_operator.kube import Applied, KubeApi, KubeError, apply
from quantum_operator.observe import RedisPool, observe, set_flag
from quantum_operator.redis_acl import ensure_user, new_password, url_without_credentials
from quantum_operator.render import (
    Manifest,
    Owner,
    RedisAuth,
    RenderContext,
    build_all,
    collection_path,
    config_hash,
    desired_replicas,
    referenced_secrets,
)
from quantum_operator.status import Observations, RedisObs, WorkerObs, build_status

EventType = Literal["Normal", "Warning"]
FLAG_OWNER: Final = "operator"  # flags the operator set carry {"by": "operator"}; it clears only those
_log = EventLog(component="operator")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(slots=True)
class Result:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)


def document_issues(document: Mapping[str, Any]) -> tuple[TradingProfileSpec | None, str]:
    """``qt validate``'s rules and lines for a whole TradingProfile object (what the webhook receives
    and the operator reconciles): name limits, a missing ``spec``, strict types, bounds, cross-field
    rules. Returns (spec, '') or (None, one line per issue)."""
    try:
        return parse_profile(dict(document)).spec, ""
    except ProfileError as exc:
        return None, "\n".join(str(i) for i in exc.issues)


def spec_issues(spec: Mapping[str, Any], *, name: str = "") -> tuple[TradingProfileSpec | None, str]:
    """Like :func:`document_issues` for a bare spec (and, when given, its profile name)."""
    if name:
        return document_issues(
            {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": dict(spec)}
        )
    try:
        return parse_spec(spec), ""
    except ProfileError as exc:
        return None, "\n".join(str(i) for i in exc.issues)


def _created_ms(meta: Mapping[str, Any], now_ms: int) -> int:
    raw = meta.get("creationTimestamp")
    if not raw:
        return now_ms
    try:
        return calendar.timegm(time.strptime(str(raw)[:19], "%Y-%m-%dT%H:%M:%S")) * 1000
    except ValueError:
        return now_ms


def flag_value(reason: str, *, now_ms: int) -> str:
    return json.dumps({"by": FLAG_OWNER, "reason": reason, "ts": now_ms}, separators=(",", ":"))


def _set_by_operator(raw: Any) -> bool:
    try:
        doc = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("by") == FLAG_OWNER


async def _try_apply(kube: KubeApi, obj: Manifest) -> Applied | KubeError:
    try:
        return await apply(kube, obj)
    except KubeError as exc:
        return exc


async def _secret(kube: KubeApi, *, namespace: str, name: str) -> dict[str, Any] | None:
    return await kube.get(f"{collection_path('v1', 'Secret', namespace)}/{name}")


def _secret_value(secret: Mapping[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if raw:
        try:
            return base64.b64decode(raw).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return str((secret.get("stringData") or {}).get(key, "")).strip()


async def _fetch_secrets(
    kube: KubeApi, names_: tuple[str, ...], *, namespace: str, errors: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The referenced Secrets that exist, and the names of those missing (API failures go to ``errors``)."""
    secrets: dict[str, Any] = {}
    missing: list[str] = []
    fetched = await asyncio.gather(
        *(_secret(kube, namespace=namespace, name=n) for n in names_), return_exceptions=True
    )
    for secret_name, found in zip(names_, fetched, strict=True):
        if isinstance(found, KubeError):
            errors.append(f"Secret {secret_name}: {found}")
        elif isinstance(found, BaseException):
            raise found
        elif found is None:
            missing.append(secret_name)
        else:
            secrets[secret_name] = found
    return secrets, missing


async def _apply_objects(
    kube: KubeApi, objects: list[Manifest], *, result: Result, errors: list[str], log: EventLog
) -> None:
    """The ConfigMap and the Redis Secret first (the pods mount them), then everything else concurrently."""
    first = [o for o in objects if o["kind"] in ("ConfigMap", "Secret")]
    rest = [o for o in objects if o["kind"] not in ("ConfigMap", "Secret")]
    outcomes = [await _try_apply(kube, obj) for obj in first]
    outcomes += await asyncio.gather(*(_try_apply(kube, obj) for obj in rest))
    for obj, outcome in zip([*first, *rest], outcomes, strict=True):
        if isinstance(outcome, KubeError):
            errors.append(f"{obj['kind']} {obj['metadata']['name']}: {outcome}")
            log.error("APPLY_FAILED", kind=obj["kind"], object=obj["metadata"]["name"], error=str(outcome))
            continue
        result.applied.append(outcome)
        if outcome.outcome != "unchanged":
            verb = "Created" if outcome.outcome == "created" else "Updated"
            log.event("APPLIED", kind=outcome.kind, object=outcome.name, outcome=outcome.outcome)
            result.events.append(Event(type="Normal", reason=verb, message=f"{verb} {outcome.kind} {outcome.name}"))


@dataclass(slots=True)
class Reconciler:
    """Holds the long-lived pieces (config, Redis clients); ``run`` is the reconcile."""

    config: OperatorConfig
    redis: RedisPool
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)  # one reconcile at a time per profile

    async def redis_url(
        self, kube: KubeApi, spec: TradingProfileSpec, *, namespace: str, secrets: Mapping[str, Any]
    ) -> tuple[str, str]:
        """(url, source): spec.redis.urlSecret, else env REDIS_URL, else the chart's Secret."""
        if not spec.redis.url_secret and self.config.redis_url:
            return self.config.redis_url, "env REDIS_URL"
        name = spec.redis.url_secret or self.config.redis_secret
        secret = secrets.get(name)
        if secret is None:
            return "", f"Secret {name}"
        return _secret_value(secret, names.SECRET_KEY_REDIS_URL), f"Secret {name}"

    async def run(
        self,
        body: Mapping[str, Any],
        *,
        kube: KubeApi,
        adopt: Callable[[list[Manifest]], None] = lambda objs: None,
        now_ms: int | None = None,
    ) -> Result:
        started = time.perf_counter()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        meta = body.get("metadata", {})
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace", "default"))
        generation = int(meta.get("generation", 0) or 0)
        previous: Mapping[str, Any] = body.get("status") or {}
        log = _log.bind(profile=name, namespace=namespace)
        lock = self._locks.setdefault(str(meta.get("uid") or f"{namespace}/{name}"), asyncio.Lock())
        async with lock:  # the change handler and the timer may fire together
            result = await self._run(body, kube=kube, adopt=adopt, now_ms=now, log=log)
        elapsed = time.perf_counter() - started
        phase = result.status.get("phase", "")
        metrics.OPERATOR_RECONCILES.labels(namespace, name, phase.lower() or "unknown").inc()
        metrics.OPERATOR_RECONCILE_SECONDS.labels(namespace, name).observe(elapsed)
        if phase != previous.get("phase") or result.status.get("message") != previous.get("message"):
            etype: EventType = "Warning" if phase in ("Degraded", "Failed") else "Normal"
            result.events.append(
                Event(
                    type=etype,
                    reason=phase or "Unknown",
                    message=str(result.status.get("message", ""))[:1000],
                )
            )
        changed = [a for a in result.applied if a.outcome != "unchanged"]
        log.event(
            "RECONCILE",
            generation=generation,
            phase=phase,
            created=sum(a.outcome == "created" for a in changed),
            patched=sum(a.outcome == "patched" for a in changed),
            ms=round(elapsed * 1000, 1),
        )
        return result

    async def _run(
        self,
        body: Mapping[str, Any],
        *,
        kube: KubeApi,
        adopt: Callable[[list[Manifest]], None],
        now_ms: int,
        log: EventLog,
    ) -> Result:
        meta = body.get("metadata", {})
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace", "default"))
        generation = int(meta.get("generation", 0) or 0)
        previous: Mapping[str, Any] = body.get("status") or {}
        created_ms = _created_ms(meta, now_ms)
        stale, grace = self.config.heartbeat_stale_after, self.config.startup_grace

        spec, error = document_issues(
            {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
        )
        if spec is None:
            log.warn("SPEC_INVALID", issues=error.replace("\n", "; "))
            obs = Observations(generation=generation, now_ms=now_ms, created_ms=created_ms, spec_error=error)
            return Result(build_status(obs, stale_after_s=stale, grace_s=grace, previous=previous))

        result = Result(status={})
        errors: list[str] = []

        # Secrets: existence (workers cannot start without them) and the Redis URL.
        plain_ctx = RenderContext(profile=name, namespace=namespace, redis_secret=self.config.redis_secret)
        secrets, missing = await _fetch_secrets(kube, referenced_secrets(spec, plain_ctx), namespace=namespace,
                                                errors=errors)
        url, source = await self.redis_url(kube, spec, namespace=namespace, secrets=secrets)
        keys = Keys(name, namespace=namespace)

        # The profile's own Redis ACL user (managed ACL, the operator's Redis): its password is kept in
        # the profile's Secret across reconciles; the user is (re)asserted on Redis before the pods start.
        auth: RedisAuth | None = None
        if self.config.redis_acl and not spec.redis.url_secret:
            try:
                auth = await self._profile_auth(kube, keys=keys, namespace=namespace, url=url)
            except KubeError as exc:
                errors.append(f"Secret {names.redis_auth_secret_name(name)}: {exc}")
                log.error("REDIS_AUTH_SECRET_UNREADABLE", error=str(exc))
                obs = Observations(generation=generation, now_ms=now_ms, created_ms=created_ms,
                                   applied=False, apply_error="; ".join(errors))
                return Result(build_status(obs, stale_after_s=stale, grace_s=grace, previous=previous))
            if url:
                await self._assert_user(url, ProfileUser(keys=keys, password=auth.password), errors=errors, log=log)

        ctx = RenderContext(
            profile=name,
            namespace=namespace,
            worker_image=self.config.worker_image,
            redis_secret=self.config.redis_secret,
            log_format=self.config.log_format,
            redis_auth=auth,
            owner=Owner(name=name, uid=str(meta.get("uid", ""))),
        )
        objects = build_all(spec, ctx)
        adopt(objects)
        cfg_hash = config_hash(objects[0]["data"])
        await _apply_objects(kube, objects, result=result, errors=errors, log=log)
        if errors:
            result.events.append(
                Event(type="Warning", reason="ApplyFailed", message="; ".join(errors)[:1000])
            )

        redis_obs: RedisObs | None = None
        if url:
            client = self.redis.client(url)
            flag_error = await self._pause_flag(client, keys=keys, paused=spec.paused, now_ms=now_ms)
            redis_obs = await observe(client, keys=keys, now_ms=now_ms, source=source)
            if flag_error and redis_obs.reachable:
                log.warn("PAUSE_FLAG_FAILED", error=flag_error)
        elif source.startswith("Secret") and source.split(" ", 1)[1] not in missing:
            redis_obs = RedisObs(reachable=False, error="Secret has no key 'url'", source=source)
        elif source.startswith("Secret"):
            redis_obs = RedisObs(reachable=False, error="Secret not found", source=source)

        by_name = {a.name: a for a in result.applied if a.kind == "Deployment"}
        workers = []
        for worker in names.ALL_WORKERS:
            dep = by_name.get(names.deployment_name(name, worker))
            dep_status = (dep.current.get("status") or {}) if dep is not None else {}
            workers.append(
                WorkerObs(
                    name=worker,
                    desired=desired_replicas(spec, worker),
                    available=int(dep_status.get("availableReplicas", 0) or 0),
                    found=dep is not None,
                )
            )
        obs = Observations(
            generation=generation,
            now_ms=now_ms,
            created_ms=created_ms,
            paused=spec.paused,
            applied=not errors,
            apply_error="; ".join(errors),
            config_hash=cfg_hash,
            missing_secrets=tuple(missing),
            workers=tuple(workers),
            redis=redis_obs,
        )
        result.status = build_status(obs, stale_after_s=stale, grace_s=grace, previous=previous)
        return result

    async def _profile_auth(self, kube: KubeApi, *, keys: Keys, namespace: str, url: str) -> RedisAuth:
        """The profile's ACL user: the password already in its Secret (never rotated by a reconcile),
        else a new one; the URL without the operator's credentials. Raises KubeError when the Secret
        cannot be read (a new password would lock out the running workers)."""
        existing = await _secret(kube, namespace=namespace, name=names.redis_auth_secret_name(keys.profile))
        password = _secret_value(existing, names.SECRET_KEY_PASSWORD) if existing else ""
        endpoint = url_without_credentials(url) if url else ""
        if not endpoint and existing:
            endpoint = _secret_value(existing, names.SECRET_KEY_REDIS_URL)
        return RedisAuth(username=acl_username(keys), password=password or new_password(), url=endpoint)

    async def _assert_user(self, url: str, user: ProfileUser, *, errors: list[str], log: EventLog) -> None:
        """Create or converge the profile's ACL user; a refusal (e.g. NOPERM) is an apply error, an
        unreachable Redis is left to the status' RedisUnreachable."""
        outcome = await ensure_user(self.redis.client(url), user)
        if outcome.error and not outcome.unreachable:
            errors.append(outcome.error)
            log.error("REDIS_ACL_FAILED", user=user.name, error=outcome.error)
        elif outcome.changed:
            log.event("REDIS_ACL_APPLIED", user=user.name, saved=outcome.saved)

    async def _pause_flag(self, client: Any, *, keys: Keys, paused: bool, now_ms: int) -> str:
        """spec.paused ⇒ control:paused set; unpaused ⇒ cleared if the operator set it. Also clears an
        operator-set control:no_new_positions left by an earlier deletion of a same-named profile."""
        try:
            current_paused, current_nnp = await client.mget(
                keys.control_paused, keys.control_no_new_positions
            )
        except Exception as exc:  # any Redis/transport failure is reported, never raised
            return str(exc)[:200]
        error = ""
        if paused and not current_paused:
            error = await set_flag(
                client, key=keys.control_paused, reason=flag_value("spec.paused", now_ms=now_ms), on=True
            )
        elif not paused and current_paused and _set_by_operator(current_paused):
            error = await set_flag(client, key=keys.control_paused, reason="", on=False)
        if current_nnp and _set_by_operator(current_nnp):
            error = error or await set_flag(client, key=keys.control_no_new_positions, reason="", on=False)
        return error

    async def stop_new_positions(
        self, body: Mapping[str, Any], *, kube: KubeApi, now_ms: int | None = None
    ) -> str:
        """Before a live profile is deleted: set control:no_new_positions. Returns '' or why it failed."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        meta = body.get("metadata", {})
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace", "default"))
        spec, error = spec_issues(body.get("spec") or {})
        if spec is None:
            return f"invalid spec: {error}"
        secrets: dict[str, Any] = {}
        secret_name = spec.redis.url_secret or self.config.redis_secret
        try:
            found = await _secret(kube, namespace=namespace, name=secret_name)
        except KubeError as exc:
            found = None
            error = str(exc)
        if found is not None:
            secrets[secret_name] = found
        url, source = await self.redis_url(kube, spec, namespace=namespace, secrets=secrets)
        if not url:
            return f"no Redis URL ({source} {error or 'not found'})"
        failure = await set_flag(
            self.redis.client(url),
            key=Keys(name, namespace=namespace).control_no_new_positions,
            reason=flag_value("TradingProfile deleted", now_ms=now),
            on=True,
        )
        return f"{source}: {failure}" if failure else ""
