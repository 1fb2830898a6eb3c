"""The Redis password reaches the workers from a Secret file or the environment, never argv."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from quantum_trader.core.bus import redis_auth_from_env
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.service import redis_client


def test_password_file_wins_over_env_and_its_newline_is_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    env = {"REDIS_PASSWORD_FILE": str(secret), "REDIS_PASSWORD": "from-env", "REDIS_USERNAME": "alpha"}
    assert redis_auth_from_env(env) == {"password": "from-file", "username": "alpha"}
    assert redis_auth_from_env({"REDIS_PASSWORD": "from-env"}) == {"password": "from-env"}
    assert redis_auth_from_env({}) == {}


async def test_worker_client_authenticates_with_the_mounted_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EmbeddedRedis(appendonly=False).start()
    try:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "s3cr3t-pw")
        admin.close()
        secret = tmp_path / "password"
        secret.write_text("s3cr3t-pw\n")
        monkeypatch.delenv("REDIS_PASSWORD", raising=False)
        monkeypatch.setenv("REDIS_PASSWORD_FILE", str(secret))
        client = redis_client(server.url)  # the URL carries no password
        assert await client.ping()
        await client.aclose()
        monkeypatch.delenv("REDIS_PASSWORD_FILE")
        unauthenticated = redis_client(server.url)
        with pytest.raises(redis.AuthenticationError):
            await unauthenticated.ping()
        await unauthenticated.aclose()
    finally:
        server.stop()
