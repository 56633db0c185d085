"""`memstore serve` as a client sees it, with real uvicorn processes and HTTP: token scoping (a
token for bank A cannot read, write or erase bank B; a revoked token is refused; erase needs the
erase right), one clear status per denial, bounded bodies, and two `serve` processes over one
PostgreSQL database acting as one store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import memstore_cli
from pg_cluster import free_port
from memstore import MemoryStore


def issue(db, *args: str) -> str:
    proc = memstore_cli("token", "issue", *args, "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["token"]


class Server:
    def __init__(self, db, log: Path):
        self.port = free_port()
        exe = shutil.which("memstore", path=str(Path(sys.executable).parent))
        self.log = log
        self.proc = subprocess.Popen([exe, "--db", str(db), "serve", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/openapi.json", timeout=1)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, log.read_text()
                time.sleep(0.2)
        raise AssertionError("memstore serve did not start")

    def call(self, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = {**kw.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture
def served(tmp_path):
    db = tmp_path / "team.db"
    assert memstore_cli("init", db=db).returncode == 0
    server = Server(db, tmp_path / "serve.log")
    yield db, server
    server.stop()


def test_tokens_are_scoped_to_banks_and_rights(served):
    db, server = served
    alice = issue(db, "--bank", "alice", "--right", "read", "--right", "write", "--note", "alice's agent")
    reader = issue(db, "--bank", "*", "--right", "read")
    eraser = issue(db, "--bank", "alice", "--right", "erase")
    m = server.call("POST", "/banks/alice/memories", alice, json={"text": "Alice lives in Boston", "at": "2023-05-08"})
    assert m.status_code == 201, m.text
    mid = m.json()["memory_id"]
    assert server.call("PUT", f"/banks/alice/memories/{mid}", alice,
                       json={"text": "Alice lives in Denver", "at": "2023-06-01"}).status_code == 200
    assert [x["text"] for x in server.call("GET", "/banks/alice/memories?as_of=2023-05-31", reader).json()["memories"]] \
        == ["Alice lives in Boston"]
    assert server.call("GET", f"/banks/alice/memories/{mid}/why", reader).json()["status"] == "live"
    assert server.call("GET", "/banks/alice/verify?deep=true", reader).json()["ok"]
    head = server.call("GET", "/banks/alice/head", reader).json()
    assert server.call("GET", f"/banks/alice/verify?anchor={head['anchor']}", reader).json()["ok"]

    # bank B with bank A's token: read, write and erase all refused
    server.call("POST", "/banks/bob/memories", issue(db, "--bank", "bob", "--right", "write"), json={"text": "Bob"})
    for method, path, body in [("GET", "/banks/bob/memories", None), ("POST", "/banks/bob/memories", {"text": "x"}),
                               ("POST", f"/banks/bob/memories/{mid}/erase", {"reason": "x"})]:
        assert server.call(method, path, alice, json=body).status_code == 403
    # erase needs the erase right; the reader may not write
    assert server.call("POST", f"/banks/alice/memories/{mid}/erase", alice, json={"reason": "asked"}).status_code == 403
    assert server.call("POST", "/banks/alice/memories", reader, json={"text": "x"}).status_code == 403
    r = server.call("POST", f"/banks/alice/memories/{mid}/erase", eraser, json={"reason": "asked to forget"})
    assert r.status_code == 200 and r.json()["op"] == "ERASE"
    # no token, a wrong token, a revoked token: 401
    assert server.call("GET", "/banks/alice/memories").status_code == 401
    assert server.call("GET", "/banks/alice/memories", "mst_not-a-token").status_code == 401
    token_id = json.loads(memstore_cli("token", "list", "--json", db=db).stdout)[0]["id"]
    assert memstore_cli("token", "revoke", token_id, db=db).returncode == 0
    r = server.call("GET", "/banks/alice/memories", alice)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    # errors are one status and one line; bodies are bounded
    assert server.call("GET", "/banks/alice/memories/nope/why", reader).status_code == 404
    assert server.call("GET", "/banks/alice/memories?as_of=not-a-time", reader).status_code == 400
    big = server.call("POST", "/banks/alice/memories", eraser, content=b"x" * 100_000,
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    log = server.log.read_text()
    assert log.count("denied") >= 7 and "has no erase right on bank alice" in log and mid not in log.split("denied")[0]
    # the tokens are kept hashed: no secret in the database
    store = MemoryStore(db, create=False)
    assert all(alice not in str(tuple(r)) for r in store.conn.execute("SELECT * FROM tokens"))


def test_two_servers_over_one_postgres_database_are_one_store(tmp_path, pg_cluster):
    url = pg_cluster.new_database("serve")
    assert memstore_cli("init", db=url).returncode == 0
    token = issue(url, "--bank", "team", "--right", "read", "--right", "write")
    servers = [Server(url, tmp_path / f"serve{i}.log") for i in range(2)]
    try:
        acknowledged = []
        for i in range(40):
            r = servers[i % 2].call("POST", "/banks/team/memories", token, json={"text": f"fact {i}"})
            assert r.status_code == 201, r.text
            acknowledged.append(r.json()["memory_id"])
        for server in servers:
            got = server.call("GET", "/banks/team/memories", token).json()["memories"]
            assert sorted(m["id"] for m in got) == sorted(acknowledged)
            assert server.call("GET", "/banks/team/verify", token).json()["ok"]
    finally:
        for server in servers:
            server.stop()
