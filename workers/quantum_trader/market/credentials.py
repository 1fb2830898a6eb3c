"""Exchange API credentials: only from the environment or Secret-mounted files, never logged.

Sources, first match wins:

1. ``QT_EXCHANGE_KEY`` and ``QT_EXCHANGE_SECRET`` (for ``qt run`` on a laptop);
2. files ``apiKey`` and ``secret`` in ``QT_EXCHANGE_CREDENTIALS_DIR``, default
   ``/var/run/secrets/quantum/exchange`` (the operator mounts the Secret named by
   ``spec.exchange.credentialsSecret`` there).

The profile and its ConfigMap never hold keys: ``credentialsSecret`` is only a
Secret's *name*. :class:`Credentials` masks itself in ``repr``/``str`` so a stray
log line or traceback cannot print the values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

ENV_KEY: Final = "QT_EXCHANGE_KEY"
ENV_SECRET: Final = "QT_EXCHANGE_SECRET"
ENV_DIR: Final = "QT_EXCHANGE_CREDENTIALS_DIR"
DEFAULT_DIR: Final = "/var/run/secrets/quantum/exchange"
KEY_FILE: Final = "apiKey"
SECRET_FILE: Final = "secret"

Source = Literal["env", "files"]


class CredentialsError(ValueError):
    """Credentials are configured half-way (a key without a secret, an unreadable file). Never holds values."""


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    api_key: str
    secret: str
    source: Source

    def __repr__(self) -> str:
        return f"Credentials(api_key='***', secret='***', source={self.source!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path} ({exc.strerror})") from None


def load_credentials(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The configured credentials, ``None`` when none are configured; :class:`CredentialsError` when half-configured."""
    environ = os.environ if env is None else env
    key = environ.get(ENV_KEY, "").strip()
    secret = environ.get(ENV_SECRET, "").strip()
    if key or secret:
        if not (key and secret):
            raise CredentialsError(f"set both {ENV_KEY} and {ENV_SECRET} (only one is set)")
        return Credentials(api_key=key, secret=secret, source="env")
    folder = Path(environ.get(ENV_DIR, "") or DEFAULT_DIR)
    key_path, secret_path = folder / KEY_FILE, folder / SECRET_FILE
    has_key, has_secret = key_path.is_file(), secret_path.is_file()
    if not (has_key or has_secret):
        return None
    if not (has_key and has_secret):
        raise CredentialsError(f"{folder} must hold both '{KEY_FILE}' and '{SECRET_FILE}' (only one is present)")
    key, secret = _read(key_path), _read(secret_path)
    if not (key and secret):
        raise CredentialsError(f"'{KEY_FILE}' or '{SECRET_FILE}' in {folder} is empty")
    return Credentials(api_key=key, secret=secret, source="files")
