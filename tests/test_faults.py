"""Fault injection, as SQLite tests itself: the store's writes under injected I/O errors (libfiu's
POSIX preload through `fiu-run`, Debian's fiu-utils: each write, fsync, open and truncate call an
operation makes failed in turn, with the errno a disk gives) and on a filesystem that is really
full (a small tmpfs). Every failure must be one memstore error, nothing acknowledged may be lost,
the file must verify once the fault clears, and the next write must succeed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memstore import MemoryStore
from memstore.errors import MemstoreError

HERE = Path(__file__).parent


def _need(tool_ok: bool, what: str) -> None:
    if not tool_ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required in CI (.ci/run installs it)")
        pytest.skip(f"{what} is not available here")


def check_after(path: Path, acknowledged: list[str]) -> None:
    """Opened afresh, with no fault: every acknowledged memory is there and the file verifies."""
    store = MemoryStore(path, "faults", create=False)
    assert store.verify(all_banks=True, deep=True)["ok"]
    alive = {m.id for m in store.replay()}
    erased_or_ended = {e.memory_id for e in store.events() if e.op in ("ERASE", "DELETE")}
    missing = [m for m in acknowledged if m not in alive and m not in erased_or_ended]
    assert missing == [], f"{len(missing)} acknowledged memories lost"
    store.add("after the faults")
    store.close()


def test_every_injected_io_error_is_one_line_and_loses_nothing(tmp_path):
    _need(shutil.which("fiu-run") is not None, "fiu-run (Debian package fiu-utils)")
    path = tmp_path / "faults.db"
    proc = subprocess.run(["fiu-run", "-x", "-f", "", sys.executable, str(HERE / "fault_writer.py"), str(path), "40"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{report['trials']} injections tried, {report['fired']} fired, {len(report['failures'])} refused "
          f"with one line; per point: {report['points']}")
    assert report["crashes"] == [] and report["broken"] == [] and report["next_write_failed"] == []
    assert report["trials"] >= 300 and report["fired"] >= 300
    assert all(report["points"].get(p, 0) > 0 for p in ("posix/io/rw/pwrite", "posix/io/sync/fdatasync",
                                                         "posix/io/oc/open"))
    assert all("\n" not in message and message for message in report["failures"])
    check_after(path, report["acknowledged"])


def test_a_full_disk_refuses_writes_in_one_line_and_recovers(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode == 0
    _need(mounted, "mounting a small tmpfs (root)")
    try:
        path = mount / "full.db"
        store = MemoryStore(path, "faults")
        acknowledged, failures = [], []
        filler = mount / "filler"
        with open(filler, "wb") as f:  # leave a little room
            try:
                f.write(b"\0" * (3 * 2**20 - 600 * 2**10))
            except OSError:
                pass
        for i in range(400):  # single adds, then blocks, until the disk is full
            try:
                if i % 4:
                    acknowledged.append(store.add(f"fact number {i} " + "x" * 200).memory_id)
                else:
                    with store.transaction():
                        block = [store.add(f"block {i} fact {j} " + "y" * 200).memory_id for j in range(20)]
                    acknowledged += block  # acknowledged once the block's commit returned
            except MemstoreError as exc:
                failures.append(str(exc))
        assert failures, "the disk never filled"
        assert all("\n" not in f and ("full" in f or "durable" in f or "I/O" in f) for f in failures), set(failures)
        filler.unlink()  # the fault clears
        acknowledged.append(store.add("after the disk had room again").memory_id)
        store.close()
        check_after(path, acknowledged)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
