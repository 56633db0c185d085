"""The CLI as a user drives it: JSON shapes, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import memstore_cli


def ok_json(*args, db):
    proc = memstore_cli(*args, "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_one_line_error(proc, needle: str):
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in lines[0], lines[0]


def test_cli_round_trip(tmp_path):
    db = tmp_path / "cli.db"
    assert ok_json("init", db=db)["ok"]
    dog = ok_json("add", "Caroline has a dog named Max", "--at", "2023-05-08", "--reason", "said so", db=db)
    assert dog["id"] and dog["seq"] == 1
    home = ok_json("add", "Caroline lives in Boston", "--at", "2023-05-08T10:00:00", db=db)
    ok_json("update", dog["id"], "Caroline has two dogs, Max and Bella", "--at", "2023-06-01", db=db)
    ok_json("delete", home["id"], "--at", "2023-07-01", "--reason", "moved to Denver", db=db)

    early = ok_json("replay", "--as-of", "2023-05-31", db=db)
    assert {m["text"] for m in early} == {"Caroline has a dog named Max", "Caroline lives in Boston"}
    assert all({"id", "text", "valid_at"} <= set(m) for m in early)
    assert [m["text"] for m in ok_json("replay", db=db)] == ["Caroline has two dogs, Max and Bella"]
    assert len(ok_json("replay", "--as-of", "@2", db=db)) == 2

    hist = ok_json("history", dog["id"], db=db)
    assert [e["op"] for e in hist] == ["ADD", "UPDATE"]
    assert all({"seq", "op", "text", "reason", "actor"} <= set(e) for e in hist)
    why = ok_json("why", home["id"], db=db)
    assert why["status"] == "deleted" and why["event"]["reason"] == "moved to Denver"
    restored = ok_json("restore", home["id"], db=db)
    assert restored["op"] == "RESTORE" and restored["text"] == "Caroline lives in Boston"
    assert ok_json("verify", db=db)["ok"] is True
    stats = ok_json("stats", db=db)
    assert stats["events"] == 5 and stats["live_memories"] == 2
    out = ok_json("export", "--parquet", str(tmp_path / "pq"), db=db)
    assert out["events"]["rows"] == 5 and out["bank"]["rows"] == 2
    erased = ok_json("erase", dog["id"], "--reason", "user asked", db=db)
    assert erased["op"] == "ERASE"
    assert ok_json("verify", db=db)["ok"] is True
    # people get tables, not JSON
    proc = memstore_cli("replay", db=db)
    assert proc.returncode == 0 and "Caroline lives in Boston" in proc.stdout


def test_cli_errors_are_one_line(tmp_path):
    db = tmp_path / "e.db"
    ok_json("init", db=db)
    gone = ok_json("add", "x", "--at", "2023-01-01", db=db)["id"]
    ok_json("delete", gone, db=db)
    other = json.loads(memstore_cli("--bank", "other", "add", "secret", "--json", db=db).stdout)["id"]

    assert_one_line_error(memstore_cli("update", "mnope", "y", db=db), "no memory 'mnope'")
    assert_one_line_error(memstore_cli("update", gone, "y", db=db), "deleted")
    assert_one_line_error(memstore_cli("delete", gone, db=db), "deleted")
    assert_one_line_error(memstore_cli("add", "y", "--at", "last tuesday", db=db), "bad timestamp")
    assert_one_line_error(memstore_cli("replay", "--as-of", "2023-13-45", db=db), "bad timestamp")
    assert_one_line_error(memstore_cli("history", other, db=db), "no memory")  # another bank's id
    assert_one_line_error(memstore_cli("--bank", "bad bank!", "replay", db=db), "bad bank name")
    assert_one_line_error(memstore_cli("replay", db=tmp_path / "missing.db"), "no memstore database")
    (tmp_path / "corrupt.db").write_bytes(b"this is not sqlite" * 100)
    assert_one_line_error(memstore_cli("replay", db=tmp_path / "corrupt.db"), "corrupt")
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    assert_one_line_error(memstore_cli("replay", db=foreign), "not a memstore database")

    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        proc = memstore_cli("--timeout", "0.5", "add", "while locked", db=db)
        assert_one_line_error(proc, "locked")
    finally:
        locker.execute("ROLLBACK")
    # nothing was lost or half-written by any of the failures
    assert ok_json("verify", "--all-banks", db=db)["ok"]
    assert ok_json("stats", db=db)["events"] == 2


@pytest.mark.parametrize("args", [["why", "mnope"], ["restore", "mnope"], ["erase", "mnope", "--reason", "x"]])
def test_unknown_ids(tmp_path, args):
    db = tmp_path / "u.db"
    ok_json("init", db=db)
    assert_one_line_error(memstore_cli(*args, db=db), "no memory")


def test_global_option_after_the_command_and_unknown_banks_are_explained(tmp_path):
    db = tmp_path / "g.db"
    assert memstore_cli("init", db=db).returncode == 0
    assert memstore_cli("--bank", "bob", "add", "Bob lives in Paris", db=db).returncode == 0
    late = memstore_cli("replay", "--db", str(db))
    assert late.returncode == 2 and "--db is a global option" in late.stderr and "memstore --db ... replay" in late.stderr
    typo = memstore_cli("--bank", "bobb", "replay", "--json", db=db)
    assert typo.returncode == 0 and json.loads(typo.stdout) == [] and "bank 'bobb' has no events" in typo.stderr
    assert "banks: bob" in typo.stderr
    diff = memstore_cli("--bank", "bob", "diff", "bob", "nosuchbank", db=db)
    assert diff.returncode == 1 and diff.stderr.strip() == f"memstore: error: no bank 'nosuchbank' in {db} (banks: bob)"


def test_help_texts_show_flags_as_flags_and_keep_their_words():
    """Every command's help, walked through the real app: a flag shows no value placeholder, and
    bracketed words (`[browse]`) are printed, not swallowed as markup."""
    import typer
    from typer.testing import CliRunner

    from cli.main import app

    root = typer.main.get_command(app)
    paths, todo = [], [[]]
    while todo:
        path = todo.pop()
        paths.append(path)
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        todo += [path + [name] for name in getattr(cmd, "commands", {})]
    assert len(paths) > 25
    runner = CliRunner()
    for path in paths:
        out = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert out.exit_code == 0, (path, out.output)
        assert "<bool>" not in out.output and "the  extra" not in out.output, (path, out.output)
    assert "[browse] extra" in " ".join(runner.invoke(app, ["browse", "--help"]).output.split())
