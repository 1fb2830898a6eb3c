"""Pure builders: a TradingProfile spec → the Kubernetes objects that run it.

No I/O, no clock, no kopf: same input, same dicts (so the config hash and the
merge patches are stable). ``build_all`` is what the reconcile applies:

    ConfigMap  <profile>-profile   profile.yaml (the full manifest the workers read) + flat keys for humans
    Secret     <profile>-redis-auth the profile's Redis ACL user: username, password, url (managed ACL only)
    Deployment <profile>-<worker>  ×6 (universe ai router snapshot gate executor)
    Service    <profile>-metrics   port 8000 of every worker of the profile
    CronJob    <profile>-train     `qt train`, schedule from spec.ai.retrainInterval

``spec.paused`` is not part of the ConfigMap: pausing scales the trading workers
to zero (and sets a Redis flag) without restarting the universe worker.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from quantum_trader.core.profile import API_VERSION, KIND, TradingProfileSpec, format_duration, spec_to_json

from quantum_operator import names

Manifest = dict[str, Any]

DEFAULT_RESOURCES: Final[dict[str, dict[str, str]]] = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
AI_RESOURCES: Final[dict[str, dict[str, str]]] = {
    "requests": {"cpu": "200m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Owner:
    """The TradingProfile that owns every rendered object (for ownerReferences)."""

    name: str
    uid: str
    api_version: str = names.API_VERSION
    kind: str = names.KIND


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisAuth:
    """The profile's own Redis ACL user (``QT_REDIS_ACL=managed``): what its Secret holds.

    The password is an input (the reconcile keeps the one already in the Secret, else draws one), so
    rendering stays pure and re-rendering never rotates it."""

    username: str
    password: str
    url: str  # the Redis URL without credentials (the workers authenticate as ``username``)

    def __repr__(self) -> str:  # never print the password
        return f"RedisAuth(username={self.username!r}, url={self.url!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderContext:
    """Everything a builder needs besides the spec."""

    profile: str
    namespace: str
    worker_image: str = names.DEFAULT_WORKER_IMAGE
    redis_secret: str = names.DEFAULT_REDIS_SECRET  # used when spec.redis.urlSecret is ''
    log_format: str = "text"  # used when spec.workers.logFormat is ''
    redis_auth: RedisAuth | None = None  # managed ACL: the profile's own Redis user (else the shared URL)
    owner: Owner | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)


# -- small helpers -----------------------------------------------------------------------------


def labels(ctx: RenderContext, *, component: str, worker: str | None = None) -> dict[str, str]:
    out = {
        **ctx.extra_labels,
        names.LABEL_NAME: names.APP_NAME,
        names.LABEL_INSTANCE: ctx.profile,
        names.LABEL_COMPONENT: component,
        names.LABEL_PART_OF: names.APP_NAME,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_PROFILE: ctx.profile,
    }
    if worker is not None:
        out[names.LABEL_WORKER] = worker
    return out


def selector(ctx: RenderContext, worker: str) -> dict[str, str]:
    """Deployment selectors are immutable: keep them to the two labels that never change."""
    return {names.LABEL_PROFILE: ctx.profile, names.LABEL_WORKER: worker}


def metadata(ctx: RenderContext, *, name: str, component: str, worker: str | None = None) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": ctx.namespace,
        "labels": labels(ctx, component=component, worker=worker),
    }
    if ctx.owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": ctx.owner.api_version,
                "kind": ctx.owner.kind,
                "name": ctx.owner.name,
                "uid": ctx.owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def redis_secret_name(spec: TradingProfileSpec, ctx: RenderContext) -> str:
    return spec.redis.url_secret or ctx.redis_secret


def profile_user(spec: TradingProfileSpec, ctx: RenderContext) -> RedisAuth | None:
    """The profile's own Redis user, when the workers use one: managed ACL on the operator's Redis
    (a profile with ``spec.redis.urlSecret`` brings its own Redis and its own credentials)."""
    return None if spec.redis.url_secret else ctx.redis_auth


def worker_image(spec: TradingProfileSpec, ctx: RenderContext) -> str:
    return spec.workers.image or ctx.worker_image


def referenced_secrets(spec: TradingProfileSpec, ctx: RenderContext) -> tuple[str, ...]:
    """Secrets the workers need to start (the operator checks they exist)."""
    out = [redis_secret_name(spec, ctx)]
    if spec.exchange.credentials_secret:
        out.append(spec.exchange.credentials_secret)
    return tuple(out)


def desired_replicas(spec: TradingProfileSpec, worker: str) -> int:
    if spec.paused and worker in names.TRADING_WORKERS:
        return 0
    return 1


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


# -- ConfigMap ---------------------------------------------------------------------------------


def profile_document(spec: TradingProfileSpec, ctx: RenderContext) -> Manifest:
    """The manifest `qt worker NAME --profile /etc/quantum/profile.yaml` loads (paused omitted)."""
    body = spec_to_json(spec)
    body.pop("paused", None)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": ctx.profile, "namespace": ctx.namespace},
        "spec": body,
    }


def configmap_data(spec: TradingProfileSpec, ctx: RenderContext) -> dict[str, str]:
    flat = {
        "environment": spec.environment,
        "exchange": spec.exchange.name,
        "allowlistSource": spec.snapshot.allowlist_source,
        "ranking": spec.snapshot.ranking,
        "maxOpenOrders": str(spec.router.max_open_orders),
        "targetOpenOrders": str(spec.router.target_open_orders),
        "maxNewPerCycle": str(spec.router.max_new_per_cycle),
        "minConfidence": _fmt_number(spec.router.min_confidence),
        "superConfidence": _fmt_number(spec.router.super_confidence),
        "universeSize": str(spec.universe.size),
        "killScoreWarning": _fmt_number(spec.gate.kill_score_warning),
        "killScoreCritical": _fmt_number(spec.gate.kill_score_critical),
        "retrainInterval": format_duration(spec.ai.retrain_interval),
    }
    text = yaml.safe_dump(profile_document(spec, ctx), sort_keys=False, width=120)
    return {names.PROFILE_FILE: text, **{k: flat[k] for k in names.FLAT_KEYS}}


def config_hash(data: dict[str, str]) -> str:
    """sha256 of the ConfigMap data (canonical JSON); the pod-template annotation that rolls workers."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build_configmap(spec: TradingProfileSpec, ctx: RenderContext) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ctx, name=names.configmap_name(ctx.profile), component=names.COMPONENT_CONFIG),
        "data": configmap_data(spec, ctx),
    }


# -- pod pieces --------------------------------------------------------------------------------


def _secret_env(name: str, *, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def redis_env(spec: TradingProfileSpec, ctx: RenderContext) -> list[Manifest]:
    """How a pod reaches Redis: the profile's own ACL user (URL and user name from its Secret, the
    password as a mounted file), else the shared URL Secret. Never a password in env or argv."""
    if profile_user(spec, ctx) is None:
        return [_secret_env(names.ENV_REDIS_URL, secret=redis_secret_name(spec, ctx), key=names.SECRET_KEY_REDIS_URL)]
    secret = names.redis_auth_secret_name(ctx.profile)
    return [
        _secret_env(names.ENV_REDIS_URL, secret=secret, key=names.SECRET_KEY_REDIS_URL),
        _secret_env(names.ENV_REDIS_USERNAME, secret=secret, key=names.SECRET_KEY_USERNAME),
        {"name": names.ENV_REDIS_PASSWORD_FILE, "value": f"{names.REDIS_AUTH_DIR}/{names.SECRET_KEY_PASSWORD}"},
    ]


def container_env(spec: TradingProfileSpec, ctx: RenderContext, *, worker: str | None) -> list[Manifest]:
    env: list[Manifest] = [
        *redis_env(spec, ctx),
        {"name": names.ENV_HTTP_PORT, "value": str(names.HTTP_PORT)},
        {"name": names.ENV_LOG_FORMAT, "value": spec.workers.log_format or ctx.log_format},
        {"name": names.ENV_PROFILE_NAME, "value": ctx.profile},
        {"name": names.ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if _needs_credentials(spec, worker):
        env.append({"name": names.ENV_CREDENTIALS_DIR, "value": names.CREDENTIALS_DIR})
    return env


def _needs_credentials(spec: TradingProfileSpec, worker: str | None) -> bool:
    """Only the workers that call private exchange endpoints get the key files."""
    return bool(spec.exchange.credentials_secret) and worker in names.CREDENTIAL_WORKERS


def container_security_context() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": names.RUN_AS_USER,
        "runAsGroup": names.RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": names.RUN_AS_USER,
        "runAsGroup": names.RUN_AS_USER,
        "fsGroup": names.RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources_for(spec: TradingProfileSpec, worker: str) -> dict[str, dict[str, str]]:
    if spec.workers.resources:
        return {k: dict(v) for k, v in spec.workers.resources.items()}
    base = AI_RESOURCES if worker == "ai" else DEFAULT_RESOURCES
    return {k: dict(v) for k, v in base.items()}


def volumes(spec: TradingProfileSpec, ctx: RenderContext, *, worker: str | None) -> list[Manifest]:
    out = [
        {
            "name": names.VOLUME_CONFIG,
            "configMap": {
                "name": names.configmap_name(ctx.profile),
                "items": [{"key": names.PROFILE_FILE, "path": names.PROFILE_FILE}],
            },
        },
        {"name": names.VOLUME_TMP, "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    if profile_user(spec, ctx) is not None:
        out.append(
            {
                "name": names.VOLUME_REDIS_AUTH,
                "secret": {
                    "secretName": names.redis_auth_secret_name(ctx.profile),
                    "defaultMode": 0o440,
                    "items": [{"key": names.SECRET_KEY_PASSWORD, "path": names.SECRET_KEY_PASSWORD}],
                },
            }
        )
    if _needs_credentials(spec, worker):
        out.append(
            {
                "name": names.VOLUME_CREDENTIALS,
                "secret": {
                    "secretName": spec.exchange.credentials_secret,
                    "defaultMode": 0o440,
                    "items": [
                        {"key": names.SECRET_KEY_API_KEY, "path": names.SECRET_KEY_API_KEY},
                        {"key": names.SECRET_KEY_API_SECRET, "path": names.SECRET_KEY_API_SECRET},
                    ],
                },
            }
        )
    return out


def volume_mounts(spec: TradingProfileSpec, ctx: RenderContext, *, worker: str | None) -> list[Manifest]:
    out: list[Manifest] = [
        {"name": names.VOLUME_CONFIG, "mountPath": names.CONFIG_DIR, "readOnly": True},
        {"name": names.VOLUME_TMP, "mountPath": names.TMP_DIR},
    ]
    if profile_user(spec, ctx) is not None:
        out.append({"name": names.VOLUME_REDIS_AUTH, "mountPath": names.REDIS_AUTH_DIR, "readOnly": True})
    if _needs_credentials(spec, worker):
        out.append({"name": names.VOLUME_CREDENTIALS, "mountPath": names.CREDENTIALS_DIR, "readOnly": True})
    return out


def _probe(path: str, *, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": names.PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def worker_container(spec: TradingProfileSpec, ctx: RenderContext, *, worker: str) -> Manifest:
    return {
        "name": names.CONTAINER_NAME,
        "image": worker_image(spec, ctx),
        "imagePullPolicy": "IfNotPresent",
        "args": ["worker", worker, "--profile", names.PROFILE_PATH],
        "env": container_env(spec, ctx, worker=worker),
        "ports": [{"name": names.PORT_NAME, "containerPort": names.HTTP_PORT, "protocol": "TCP"}],
        "startupProbe": _probe("/healthz", period=5, failures=60),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=3),
        "resources": resources_for(spec, worker),
        "securityContext": container_security_context(),
        "volumeMounts": volume_mounts(spec, ctx, worker=worker),
    }


# -- the profile's Redis credentials ----------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def build_redis_auth_secret(auth: RedisAuth, ctx: RenderContext) -> Manifest:
    """Secret ``<p>-redis-auth`` (owned by the profile): the ACL user's name, password and the URL
    without credentials. ``data`` (base64), as the API server returns it, so a converged Secret
    compares equal and is never patched."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(
            ctx, name=names.redis_auth_secret_name(ctx.profile), component=names.COMPONENT_REDIS_AUTH
        ),
        "type": "Opaque",
        "data": {
            names.SECRET_KEY_USERNAME: _b64(auth.username),
            names.SECRET_KEY_PASSWORD: _b64(auth.password),
            names.SECRET_KEY_REDIS_URL: _b64(auth.url),
        },
    }


# -- Deployments, Service, CronJob -------------------------------------------------------------


def build_deployment(spec: TradingProfileSpec, ctx: RenderContext, *, worker: str, cfg_hash: str) -> Manifest:
    strategy: Manifest
    if worker in names.SINGLETON_WORKERS:
        strategy = {"type": "Recreate"}
    else:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            ctx,
            name=names.deployment_name(ctx.profile, worker),
            component=names.COMPONENT_WORKER,
            worker=worker,
        ),
        "spec": {
            "replicas": desired_replicas(spec, worker),
            "revisionHistoryLimit": 3,
            "strategy": strategy,
            "selector": {"matchLabels": selector(ctx, worker)},
            "template": {
                "metadata": {
                    "labels": labels(ctx, component=names.COMPONENT_WORKER, worker=worker),
                    "annotations": {
                        names.ANNOTATION_CONFIG_HASH: cfg_hash,
                        names.ANNOTATION_PROM_SCRAPE: "true",
                        names.ANNOTATION_PROM_PORT: str(names.HTTP_PORT),
                        names.ANNOTATION_PROM_PATH: "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security_context(),
                    "containers": [worker_container(spec, ctx, worker=worker)],
                    "volumes": volumes(spec, ctx, worker=worker),
                },
            },
        },
    }


def build_service(ctx: RenderContext) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, name=names.service_name(ctx.profile), component=names.COMPONENT_METRICS),
        "spec": {
            "type": "ClusterIP",
            "selector": {names.LABEL_PROFILE: ctx.profile, names.LABEL_COMPONENT: names.COMPONENT_WORKER},
            "ports": [
                {
                    "name": names.PORT_NAME,
                    "port": names.HTTP_PORT,
                    "targetPort": names.PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


TRAIN_HOUR: Final = 3  # daily and multi-day retraining starts at 03:00 (cluster time zone, usually UTC)


def cron_schedule(seconds: float) -> str:
    """ai.retrainInterval → a cron schedule (cron cannot express every interval: round UP).

    * ≥ 7 days          → weekly,  ``0 3 * * 0``
    * N whole days      → ``0 3 */N * *`` (N = 1: ``0 3 * * *``; restarts at each month's start)
    * ≥ 1 hour          → every H hours, H the smallest divisor of 24 ≥ the interval: ``0 */H * * *``
    * < 1 hour          → every M minutes, M the smallest divisor of 60 ≥ the interval: ``*/M * * * *``
    """
    minutes = max(1, int(-(-seconds // 60)))  # ceil to whole minutes
    if minutes >= 7 * 24 * 60:
        return f"0 {TRAIN_HOUR} * * 0"
    if minutes >= 24 * 60:
        days = -(-minutes // (24 * 60))
        return f"0 {TRAIN_HOUR} * * *" if days == 1 else f"0 {TRAIN_HOUR} */{days} * *"
    if minutes >= 60:
        hours = -(-minutes // 60)
        step = next(d for d in (1, 2, 3, 4, 6, 8, 12, 24) if d >= hours)
        if step == 24:
            return f"0 {TRAIN_HOUR} * * *"
        return "0 * * * *" if step == 1 else f"0 */{step} * * *"
    step = next(d for d in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) if d >= minutes)
    if step == 60:
        return "0 * * * *"
    return "* * * * *" if step == 1 else f"*/{step} * * * *"


def build_cronjob(spec: TradingProfileSpec, ctx: RenderContext, *, cfg_hash: str) -> Manifest:
    container = worker_container(spec, ctx, worker="ai")
    container.update(
        {
            "name": "train",
            "args": ["train", "--profile", names.PROFILE_PATH],
            "env": container_env(spec, ctx, worker="ai"),
        }
    )
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container.pop(probe)
    container.pop("ports")
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(ctx, name=names.cronjob_name(ctx.profile), component=names.COMPONENT_TRAIN),
        "spec": {
            "schedule": cron_schedule(spec.ai.retrain_interval),
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels(ctx, component=names.COMPONENT_TRAIN)},
                "spec": {
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": 6 * 3600,
                    "template": {
                        "metadata": {
                            "labels": labels(ctx, component=names.COMPONENT_TRAIN),
                            "annotations": {names.ANNOTATION_CONFIG_HASH: cfg_hash},
                        },
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "enableServiceLinks": False,
                            "securityContext": pod_security_context(),
                            "containers": [container],
                            "volumes": volumes(spec, ctx, worker="ai"),
                        },
                    },
                },
            },
        },
    }


def build_all(spec: TradingProfileSpec, ctx: RenderContext) -> list[Manifest]:
    """ConfigMap first (the pods mount it), the profile's Redis Secret (managed ACL), then the
    Deployments, the Service and the CronJob."""
    cm = build_configmap(spec, ctx)
    cfg_hash = config_hash(cm["data"])
    auth = profile_user(spec, ctx)
    secret = [build_redis_auth_secret(auth, ctx)] if auth is not None else []
    deployments = [build_deployment(spec, ctx, worker=w, cfg_hash=cfg_hash) for w in names.ALL_WORKERS]
    return [cm, *secret, *deployments, build_service(ctx), build_cronjob(spec, ctx, cfg_hash=cfg_hash)]


# -- where each kind lives in the API ------------------------------------------------------------

API_PATHS: Final = {
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("batch/v1", "CronJob"): ("/apis/batch/v1", "cronjobs"),
}


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    base, plural = API_PATHS[(api_version, kind)]
    return f"{base}/namespaces/{namespace}/{plural}"


def object_path(obj: Manifest) -> str:
    meta = obj["metadata"]
    return f"{collection_path(obj['apiVersion'], obj['kind'], meta['namespace'])}/{meta['name']}"
