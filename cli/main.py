"""The `memstore` command: typer + rich, a thin layer over `memstore.MemoryStore`. This module
registers every command module on the app (cli/app.py) and runs it, turning every error into
one line on stderr and an exit code."""

from __future__ import annotations

import sqlite3
import sys

import psycopg
from typer import Abort
try:  # typer >= 0.2x carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError, UsageError

from memstore.errors import MemstoreError

# registered in this order, which is the order of `memstore --help`: the store first
from . import store_cmds  # noqa: F401,I001
from . import agent_cmds, audit_cmds, mcp_cmds, serve_cmds, bench_cmds, train_cmds  # noqa: F401,I001
from .app import app

_GLOBAL = ("--db", "--bank", "--timeout")


def _fail(message: str, code: int) -> None:
    print(f"memstore: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(code)


def run() -> None:
    """Entry point: every user error is one line on stderr and exit 1 (2 for a malformed command
    line), never a traceback."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except UsageError as exc:  # unknown command/option, missing or malformed value
        message = exc.format_message()
        stray = next((o for o in _GLOBAL if f"No such option: {o}" in message), None)
        if stray:  # `memstore replay --db F`: say where the global options go
            command = exc.ctx.info_name if exc.ctx is not None else "COMMAND"
            message += f" ({stray} is a global option: put it before the command, e.g. memstore {stray} ... {command})"
        _fail(message, 2)
    except Abort:
        print("memstore: interrupted", file=sys.stderr)
        sys.exit(130)
    except MemstoreError as exc:
        _fail(str(exc), exc.exit_code)
    except (sqlite3.Error, psycopg.Error) as exc:
        _fail(f"database refused the operation: {exc}", 1)
    except UnicodeError:
        _fail("input is not valid UTF-8 text", 1)
    except OverflowError as exc:
        _fail(f"a number is out of range ({exc})", 1)
    except KeyboardInterrupt:
        print("memstore: interrupted", file=sys.stderr)
        sys.exit(130)
    if code == 130:
        print("memstore: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
