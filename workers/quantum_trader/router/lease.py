"""Leader lease in Redis: one active router per profile.

``SET key owner NX PX ttl`` takes the lease; the holder renews it (compare-and-
``PEXPIRE`` in Lua, so a replica can never extend a lease it lost) every third
of the TTL; a standby retries until the holder stops renewing. Lease time is
Redis (wall) time: it is infrastructure, like heartbeats.
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aredis

_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


class Lease:
    """A named, expiring lock held by ``owner``."""

    def __init__(self, client: aredis.Redis, *, key: str, owner: str, ttl_ms: int) -> None:
        if ttl_ms <= 0:
            raise ValueError("lease ttl must be > 0 ms")
        self._redis = client
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self) -> bool:
        """Take the lease if free (or renew it if already ours)."""
        if await self._redis.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            return True
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the lease; False when it is no longer ours."""
        return bool(await self._renew(keys=[self.key], args=[self.owner, str(self.ttl_ms)]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.owner])

    async def holder(self) -> str | None:
        return _text(await self._redis.get(self.key))
