"""Every Redis client of the project is built here: one Redis, or a Redis Cluster.

The URL says which (the same ``REDIS_URL`` / ``--redis-url`` / ``spec.redis.urlSecret``
value everywhere):

* ``redis://host:port``, ``rediss://…``, ``unix:///path.sock`` — one Redis server
  (``redis.Redis`` / ``redis.asyncio.Redis``), as before.
* ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS) — a Redis Cluster
  (``redis.cluster.RedisCluster`` / ``redis.asyncio.cluster.RedisCluster``). Any node of
  the cluster will do; several seeds are separated by commas
  (``redis+cluster://user:pass@10.0.0.1:6379,10.0.0.2:6379``). Query options are those of
  redis-py's ``from_url``.

Every key of a profile shares one hash tag (``quantum:{<namespace>.<profile>}:…``), so one
profile lives in one slot: every Lua script, ``MULTI`` and pipeline of a worker goes to one
node. Credentials come from the environment (``redis_auth_from_env``) unless the URL has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aredis
import redis.asyncio.cluster as acluster
import redis.cluster as scluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


class RedisUrlError(ValueError):
    """A Redis URL that names a cluster but cannot be used as one."""


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and ``rediss+cluster://`` URLs."""
    return urlsplit(url).scheme.lower() in CLUSTER_SCHEMES


def is_cluster_client(client: object) -> bool:
    """True when ``client`` (or a pipeline of it) talks to a Redis Cluster."""
    return isinstance(client, acluster.RedisCluster | acluster.ClusterPipeline
                      | scluster.RedisCluster | scluster.ClusterPipeline)


def cluster_seeds(url: str) -> tuple[str, list[tuple[str, int]]]:
    """``redis+cluster://a:1,b:2/?x=y`` → (``redis://a:1/?x=y``, [(b, 2)]): the URL redis-py
    parses (first seed, credentials, options) and the further seed nodes."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise RedisUrlError(f"not a cluster URL: scheme {parts.scheme!r} (use redis+cluster://host:port)")
    auth, _, hosts = parts.netloc.rpartition("@")
    seeds = [h.strip() for h in hosts.split(",") if h.strip()]
    if not seeds:
        raise RedisUrlError("cluster URL names no node (redis+cluster://host:port)")
    if parts.path not in ("", "/", "/0"):
        raise RedisUrlError(f"a Redis Cluster has only database 0, not {parts.path.lstrip('/')!r}")
    more: list[tuple[str, int]] = []
    for seed in seeds[1:]:
        host, _, port = seed.rpartition(":")
        if not host or not port.isdigit():
            raise RedisUrlError(f"cluster seed {seed!r} is not host:port")
        more.append((host.strip("[]"), int(port)))
    netloc = f"{auth}@{seeds[0]}" if auth else seeds[0]
    return urlunsplit((scheme, netloc, "", parts.query, "")), more


def _auth_kwargs(auth: dict[str, str] | None) -> dict[str, Any]:
    auth = auth or {}
    return {"password": auth.get("password"), "username": auth.get("username")}


def async_client(url: str, *, auth: dict[str, str] | None = None, **options: Any) -> aredis.Redis:
    """A ``redis.asyncio`` client for ``url``: ``Redis``, or ``RedisCluster`` for a cluster URL.

    ``options`` are redis-py client options (``decode_responses``, ``socket_timeout``, …);
    ``auth`` (``{"password", "username"}``) applies unless the URL carries credentials.
    The cluster client is typed as ``Redis``: it offers the same commands, pipelines
    (``transaction=True`` included, one slot) and scripts, so callers need not care.
    """
    kwargs = {**_auth_kwargs(auth), **options}
    if not is_cluster_url(url):
        return aredis.Redis.from_url(url, **kwargs)
    first, more = cluster_seeds(url)
    kwargs.pop("retry_on_timeout", None)  # not an option of the async cluster client (it has its own retries)
    if more:
        kwargs["startup_nodes"] = [acluster.ClusterNode(h, p) for h, p in more]
    return cast(aredis.Redis, acluster.RedisCluster.from_url(first, **kwargs))


def sync_client(url: str, *, auth: dict[str, str] | None = None, **options: Any) -> redis.Redis:
    """The blocking twin of :func:`async_client` (``qt check``, ``qt why``, the ops commands)."""
    kwargs = {**_auth_kwargs(auth), **options}
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **kwargs)
    first, more = cluster_seeds(url)
    if more:
        kwargs["startup_nodes"] = [scluster.ClusterNode(h, p) for h, p in more]  # type: ignore[no-untyped-call]
    return cast(redis.Redis, scluster.RedisCluster.from_url(first, **kwargs))


# -- one round trip on one node, no client-side retry (the bus's delivering commands) ----------
# a failover or a slot migration in progress: retried like a Redis restart (``Bus.retry``)
CLUSTER_TRANSIENT: Final = (ClusterDownError, TryAgainError, SlotNotCoveredError)
_MAX_REDIRECTS: Final = 5


def command_key(command: Sequence[Any]) -> str:
    """The key a stream command addresses (``XREADGROUP … STREAMS key id``; else the first argument)."""
    words = [c.decode() if isinstance(c, bytes) else str(c) for c in command]
    upper = [w.upper() for w in words]
    if upper[0] in ("XREADGROUP", "XREAD") and "STREAMS" in upper:
        return words[upper.index("STREAMS") + 1]
    return words[1]


class ClusterOnce:
    """Send commands of one slot to the node that serves it, in one round trip; raw replies.

    Follows ``MOVED`` (the slot map is patched, the commands re-sent: a redirected command did
    not run) and ``ASK`` (re-sent after ``ASKING`` to the importing node). A broken connection is
    *not* retried here: the error reaches the caller (see ``Bus.once``), and the next call
    re-reads the slot map first (a failover may have moved the slot). Error replies are
    returned as exceptions, like a pipeline with ``raise_on_error=False``.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._refresh = False

    async def __call__(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        client = self._client
        keys = {command_key(c) for c in commands}
        if len({client.keyslot(k) for k in keys}) != 1:
            raise RedisClusterException(f"commands span several slots: {sorted(keys)}")
        key = next(iter(keys))
        await client.initialize()
        if self._refresh:
            await client.nodes_manager.initialize()
            self._refresh = False
        asking: Any = None
        for _ in range(_MAX_REDIRECTS):
            node = asking or client.get_node_from_key(key)
            replies = await self._send(node, commands, asking=asking is not None)
            if any(isinstance(r, ResponseError) and str(r).startswith("UNBLOCKED") for r in replies):
                # a blocked XREADGROUP released because its master became a replica (failover): it
                # delivered nothing; look up the new master, and let the caller retry
                self._refresh = True
                raise TryAgainError(f"blocked read on {node.name} released by a failover")
            redirect = next((r for r in replies if isinstance(r, AskError)), None)  # MovedError is one too
            if redirect is None:
                return replies
            if isinstance(redirect, MovedError):
                if not redirect.host:
                    redirect.host = node.host
                await client.nodes_manager.move_slot(redirect)
                asking = None
                continue
            host, port = client.nodes_manager.remap_host_port(redirect.host or node.host, redirect.port)
            asking = client.nodes_manager.get_node(host=host, port=port)
            if asking is None:
                await client.nodes_manager.initialize()
                asking = client.nodes_manager.get_node(host=host, port=port)
            if asking is None:
                raise redirect
        raise TryAgainError(f"too many redirects for {key}")

    async def _send(self, node: Any, commands: Sequence[Sequence[Any]], *, asking: bool) -> list[Any]:
        sent = [("ASKING",), *commands] if asking else list(commands)
        conn = node.acquire_connection()
        try:
            await conn.send_packed_command(conn.pack_commands([tuple(c) for c in sent]))
            replies: list[Any] = []
            for _c in sent:
                try:
                    replies.append(await conn.read_response(disable_decoding=True))
                except ResponseError as exc:  # an error reply: the connection stays in step
                    replies.append(exc)
        except BaseException:
            await conn.disconnect()
            self._refresh = True  # the node may be gone: re-read the slot map before the next call
            raise
        finally:
            node.release(conn)
        return replies[1:] if asking else replies

