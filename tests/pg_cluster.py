"""A throwaway PostgreSQL cluster for tests and benches: `initdb` into a temporary folder (as
the `postgres` user when run as root: the server refuses root), a free loopback port, trust
authentication on loopback only, stopped and removed at the end."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # the real folder: a symlink in PATH may stand alone
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, root: Path | None = None, *, port: int | None = None, settings: dict | None = None):
        self.bin = bindir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb)")
        self.root = Path(root or tempfile.mkdtemp(prefix="memstore-pg-"))
        self.data = self.root / "data"
        self.port = port or free_port()
        self.settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.root),
                         "max_connections": "100", **(settings or {})}
        self._names = itertools.count(1)
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def standby(self, *, settings: dict | None = None) -> "Cluster":
        """A streaming hot standby of this (running) cluster: `pg_basebackup -R` into a new folder,
        started on another port; it follows this one's WAL and serves reads."""
        other = Cluster(settings={**self.settings, **(settings or {})})
        other.settings["unix_socket_directories"] = str(other.root)
        other.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D", str(other.data),
                  "-R", "-X", "stream", "--checkpoint=fast")
        return other.start()

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def sql(self, query: str, dbname: str = "postgres"):
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(query)
            return cur.fetchone() if cur.description else None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, cwd=self.root)

    def init(self) -> "Cluster":
        self.run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8")
        return self

    def start(self) -> "Cluster":
        opts = " ".join(f"-c {k}={v}" for k, v in self.settings.items()) + f" -p {self.port}"
        self.run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def new_database(self, prefix: str = "t") -> str:
        name = f"{prefix}{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self.init().start()

    def __exit__(self, *exc) -> None:
        self.remove()
