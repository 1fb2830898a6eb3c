"""Every name the operator writes into Kubernetes: API coordinates, labels, annotations, env vars.

No other module spells a label key, annotation key or object-name suffix.
"""

from __future__ import annotations

from typing import Final

from quantum_trader.core.keys import WORKERS

# -- the custom resource -------------------------------------------------------------------------
GROUP: Final = "quantumtrader.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "TradingProfile"
PLURAL: Final = "tradingprofiles"
SINGULAR: Final = "tradingprofile"
SHORT_NAMES: Final = ("tp",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# -- labels (standard app.kubernetes.io/* plus ours) -----------------------------------------------
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_VERSION: Final = "app.kubernetes.io/version"
LABEL_PROFILE: Final = f"{GROUP}/profile"
LABEL_WORKER: Final = f"{GROUP}/worker"

APP_NAME: Final = "quantum-trader"
MANAGED_BY: Final = "quantum-operator"

# -- annotations ---------------------------------------------------------------------------------
ANNOTATION_CONFIG_HASH: Final = f"{GROUP}/config-hash"
ANNOTATION_PROM_SCRAPE: Final = "prometheus.io/scrape"
ANNOTATION_PROM_PORT: Final = "prometheus.io/port"
ANNOTATION_PROM_PATH: Final = "prometheus.io/path"

# -- workers -------------------------------------------------------------------------------------
ALL_WORKERS: Final = WORKERS
TRADING_WORKERS: Final = tuple(w for w in WORKERS if w != "universe")  # scaled to zero by spec.paused
SINGLETON_WORKERS: Final = ("router",)  # one replica, Recreate strategy
CREDENTIAL_WORKERS: Final = ("snapshot", "executor")  # talk to private exchange endpoints

COMPONENT_WORKER: Final = "worker"
COMPONENT_CONFIG: Final = "config"
COMPONENT_METRICS: Final = "metrics"
COMPONENT_TRAIN: Final = "train"
COMPONENT_REDIS_AUTH: Final = "redis-auth"

# -- container layout ----------------------------------------------------------------------------
CONTAINER_NAME: Final = "worker"
CONFIG_DIR: Final = "/etc/quantum"
PROFILE_FILE: Final = "profile.yaml"
PROFILE_PATH: Final = f"{CONFIG_DIR}/{PROFILE_FILE}"
TMP_DIR: Final = "/tmp"
VOLUME_CONFIG: Final = "profile"
VOLUME_TMP: Final = "tmp"
VOLUME_CREDENTIALS: Final = "exchange-credentials"
CREDENTIALS_DIR: Final = "/var/run/secrets/quantum/exchange"  # files apiKey, secret (market/credentials.py)
VOLUME_REDIS_AUTH: Final = "redis-auth"
REDIS_AUTH_DIR: Final = "/var/run/secrets/quantum/redis"  # file password (REDIS_PASSWORD_FILE)
HTTP_PORT: Final = 8000
PORT_NAME: Final = "metrics"
RUN_AS_USER: Final = 10001

# -- environment ----------------------------------------------------------------------------------
ENV_REDIS_URL: Final = "REDIS_URL"
ENV_REDIS_USERNAME: Final = "REDIS_USERNAME"  # the profile's Redis ACL user (core/acl.py)
ENV_REDIS_PASSWORD_FILE: Final = "REDIS_PASSWORD_FILE"  # its password, a mounted Secret file
ENV_HTTP_PORT: Final = "QT_HTTP_PORT"
ENV_LOG_FORMAT: Final = "QT_LOG_FORMAT"
ENV_CREDENTIALS_DIR: Final = "QT_EXCHANGE_CREDENTIALS_DIR"
ENV_PROFILE_NAME: Final = "QT_PROFILE_NAME"
ENV_POD_NAME: Final = "POD_NAME"
# the operator's own configuration
ENV_WORKER_IMAGE: Final = "QT_WORKER_IMAGE"
ENV_REDIS_SECRET: Final = "QT_REDIS_SECRET"
ENV_RECONCILE_INTERVAL: Final = "QT_RECONCILE_INTERVAL"
ENV_HEARTBEAT_STALE: Final = "QT_HEARTBEAT_STALE_AFTER"
ENV_STARTUP_GRACE: Final = "QT_STARTUP_GRACE"
ENV_REDIS_ACL: Final = "QT_REDIS_ACL"  # managed (default): one Redis ACL user per profile; off: the shared URL

# -- Secret keys ---------------------------------------------------------------------------------
SECRET_KEY_REDIS_URL: Final = "url"
SECRET_KEY_API_KEY: Final = "apiKey"
SECRET_KEY_API_SECRET: Final = "secret"
SECRET_KEY_USERNAME: Final = "username"  # the profile's Redis Secret <p>-redis-auth: username, password, url
SECRET_KEY_PASSWORD: Final = "password"

DEFAULT_WORKER_IMAGE: Final = "ghcr.io/quantum-trader/worker:0.1.0"
DEFAULT_REDIS_SECRET: Final = "quantum-trader-redis"

# -- ConfigMap flat keys (for humans; the workers read profile.yaml) -----------------------------
FLAT_KEYS: Final = (
    "environment",
    "exchange",
    "allowlistSource",
    "ranking",
    "maxOpenOrders",
    "targetOpenOrders",
    "maxNewPerCycle",
    "minConfidence",
    "superConfidence",
    "universeSize",
    "killScoreWarning",
    "killScoreCritical",
    "retrainInterval",
)


def deployment_name(profile: str, worker: str) -> str:
    return f"{profile}-{worker}"


def configmap_name(profile: str) -> str:
    return f"{profile}-profile"


def service_name(profile: str) -> str:
    return f"{profile}-metrics"


def cronjob_name(profile: str) -> str:
    return f"{profile}-train"


def redis_auth_secret_name(profile: str) -> str:
    """The profile's own Redis credentials (ACL user name, password, URL without credentials)."""
    return f"{profile}-redis-auth"
