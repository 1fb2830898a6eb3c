"""Per-profile Redis ACL users: each profile reaches only its own keys, with only the commands ``qt`` uses.

The contract (docs/design.md, "Redis ACL: one user per profile"):

* user name ``qt-<hash tag>`` — ``qt-paper`` for a profile file, ``qt-<namespace>.<profile>`` in Kubernetes;
* keys ``~quantum:{<hash tag>}:*`` — the profile's prefix (:class:`~quantum_trader.core.keys.Keys`), nothing else;
* no Pub/Sub channels (``resetchannels``: nothing in ``qt`` publishes or subscribes);
* commands: :data:`PROFILE_COMMANDS` only — what the workers, ``qt train``, ``qt check``, ``qt why``,
  the operations commands and the REST API send (``-@all`` first, so nothing else: no ``CONFIG``,
  ``FLUSH*``, ``DEBUG``, ``KEYS``, ``SCAN``, ``ACL``, ``SHUTDOWN``, ``MONITOR``, ``SCRIPT FLUSH``, ...).
  Lua scripts run with the caller's rights, so ``EVAL``/``EVALSHA`` add nothing beyond the list.
* the password is sent to Redis only as its SHA-256 (``#<hex>``), so neither the server's ACL file
  nor ``ACL LIST`` holds it in clear.

The list is derived from the code, not guessed: ``tests/core/test_acl.py`` scans every Lua script and
raw command of the code base against it, and runs the pipeline, ``qt check``, ``qt why`` and the
operations commands as the profile's user on a real ``redis-server``, asserting ``ACL LOG`` stays
empty (nothing refused) and every command Redis counted (``INFO commandstats``) is on the list.
Add a command here when the code starts using one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from quantum_trader.core.keys import Keys

USER_PREFIX: Final = "qt-"

# Every command a profile's clients send, lower case, ``container|sub`` for subcommands.
PROFILE_COMMANDS: Final[tuple[str, ...]] = (
    # streams: the bus (publish, consume, ack, reclaim, dead consumers), qt check / why, the operator
    "xadd", "xreadgroup", "xack", "xautoclaim", "xclaim", "xpending", "xrange", "xrevrange", "xlen",
    "xgroup|create", "xgroup|delconsumer", "xinfo|groups", "xinfo|consumers", "xinfo|stream",
    # hashes: ledgers, positions, risk, heartbeats, registry, snapshots
    "hset", "hsetnx", "hget", "hmget", "hgetall", "hdel", "hexists", "hincrby", "hincrbyfloat",
    "hkeys", "hvals", "hlen",
    # strings and key lifetimes: universe, flags, leases, model artefacts, liveness keys
    "get", "set", "del", "exists", "expire", "pexpire", "pttl",
    # sets and sorted sets: tradable symbols, ledger ages
    "sadd", "smembers", "sismember", "zadd", "zrangebyscore", "zrem",
    # Lua (redis-py's Script: EVALSHA, then SCRIPT LOAD/EXISTS on a miss) and MULTI/EXEC pipelines
    "eval", "evalsha", "script|load", "script|exists", "multi", "exec",
    # connection: handshake (RESP3 HELLO, AUTH), health checks, the server clock (qt check / why)
    "hello", "auth", "ping", "time",
    # Redis Cluster (docs/redis-cluster.md): redis-py's slot map and key positions, ASK redirects
    "cluster|slots", "command", "asking",
)  # fmt: skip

# Sent by redis-py on every new connection where the server knows it (Redis >= 7.2, Valkey); its reply
# is ignored. Left out of the rules on an older server, which refuses an unknown command in ACL SETUSER.
OPTIONAL_COMMANDS: Final[tuple[str, ...]] = ("client|setinfo",)

# Never granted to a profile (the tests assert a profile's user is refused every one of them).
FORBIDDEN_COMMANDS: Final[tuple[str, ...]] = (
    "config", "flushall", "flushdb", "debug", "keys", "scan", "acl", "shutdown", "monitor", "save",
    "bgsave", "bgrewriteaof", "replicaof", "slaveof", "module", "client|kill", "client|list",
    "script|flush", "function", "migrate", "restore", "swapdb", "select", "info", "subscribe", "publish",
)  # fmt: skip


def username(keys: Keys) -> str:
    """``qt-<hash tag>``: ``qt-paper``, ``qt-trading.paper``."""
    return f"{USER_PREFIX}{keys.hash_tag}"


def key_pattern(keys: Keys) -> str:
    """The one key pattern a profile's user may touch: ``quantum:{<hash tag>}:*``."""
    return f"{keys.prefix}*"


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def rules(keys: Keys, *, optional: bool = True) -> tuple[str, ...]:
    """The ACL rules of a profile's user, without ``reset``/``on`` and the password."""
    commands = PROFILE_COMMANDS + (OPTIONAL_COMMANDS if optional else ())
    return (f"~{key_pattern(keys)}", "resetchannels", "-@all", *(f"+{c}" for c in commands))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileUser:
    """One profile's ACL user: its name, rules and password (the password never leaves in clear)."""

    keys: Keys
    password: str

    @property
    def name(self) -> str:
        return username(self.keys)

    def setuser_args(self, *, optional: bool = True) -> list[str]:
        """``ACL SETUSER`` arguments: ``reset`` first, so re-applying converges to exactly these rules."""
        return ["ACL", "SETUSER", self.name, "reset", "on", f"#{password_hash(self.password)}",
                *rules(self.keys, optional=optional)]  # fmt: skip

    def acl_file_line(self, *, optional: bool = True) -> str:
        """The user as a line of a Redis ACL file (``aclfile``)."""
        return " ".join(["user", self.name, "on", f"#{password_hash(self.password)}", *rules(self.keys, optional=optional)])


def is_unknown_command_error(message: str) -> bool:
    """An ``ACL SETUSER`` refusal because the server does not know one of the commands (older Redis)."""
    return "unknown command" in message.lower()


def admin_file_line(password: str) -> str:
    """The ``default`` user of an ACL file, protected by ``password`` (hash only), all rights."""
    return f"user default on #{password_hash(password)} ~* &* +@all"


def acl_file(users: Sequence[ProfileUser], *, admin_password: str, optional: bool = True) -> str:
    """A whole ACL file: the password-protected ``default`` user, then one line per profile user."""
    return "\n".join([admin_file_line(admin_password), *(u.acl_file_line(optional=optional) for u in users)]) + "\n"
