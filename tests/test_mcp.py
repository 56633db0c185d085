"""`memstore mcp` driven by the MCP SDK's own stdio client, as a desktop MCP client would: the
server is spawned as a subprocess and spoken to over its stdin/stdout."""

import json
import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from conftest import memstore_cli
from memstore import MemoryStore
from integrations.mem0 import scope_bank

STORE_TOOLS = {"observe", "add_memory", "get_memory", "list_memories", "search_memories", "update_memory",
               "delete_memory", "delete_all_memories", "ask", "memory_history", "why_memory", "restore_memory"}


def params(db: Path, *extra: str) -> StdioServerParameters:
    exe = shutil.which("memstore", path=str(Path(sys.executable).parent)) or "memstore"
    return StdioServerParameters(command=exe, args=["mcp", "--db", str(db), *extra], env=dict(os.environ))


async def call(client: Client, tool: str, **args):
    """A tool's structured result; a tool error comes back as ('error', its message)."""
    result = await client.call_tool(tool, args)
    if result.is_error:
        return "error", result.content[0].text
    return result.structured_content


def run(flow, db: Path, *extra: str):
    async def main():
        async with Client(params(db, *extra), read_timeout_seconds=600) as client:
            return await flow(client)
    return anyio.run(main)


def test_store_tools_over_stdio(db_path):
    async def flow(client):
        info = client.server_info
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == STORE_TOOLS  # erase_memory only with --allow-erase
        assert "as_of" in tools["search_memories"].input_schema["properties"]
        assert {"user_id", "agent_id", "run_id", "bank"} <= set(tools["list_memories"].input_schema["properties"])
        assert tools["list_memories"].annotations.read_only_hint is True
        assert tools["delete_all_memories"].annotations.destructive_hint is True

        home = await call(client, "add_memory", text="Alice lives in Boston", at="2023-05-08")
        assert home["event"] == "ADD" and home["memory"] == "Alice lives in Boston"
        a = home["id"]
        await call(client, "update_memory", memory_id=a, text="Alice lives in Denver", at="2023-07-20",
                   reason="she moved")
        dog = (await call(client, "add_memory", text="Alice has a dog named Max", at="2023-05-09",
                          metadata={"topic": "pets"}))["id"]

        before = await call(client, "search_memories", query="Which city does Alice live in?", k=1, as_of="2023-06-01")
        after = await call(client, "search_memories", query="Which city does Alice live in?", k=1, as_of="2023-08-01")
        assert before["memories"][0]["memory"] == "Alice lives in Boston"
        assert after["memories"][0]["memory"] == "Alice lives in Denver"
        pets = await call(client, "search_memories", query="pets", filters={"topic": "pets"})
        assert [m["id"] for m in pets["memories"]] == [dog] and pets["memories"][0]["metadata"] == {"topic": "pets"}
        far = await call(client, "search_memories", query="quantum chromodynamics lecture notes", threshold=0.9)
        assert far["memories"] == []  # nothing that unrelated comes back at a high threshold
        assert (await call(client, "get_memory", memory_id=a))["memory"] == "Alice lives in Denver"
        assert (await call(client, "get_memory", memory_id=a, as_of="2023-06-01"))["memory"] == "Alice lives in Boston"

        why = await call(client, "why_memory", memory_id=a)
        assert why["status"] == "live" and "she moved" in why["summary"]
        assert [e["op"] for e in (await call(client, "memory_history", memory_id=a))["events"]] == ["ADD", "UPDATE"]

        await call(client, "delete_memory", memory_id=dog, reason="test")
        assert dog not in {m["id"] for m in (await call(client, "list_memories"))["memories"]}
        restored = await call(client, "restore_memory", memory_id=dog)
        assert restored["op"] == "RESTORE"
        page = await call(client, "list_memories", limit=1)
        assert page["total"] == 2 and len(page["memories"]) == 1 and page["next_offset"] == 1
        rest = await call(client, "list_memories", limit=1, offset=1)
        assert rest["next_offset"] is None and rest["memories"][0]["id"] != page["memories"][0]["id"]
        assert {m["id"] for m in (await call(client, "list_memories", as_of="2023-05-08"))["memories"]} == {a}

        # scopes: an id of another bank reads as unknown; user/agent/run ids select mem0-style banks
        bob = (await call(client, "add_memory", text="Bob likes chess", bank="bob"))["id"]
        assert (await call(client, "why_memory", memory_id=bob, bank="bob"))["status"] == "live"
        carol = (await call(client, "add_memory", text="Carol plays golf", user_id="carol"))["id"]
        plan = (await call(client, "add_memory", text="Carol's trip is in May", user_id="carol", run_id="trip"))["id"]
        assert [m["id"] for m in (await call(client, "list_memories", user_id="carol"))["memories"]] == [carol]
        assert [m["id"] for m in (await call(client, "list_memories", user_id="carol", run_id="trip"))["memories"]] == [plan]
        cleared = await call(client, "delete_all_memories", user_id="carol", run_id="trip")
        assert cleared["deleted"] == 1 and (await call(client, "list_memories", user_id="carol", run_id="trip"))["total"] == 0
        assert (await call(client, "list_memories", user_id="carol"))["total"] == 1

        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "memstore://banks" in resources
        banks = await client.read_resource("memstore://banks")
        assert "bob" in banks.contents[0].text
        templates = {r.uri_template for r in (await client.list_resource_templates()).resource_templates}
        assert {"memstore://banks/{bank}/memories", "memstore://banks/{bank}/memories/as-of/{as_of}"} <= templates
        then = json.loads((await client.read_resource("memstore://banks/default/memories/as-of/2023-05-08")).contents[0].text)
        assert [m["id"] for m in then] == [a]
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert prompts == {"answer_from_memory", "audit_memory"}
        told = await client.get_prompt("audit_memory", {"memory_id": a})
        assert a in told.messages[0].content.text and "why_memory" in told.messages[0].content.text

        # bad input: a one-line tool error each, and the server keeps serving
        errors = [
            await call(client, "why_memory", memory_id="mdeadbeef00"),
            await call(client, "why_memory", memory_id=bob),
            await call(client, "restore_memory", memory_id=a),
            await call(client, "list_memories", as_of="last tuesday"),
            await call(client, "search_memories", query="x", as_of="2023-13-45"),
            await call(client, "add_memory", text="  "),
            await call(client, "add_memory", text="x", bank="bad bank!"),
            await call(client, "list_memories", bank="bob", user_id="carol"),
            await call(client, "update_memory", memory_id=a, text="Alice lives in Paris", at="2023-06-01"),
            await call(client, "add_memory", text="Erin likes jazz", usr_id="erin"),  # a misspelled scope
            await call(client, "search_memories", query="x", k=0),
            await call(client, "list_memories", filters={"x": {"between": 1}}),
            await call(client, "get_memory", memory_id=dog, as_of="2023-01-01"),
        ]
        for kind, message in errors:
            assert kind == "error" and "\n" not in message and message, message
        assert "no memory" in errors[0][1] and "no memory" in errors[1][1]
        assert "not deleted" in errors[2][1] and "bad timestamp" in errors[3][1]
        assert "no argument 'usr_id'" in errors[9][1] and "user_id" in errors[9][1]
        assert "operator" in errors[11][1] and "no memory" in errors[12][1]
        return a, dog, bob, carol, info

    a, dog, bob, carol, info = run(flow, db_path)
    assert info.name == "memstore" and info.version and info.version != "0"
    store = MemoryStore(db_path, "default", create=False)
    ops = [(e.op, e.outcome) for e in store.events()]
    assert ops == [("ADD", "applied"), ("UPDATE", "applied"), ("ADD", "applied"), ("DELETE", "applied"),
                   ("RESTORE", "applied")], "a refused call must leave the file as it was"
    assert store.verify(all_banks=True)["ok"]
    assert sorted(store.banks()) == sorted(["default", "bob", scope_bank(user_id="carol"),
                                            scope_bank(user_id="carol", run_id="trip")])


def test_erase_only_when_allowed(db_path):
    async def flow(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "erase_memory" in tools
        mid = (await call(client, "add_memory", text="Dave's PIN is xyzzy-4321"))["id"]
        out = await call(client, "erase_memory", memory_id=mid, reason="privacy request")
        assert out["op"] == "ERASE"
        assert (await call(client, "why_memory", memory_id=mid))["status"] == "erased"
        return mid

    run(flow, db_path, "--allow-erase")
    assert b"xyzzy" not in db_path.read_bytes()


def test_bad_database_fails_before_serving(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    proc = memstore_cli("mcp", "--db", str(junk), timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith("memstore: error:") and len(proc.stderr.splitlines()) == 1


@pytest.mark.integration
def test_observe_and_ask_with_the_real_model(db_path):
    async def flow(client):
        seen = await call(client, "observe", message="I just adopted a beagle called Bella!", speaker="Alice",
                          time="2023-06-12T10:00", user_id="alice")
        assert seen["events"] and all(e["op"] in ("ADD", "UPDATE", "DELETE", "NOOP") for e in seen["events"])
        answer = await call(client, "ask", question="What is the name of Alice's dog?", user_id="alice")
        hits = await call(client, "search_memories", query="dog", user_id="alice")
        nothing = await call(client, "ask", question="What is the name of Alice's dog?", user_id="alice",
                             as_of="2023-06-01")
        return seen, answer, hits, nothing

    seen, answer, hits, nothing = run(flow, db_path)
    assert any("Bella" in m["memory"] for m in hits["memories"]), (seen, hits)
    assert "Bella" in answer["answer"]
    assert nothing["memories"] == []  # nothing was known before the message
