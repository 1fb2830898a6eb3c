import redis
from quantum_trader.core.embedded import EmbeddedRedis


def test_embedded_server_starts_with_aof_and_supports_xautoclaim(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    client.xgroup_create("s", "g", id="0", mkstream=True)
    client.xadd("s", {"a": "1"})
    client.xreadgroup("g", "c1", {"s": ">"})
    _next_id, claimed, *_ = client.xautoclaim("s", "g", "c2", min_idle_time=0)
    assert len(claimed) == 1


def test_embedded_server_removes_its_directory_on_stop() -> None:
    server = EmbeddedRedis().start()
    sock = server.socket_path
    assert sock.exists()
    server.stop()
    assert not sock.parent.exists()
