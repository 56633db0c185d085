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
