import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_LOCOMO = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "test.db"


def memstore_cli(*args: str, db: Path | None = None, env: dict | None = None, timeout: float = 120):
    """Run the installed console script as a user would."""
    exe = shutil.which("memstore", path=str(Path(sys.executable).parent)) or "memstore"
    full_env = {**os.environ, **(env or {})}
    cmd = [exe] + (["--db", str(db)] if db else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)


def dump(path: Path) -> list[str]:
    """A database's content as SQL: what changed, not where SQLite put it (a checkpoint moves pages)."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# ---- the two engines: the store's contract runs on both ---------------------------------------
ENGINES = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the session (tests/pg_cluster.py). Where PostgreSQL
    is not installed the tests that need it skip, except under CI, where that is a failure."""
    from pg_cluster import Cluster, bindir
    if bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: the engine contract cannot run")
        pytest.skip("PostgreSQL is not installed")
    cluster = Cluster(settings={"fsync": "off"}).init().start()  # fsync off: a test cluster, never kept
    yield cluster
    cluster.remove()


class Databases:
    """New empty databases on one engine: SQLite files in a temporary folder, or databases in the
    session's cluster (dropped when the test ends, or earlier with `drop`)."""

    def __init__(self, engine: str, folder: Path, cluster=None):
        self.engine, self.folder, self.cluster = engine, folder, cluster
        self.made: list = []

    def __call__(self):
        if self.engine == "sqlite":
            target = self.folder / f"db{len(self.made)}.db"
        else:
            target = self.cluster.new_database()
        self.made.append(target)
        return target

    def drop(self, target) -> None:
        if self.engine == "postgres":
            import psycopg
            with psycopg.connect(self.cluster.url(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {target.rsplit('/', 1)[1]} WITH (FORCE)")

    def drop_all(self) -> None:
        for target in self.made:
            self.drop(target)
        self.made = []


@pytest.fixture(params=ENGINES)
def new_db(request, tmp_path):
    """A factory of fresh databases on each engine in turn (parametrised: sqlite, postgres)."""
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    made = Databases(request.param, tmp_path, cluster)
    yield made
    made.drop_all()
