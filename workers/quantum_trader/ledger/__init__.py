"""Shared state in one room: every Redis value two workers share has one reader/writer module here.

Layer: above ``core`` and ``market``, below the six worker packages. No module here imports a
worker package; workers import these modules instead of each other.

* :mod:`.universe`  — the universe document reader (``cfg:universe:active`` / ``last_ok``)
* :mod:`.allowlist` — the one allowlist normaliser and tier resolver (snapshot and gate agree)
"""
