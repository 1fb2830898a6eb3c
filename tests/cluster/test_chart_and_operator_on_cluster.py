"""A profile pointed at an external Redis Cluster: chart → TradingProfile → operator → worker pods, and the
operator's own reads of the cluster.

The chart renders (real helm) with ``redis.enabled=false``, the operator's Secret and the example
profile's ``spec.redis.urlSecret`` naming a Secret whose ``url`` is ``redis+cluster://…``; the operator's
builders turn that profile into six worker Deployments whose ``REDIS_URL`` comes from that Secret; the
operator's Redis pool, given such a URL, reads the profile's heartbeats off the real cluster and sets
its pause flag there.
"""

from __future__ import annotations

import time

import pytest
import yaml
from quantum_operator import names
from quantum_operator.observe import RedisPool, observe, set_flag
from quantum_operator.render import Owner, RenderContext, build_all
from quantum_trader.core.connection import sync_client
from quantum_trader.core.embedded_cluster import EmbeddedRedisCluster
from quantum_trader.core.keys import WORKERS
from quantum_trader.core.profile import parse_profile

from tests.deploy.conftest import CHART, load_tool, run_helm

SECRET = "qt-redis-cluster"


def test_chart_profile_with_url_secret_gives_every_worker_the_cluster_secret_as_redis_url() -> None:
    fetch = load_tool("fetch_helm")
    try:
        helm = fetch.ensure_helm()
    except fetch.HelmUnavailable as exc:
        pytest.skip(f"helm unavailable: {exc}")
    res = run_helm(helm, "template", "qt", str(CHART), "--namespace", "desk-a",
                   "--set", "redis.enabled=false", "--set", f"redis.externalUrlSecret={SECRET}",
                   "--set", "exampleProfile.enabled=true", "--set", f"exampleProfile.spec.redis.urlSecret={SECRET}")
    assert res.returncode == 0, res.stderr
    objs = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert not [o for o in objs if o["kind"] == "StatefulSet"], "no Redis of the chart's own"
    (tp,) = [o for o in objs if o["kind"] == "TradingProfile"]
    profile = parse_profile(tp)
    assert profile.spec.redis.url_secret == SECRET

    built = build_all(profile.spec, RenderContext(profile=profile.name, namespace="desk-a", redis_secret="qt-redis",
                                                  owner=Owner(name=profile.name, uid="u-1")))
    deployments = [o for o in built if o["kind"] == "Deployment"]
    assert sorted(d["metadata"]["labels"][names.LABEL_WORKER] for d in deployments) == sorted(WORKERS)
    for dep in deployments:
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": SECRET, "key": "url"}}


async def test_operator_reads_heartbeats_and_sets_the_pause_flag_on_a_cluster_url(cluster: EmbeddedRedisCluster) -> None:
    profile = parse_profile({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                             "metadata": {"name": "paper", "namespace": "desk-a"}, "spec": {}})
    keys = profile.keys
    now_ms = int(time.time() * 1000)
    r = sync_client(cluster.url)
    for w in WORKERS:
        r.hset(keys.heartbeat(w), "ts", str(now_ms))
    pool = RedisPool(timeout=1.0)
    try:
        client = pool.client(cluster.url)
        obs = await observe(client, keys=keys, now_ms=now_ms, source=f"Secret {SECRET}")
        assert obs.reachable, obs.error
        assert obs.heartbeats_ms == {w: now_ms for w in WORKERS}
        assert await set_flag(client, key=keys.control_paused, reason='{"reason":"test"}', on=True) == ""
        assert r.get(keys.control_paused) == b'{"reason":"test"}'
    finally:
        await pool.close()
        r.close()
