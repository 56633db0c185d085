"""No traceback from any command-line input: hypothesis drives the store's commands (every option,
global ones included) with hostile values, in-process through the real entry point, and checks
exit code 0/1/2, exactly one line on stderr on error, and the database unchanged on error.
The commands that load the language model (ingest, ask, demo, bench, train, mcp, browse) are
left out here: their option validation runs before the model loads and is covered in their own
tests; here each example must take milliseconds."""

from __future__ import annotations

import contextlib
import io
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import run
from conftest import dump
from memstore import MemoryStore

EDGES = ["", " ", "-", "--", "@", "@-1", "@1", "@99999999999999999999999", "@١٢", "0", "-1", "1e309", "nan",
         "0001-01-01", "0001-01-01T00:00+01:00", "9999-12-31T23:59:59-01:00", "0999-06-01", "2023-02-30",
         "2023-05-08T25:00", "x" * 5000, "alice\n", "a b", "m0000000000", "mdeadbeef00", "\u202e", "é", "🙂",
         "default", "other", "'; DROP TABLE events; --", "%s%n", "{}", "[]", "null"]
VALUE = st.one_of(st.sampled_from(EDGES),
                  st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40))

# command -> (positional arguments, options that take a value, flags)
COMMANDS = {
    "init": (0, [], []),
    "add": (1, ["--at", "--reason"], []),
    "update": (2, ["--at", "--reason"], []),
    "delete": (1, ["--at", "--reason"], []),
    "restore": (1, ["--at", "--reason"], []),
    "erase": (1, ["--reason"], ["--with-sources"]),
    "replay": (0, ["--as-of"], []),
    "history": (1, [], []),
    "why": (1, [], []),
    "verify": (0, ["--anchor"], ["--all-banks", "--deep"]),
    "head": (0, [], []),
    "stats": (0, [], []),
    "search": (1, ["--as-of", "-k"], []),
    "diff": (2, ["--as-of"], []),
    "timeline": (0, ["--memory", "--query", "--since", "--until", "--max-rows", "--bank"], []),
    "counterfactual": (0, ["--from", "--policy", "--into", "--until"], []),
    "export": (0, ["--parquet"], []),
    "repair": (0, [], []),
}
GLOBAL = ["--bank", "--timeout"]



def invoke(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["memstore", *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    return code, err.getvalue()


REQUIRED = {"counterfactual": ["--from", "--policy", "--into"]}


@st.composite
def command_lines(draw, known_ids):
    """Mostly well-formed command lines (right arity, required options) carrying hostile values,
    sometimes malformed ones."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    positional, options, flags = COMMANDS[name]
    value = st.one_of(VALUE, st.sampled_from(known_ids))
    argv = []
    if draw(st.integers(0, 4)) == 0:
        for option in draw(st.lists(st.sampled_from(GLOBAL), min_size=1, max_size=2, unique=True)):
            argv += [option, draw(VALUE)]
    argv.append(name)
    arity = draw(st.sampled_from([positional] * 6 + [max(positional - 1, 0), positional + 1]))
    argv += [draw(value) for _ in range(arity)]
    chosen = REQUIRED.get(name, []) + draw(st.lists(st.sampled_from(options), max_size=3, unique=True)) if options else []
    for option in dict.fromkeys(chosen):
        argv += [option, draw(value)]
    argv += draw(st.lists(st.sampled_from(flags), max_size=2, unique=True)) if flags else []
    if name == "timeline":  # where the picture goes is not the point here: never outside the test folder
        argv += ["--out", draw(st.sampled_from(["t.png", "t.txt", "missing/t.png", ".png"]))]
    if name == "export":
        argv += ["--parquet", draw(st.sampled_from(["pq", "missing/pq"]))]
    return argv


def test_no_traceback_from_any_cli_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMSTORE_TIMEOUT", "2")
    db = tmp_path / "fuzz.db"
    store = MemoryStore(db, "default")
    live = store.add("Alice lives in Boston", at="2023-05-08").memory_id
    gone = store.add("Alice has a cat", at="2023-05-08").memory_id
    store.delete(gone, at="2023-06-01")
    secret = store.add("Alice's PIN is 4321", at="2023-05-09").memory_id
    store.erase(secret, reason="privacy")
    store.record_input("Alice", "hello", "2023-05-08", input_id="t1")
    MemoryStore(db, "other").add("Bob likes chess", at="2023-05-01")
    store.close()
    known = [live, gone, secret, "default", "other", "2023-05-08", f"1:{'0' * 64}"]

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(command_lines(known))
    def check(argv):
        before = dump(db)
        code, err = invoke(["--db", str(db), *argv])
        assert code in (0, 1, 2), (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        if code != 0:
            lines = err.strip().splitlines()
            if "verify" not in argv:  # a verify that finds a problem reports it on stdout, exit 1
                assert len(lines) == 1 and lines[0].startswith("memstore: error:"), (argv, err)
            assert dump(db) == before, f"{argv} failed but changed the file"

    check()
