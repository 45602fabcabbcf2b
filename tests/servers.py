"""Real PostgreSQL and Redis servers for the tests, on free loopback ports in temp folders.

PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` OS
user (Debian's package creates it) and the server runs through `runuser`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a running loop (async tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, tries: int = 300) -> None:
    for _ in range(tries):  # bounded: 300 × 50 ms
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port}")


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """initdb once, then start/stop/restart the same cluster on the same port."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        assert bindir is not None
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="ess-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, str] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            # Popen(user=…) execs the server itself: signals reach it, not a wrapper.
            self._as = {"user": "postgres", "group": _group_name(user.pw_gid)}
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data),
                        "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                        "--locale=C.UTF-8"],
                       check=True, capture_output=True, **self._as)  # type: ignore[call-overload]
        self._names = itertools.count(1)
        self.template = ""

    def start(self) -> None:
        # fsync off: a test server only ever stops cleanly; kill -9 hits `ess serve`, not it.
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            [str(self.bindir / "postgres"), "-D", str(self.data),
             "-p", str(self.port), "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self._as)
        _wait_port(self.port, self.proc, "postgres")
        # The port opens before the server accepts connections: wait until it does.
        for _ in range(200):
            try:
                _run(self._select_one())
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                time.sleep(0.05)
        raise RuntimeError("postgres does not accept connections")

    async def _select_one(self) -> None:
        conn = await asyncpg.connect(self.url("postgres"), timeout=2)
        await conn.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url("postgres"), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def new_database(self, migrated: bool = True) -> str:
        """A fresh database (migrated by cloning a template migrated once); its URL."""
        name = f"t{next(self._names)}"
        if migrated:
            if not self.template:
                self.template = "ess_template"
                _run(self._admin(f"CREATE DATABASE {self.template}"))
                from config.settings import Settings
                from storage.postgres import migrate

                _run(migrate(Settings(database_url=self.url(self.template))))
            _run(self._admin(f"CREATE DATABASE {name} TEMPLATE {self.template}"))
        else:
            _run(self._admin(f"CREATE DATABASE {name}"))
        return self.url(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """redis-server with many numbered databases: one per test keeps tests apart."""

    DATABASES = 1024

    def __init__(self, appendonly: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ess-redis-"))
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None
        self._dbs = itertools.count(1)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes" if self.appendonly else "no",
             "--appendfsync", "always", "--dir", str(self.root),
             "--databases", str(self.DATABASES)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def new_url(self) -> str:
        db = next(self._dbs)
        assert db < self.DATABASES
        return f"redis://127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def have_postgres() -> bool:
    return postgres_bin() is not None and (os.geteuid() != 0 or _has_user("postgres"))


def have_redis() -> bool:
    return shutil.which("redis-server") is not None


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
