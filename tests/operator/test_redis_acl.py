"""Per-profile Redis isolation by the operator (kopf against kmock, a real redis-server): each profile gets
its own ACL user, its credentials in a Secret it owns, and workers that authenticate as it."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from quantum_operator import names
from quantum_operator.observe import RedisPool, observe
from quantum_operator.redis_acl import url_without_credentials
from quantum_operator.render import RedisAuth, RenderContext, build_all
from quantum_trader.core import acl
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys
from quantum_trader.core.profile import parse_spec

from .emulator import DEPLOYMENTS, SECRETS, Emulator, add_secret, make_config, profile_body, wait_for
from .test_operator_kmock import objects, status_of


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    """The session Redis as its admin; every qt-* user the test created is removed afterwards."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    for user in client.execute_command("ACL", "USERS"):
        if user.startswith(acl.USER_PREFIX):
            client.execute_command("ACL", "DELUSER", user)
    client.close()


async def test_each_profile_gets_its_own_redis_user_and_a_secret_it_owns_and_workers_use_it(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str, admin: redis.Redis
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    await run_operator()
    uid = (await api.create_profile(profile_body("alpha")))["metadata"]["uid"]
    await api.create_profile(profile_body("beta"))
    secrets = await wait_for(
        lambda: (s := objects(emulator, SECRETS, prefix="alpha-redis-auth")) and objects(emulator, DEPLOYMENTS,
                                                                                          prefix="alpha-") and s,
        what="the profile's Redis Secret",
    )
    secret = secrets["alpha-redis-auth"]
    creds = _decoded(secret)
    assert creds["username"] == "qt-default.alpha" and creds["url"] == redis_url and len(creds["password"]) >= 40
    assert [(r["kind"], r["name"], r["uid"]) for r in secret["metadata"]["ownerReferences"]] == [
        ("TradingProfile", "alpha", uid)
    ]
    for dep in objects(emulator, DEPLOYMENTS, prefix="alpha-").values():
        pod = dep["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "alpha-redis-auth", "key": "url"}
        assert env["REDIS_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": "alpha-redis-auth", "key": "username"}
        assert env["REDIS_PASSWORD_FILE"]["value"] == "/var/run/secrets/quantum/redis/password"
        assert creds["password"] not in str(dep)  # never in env, args or annotations
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["redis-auth"]["readOnly"] and mounts["redis-auth"]["mountPath"] == "/var/run/secrets/quantum/redis"

    # the user exists on the real Redis: its own keys only, no administrative command
    await wait_for(lambda: admin.execute_command("ACL", "GETUSER", "qt-default.beta"), what="beta's user")
    mine = redis.Redis.from_url(creds["url"], username=creds["username"], password=creds["password"])
    alpha_keys, beta_keys = Keys("alpha", namespace="default"), Keys("beta", namespace="default")
    mine.hset(alpha_keys.positions, "BTCUSDT", "{}")
    for forbidden in ((mine.set, beta_keys.control_paused, "1"), (mine.xadd, beta_keys.trade_intent, {"x": "1"}),
                      (mine.flushall,), (mine.config_set, "maxmemory", "1"), (mine.keys, "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden[0](*forbidden[1:])  # type: ignore[operator]

    # reconciles keep the password (the Secret is never patched); a user removed by hand comes back
    version = secret["metadata"]["resourceVersion"]
    admin.execute_command("ACL", "DELUSER", "qt-default.alpha")
    await wait_for(lambda: admin.execute_command("ACL", "GETUSER", "qt-default.alpha"), what="user re-created")
    after = objects(emulator, SECRETS, prefix="alpha-redis-auth")["alpha-redis-auth"]
    assert after["metadata"]["resourceVersion"] == version and _decoded(after) == creds
    again = redis.Redis.from_url(creds["url"], username=creds["username"], password=creds["password"])
    assert again.hkeys(alpha_keys.positions) == [b"BTCUSDT"]


async def test_an_operator_whose_redis_user_may_not_manage_acls_says_so_in_the_status(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any
) -> None:
    emulator, _ = k8s
    limited = acl.ProfileUser(keys=Keys("other"), password="p" * 30)
    with EmbeddedRedis(users=[limited], appendonly=False) as server:
        url = f"unix://{limited.name}:{limited.password}@{server.socket_path}"
        add_secret(emulator, "qt-redis", {"url": url})
        await run_operator()
        await api.create_profile(profile_body("alpha"))
        s = await wait_for(
            lambda: "ACL SETUSER" in (s := status_of(emulator, "alpha")).get("message", "") and s, what="status"
        )
        assert s["phase"] == "Degraded"
        applied = next(c for c in s["conditions"] if c["type"] == "ConfigApplied")
        assert applied["status"] == "False" and "qt-default.alpha" in applied["message"]
        assert limited.password not in str(s)  # the operator's own credentials are never echoed


def test_a_profile_with_its_own_redis_or_acl_off_keeps_the_shared_url_secret() -> None:
    auth = RedisAuth(username="qt-ns.p", password="secret-value", url="redis://r:6379/0")
    own = build_all(parse_spec({"redis": {"urlSecret": "my-redis"}}),
                    RenderContext(profile="p", namespace="ns", redis_auth=auth))
    off = build_all(parse_spec({}), RenderContext(profile="p", namespace="ns", redis_auth=None))
    for objs, secret in ((own, "my-redis"), (off, names.DEFAULT_REDIS_SECRET)):
        assert not [o for o in objs if o["kind"] == "Secret"]
        env = {e["name"]: e for e in objs[1]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "url"}
        assert "REDIS_USERNAME" not in env and "REDIS_PASSWORD_FILE" not in env
    assert "secret-value" not in repr(auth)


def test_the_workers_url_never_carries_the_operators_credentials() -> None:
    assert url_without_credentials("redis://:admin%40pw@qt-redis:6379/0") == "redis://qt-redis:6379/0"
    assert url_without_credentials("rediss://user:pw@r.example:6380/2?ssl_cert_reqs=none") == (
        "rediss://r.example:6380/2?ssl_cert_reqs=none")
    assert url_without_credentials("unix://u:pw@/run/redis.sock") == "unix:///run/redis.sock"
    assert url_without_credentials("redis://qt-redis:6379/0") == "redis://qt-redis:6379/0"


async def test_observe_counts_a_poison_non_utf8_entry_and_ignores_garbage_instead_of_crashing(
    redis_url: str,
) -> None:
    keys = Keys("paper", namespace="default")
    raw = redis.Redis.from_url(redis_url)
    now = int(time.time() * 1000)
    raw.xadd(keys.ai_signal, {b"symbol": b"\xff\xfeBTC", b"ts": b"\x80"})
    raw.xadd(keys.ai_signal, {"symbol": "ETHUSDT", "ts": str(now)})
    raw.hset(keys.heartbeat("gate"), "ts", b"\xff\xff")
    raw.hset(keys.heartbeat("router"), "ts", b"nan")
    raw.hset(keys.heartbeat("ai"), "ts", str(now))
    raw.set(keys.universe_active, b"{\"symbols\": [\xff]}")
    pool = RedisPool(timeout=2.0)
    try:
        obs = await observe(pool.client(redis_url), keys=keys, now_ms=now + 1000, source="test")
    finally:
        await pool.close()
    assert obs.reachable, obs.error
    assert obs.funnel["signals"] == 2  # the poison entry counts; nothing raised
    assert obs.heartbeats_ms == {"gate": 0, "router": 0, "ai": now}  # garbage reads as "no usable heartbeat"
    assert obs.universe is None


async def test_a_poison_entry_in_redis_does_not_stop_the_operators_status(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str, admin: redis.Redis
) -> None:
    emulator, _ = k8s
    keys = Keys("paper", namespace="default")
    raw = redis.Redis.from_url(redis_url)
    raw.xadd(keys.gate_decision, {b"decision": b"\xffEXECUTE"})
    raw.set(keys.control_paused, b"\xfe\xff")  # a garbage pause flag set by someone else: left alone
    add_secret(emulator, "qt-redis", {"url": redis_url})
    op = await run_operator(make_config(startup_grace=3600.0))
    await api.create_profile(profile_body("paper"))
    s = await wait_for(lambda: (s := status_of(emulator, "paper")).get("funnel") and s, what="status with funnel")
    assert s["funnel"]["decisions"] == 1
    assert raw.get(keys.control_paused) == b"\xfe\xff"
    assert not op.errors
