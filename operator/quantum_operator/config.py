"""The operator's own settings: defaults a profile does not carry (image, Redis Secret, timings).

Read once from the environment at start-up (the chart sets them); tests build them directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from quantum_trader.core.profile import MAX_PROFILE_NAME

from quantum_operator import names

__all__ = ["MAX_PROFILE_NAME", "OperatorConfig", "config_from_env"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorConfig:
    worker_image: str = names.DEFAULT_WORKER_IMAGE
    redis_secret: str = names.DEFAULT_REDIS_SECRET  # Secret with key 'url' when spec.redis.urlSecret is ''
    redis_url: str = ""  # the operator's own Redis (heartbeats, pause flag); '' = not configured
    reconcile_interval: float = 30.0  # timer period (s)
    heartbeat_stale_after: float = 60.0  # a heartbeat older than this is stale (s)
    startup_grace: float = 120.0  # missing heartbeats / universe / availability tolerated this long (s)
    redis_timeout: float = 1.0  # connect/read timeout of the operator's Redis calls (s)
    log_format: str = "text"  # workers' log format when spec.workers.logFormat is '' (QT_LOG_FORMAT)
    # one Redis ACL user per profile on the operator's Redis (QT_REDIS_ACL=managed, the default), or the
    # shared URL Secret for every worker (QT_REDIS_ACL=off: a Redis where the operator may not run ACL SETUSER)
    redis_acl: bool = True


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r}: expected a number of seconds") from None


def config_from_env(env: Mapping[str, str] | None = None) -> OperatorConfig:
    e = os.environ if env is None else env
    return OperatorConfig(
        worker_image=e.get(names.ENV_WORKER_IMAGE) or names.DEFAULT_WORKER_IMAGE,
        redis_secret=e.get(names.ENV_REDIS_SECRET) or names.DEFAULT_REDIS_SECRET,
        redis_url=e.get(names.ENV_REDIS_URL, ""),
        reconcile_interval=_float(e, names.ENV_RECONCILE_INTERVAL, 30.0),
        heartbeat_stale_after=_float(e, names.ENV_HEARTBEAT_STALE, 60.0),
        startup_grace=_float(e, names.ENV_STARTUP_GRACE, 120.0),
        log_format="json" if e.get(names.ENV_LOG_FORMAT) == "json" else "text",
        redis_acl=_acl_mode(e.get(names.ENV_REDIS_ACL, "")),
    )


def _acl_mode(raw: str) -> bool:
    if raw in ("", "managed"):
        return True
    if raw == "off":
        return False
    raise ValueError(f"{names.ENV_REDIS_ACL}={raw!r}: expected managed or off")
