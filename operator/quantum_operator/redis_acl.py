"""The operator's side of per-profile Redis isolation: one ACL user per profile, re-asserted every reconcile.

The rules come from :mod:`quantum_trader.core.acl` (the profile's key prefix, the commands ``qt``
uses). ``ACL SETUSER <user> reset on #<sha256> ...`` converges the user to exactly those rules, so
applying it every reconcile also repairs a user someone changed by hand, and re-creates the users
after a Redis restart without an ACL file. ``ACL SAVE`` runs only when the user changed, and only
where the server has an ACL file (the chart's Redis has one, on its volume).

Never raises: the reconcile gets an :class:`AclOutcome` and reports it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from quantum_trader.core.acl import ProfileUser, is_unknown_command_error
from quantum_trader.core.connection import is_cluster_client
from redis.asyncio.cluster import ClusterNode
from redis.client import NEVER_DECODE
from redis.exceptions import RedisError, ResponseError

PASSWORD_BYTES: Final = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def url_without_credentials(url: str) -> str:
    """``redis://:pw@host:6379/0`` → ``redis://host:6379/0`` (workers authenticate as their own user)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    if not host:  # unix://user:pw@/path/redis.sock
        return f"{parts.scheme}://{urlunsplit(('', '', parts.path, parts.query, parts.fragment))}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class AclOutcome:
    changed: bool = False  # the user was created or its rules/password differed
    saved: bool = False  # ACL SAVE wrote the server's ACL file
    error: str = ""  # '' = applied
    unreachable: bool = False  # a transport error (the status already says RedisUnreachable)


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


async def ensure_user(client: Any, user: ProfileUser) -> AclOutcome:
    """Create or converge ``user`` on the Redis behind ``client`` (a client with ACL rights).

    On a Redis Cluster every node keeps its own users (ACLs are not replicated): the user is
    converged on each node, replicas included (a replica that takes over must know it).
    """
    if not is_cluster_client(client):
        return await _ensure_on(client, user)
    try:
        nodes = await every_node(client)
    except (RedisError, OSError) as exc:
        return AclOutcome(error=_first_line(exc), unreachable=True)
    outcomes = [await _ensure_on(node, user) for node in nodes]
    for node in nodes:
        await node.disconnect()
    failed = next((o for o in outcomes if o.error), None)
    changed = any(o.changed for o in outcomes)
    if failed is not None:
        return AclOutcome(changed=changed, error=failed.error, unreachable=failed.unreachable)
    return AclOutcome(changed=changed, saved=changed and all(o.saved for o in outcomes if o.changed))


async def _ensure_on(client: Any, user: ProfileUser) -> AclOutcome:
    try:
        before = await client.execute_command("ACL", "GETUSER", user.name)
        try:
            await client.execute_command(*user.setuser_args())
        except ResponseError as exc:
            if not is_unknown_command_error(str(exc)):
                raise
            await client.execute_command(*user.setuser_args(optional=False))  # a server before Redis 7.2
        after = await client.execute_command("ACL", "GETUSER", user.name)
    except ResponseError as exc:  # e.g. NOPERM: the operator's Redis user may not manage ACLs
        return AclOutcome(error=f"ACL SETUSER {user.name}: {_first_line(exc)}")
    except (RedisError, OSError) as exc:
        return AclOutcome(error=_first_line(exc), unreachable=True)
    if before == after:
        return AclOutcome()
    try:
        await client.execute_command("ACL", "SAVE")
    except ResponseError:  # no ACL file: the user lives in memory; the next reconcile re-creates it
        return AclOutcome(changed=True)
    except (RedisError, OSError) as exc:
        return AclOutcome(changed=True, error=_first_line(exc), unreachable=True)
    return AclOutcome(changed=True, saved=True)


async def every_node(client: Any) -> list[Any]:
    """Every node of the Redis Cluster behind ``client`` (the operator's admin client), replicas
    included, each as a ``ClusterNode`` with the client's connection options; ``await node.disconnect()``
    when done. ACL users are not replicated, and a replica that takes over must have them."""
    await client.initialize()
    primary = client.get_nodes()[0]
    raw = await primary.execute_command("CLUSTER", "NODES", **{NEVER_DECODE: []})
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    options = {k: v for k, v in client.get_connection_kwargs().items() if k not in ("host", "port")}
    nodes: list[Any] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or any(flag in parts[2] for flag in ("fail", "noaddr", "handshake")):
            continue
        host, _, port = parts[1].split("@")[0].rpartition(":")
        host, port_n = client.nodes_manager.remap_host_port(host or primary.host, int(port))
        nodes.append(ClusterNode(host, port_n, **options))
    return nodes
