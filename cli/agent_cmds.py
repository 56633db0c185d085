"""`memstore ingest`, `ask` and `demo`: the policies over the store, from the command line."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer

from .app import AdapterOpt, AnswerAdapterOpt, EndpointOpt, JsonOpt, ModelOpt, PolicyOpt, State, app, open_store
from .render import console, emit_json, progress_bar, short_time, table



def _agent(policy: str, model, adapter, endpoint, store=None, answer_adapter=None, memories: int | None = None,
           expire_after: tuple[str, ...] = ()):
    from policy.agent import MemoryAgent
    return MemoryAgent(policy=policy, model=model, adapter=adapter, answer_adapter=answer_adapter, endpoint=endpoint,
                       store=store or open_store(create=True), memories=memories, expire_after=expire_after)


@app.command()
def ingest(file: Path, policy: Optional[str] = PolicyOpt, model: Optional[str] = ModelOpt, adapter: Optional[str] = AdapterOpt,
           endpoint: Optional[str] = EndpointOpt,
           conversation: Optional[str] = typer.Option(None, "--conversation", help="LoCoMo sample id, e.g. conv-30"),
           limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N turns."),
           expire_after: list[str] = typer.Option([], "--expire-after", help="--policy stack: expiry rules KIND=DAYS "
                                                  "(KIND: a word or pattern in the memory text, '*' any), repeatable."),
           as_json: bool = JsonOpt) -> None:
    """Feed a dialogue (LoCoMo JSON or chat JSONL: speaker, text, time) through a manager policy.
    Resumable: turns already applied are skipped; an interrupt loses at most the turn in flight."""
    from memstore.ingest import ingest as run_ingest
    from policy.inputs import load_turns

    turns, _ = load_turns(file, conversation)  # validated whole before anything is written
    turns = turns[:limit] if limit else turns
    agent = _agent(policy, model, adapter, endpoint, expire_after=tuple(expire_after))
    policy = agent.policy.name
    with progress_bar(f"ingest ({policy})", quiet=as_json) as tick:
        report = run_ingest(agent.store, agent.policy, turns, progress=lambda n, total, _id: tick(n, total))
    agent.close()
    out = {"bank": State.bank, "policy": policy, "actor": agent.policy.actor, "turns": report.turns,
           "applied": report.applied, "skipped": report.skipped, "ops": report.ops,
           "seconds": round(report.seconds, 1), "extracted_fresh": agent.policy.extracted_fresh}
    if as_json:
        emit_json(out)
    else:
        console.print(f"{report.applied} turns applied, {report.skipped} already there, ops {report.ops} "
                      f"in {report.seconds:.0f} s ({agent.policy.actor})")


@app.command()
def ask(question: str, as_of: Optional[str] = typer.Option(None, "--as-of", help="ISO date/datetime, or @SEQ."),
        explain: bool = typer.Option(False, "--explain", help="Show the memories the agent kept."),
        policy: Optional[str] = PolicyOpt, model: Optional[str] = ModelOpt, adapter: Optional[str] = AdapterOpt,
        answer_adapter: Optional[str] = AnswerAdapterOpt, endpoint: Optional[str] = EndpointOpt,
        memories: Optional[int] = typer.Option(None, "--memories", min=1, max=200,
                                               help="Memories retrieved (default 10; the paper's 60 by option; learned: as trained)."),
        as_json: bool = JsonOpt) -> None:
    """Answer from memory: retrieve up to --memories memories as of --as-of, keep the relevant ones, answer."""
    from memstore.errors import BadInput
    if not question.strip():
        raise BadInput("ask needs a question")
    agent = _agent(policy, model, adapter, endpoint, store=open_store(), answer_adapter=answer_adapter, memories=memories)
    answer = agent.ask(question, as_of=as_of)
    agent.close()
    if as_json:
        emit_json(answer.to_dict())
        return
    console.print(f"[bold]{answer.answer or '(no answer)'}[/]")
    if explain:
        table(f"kept {len(answer.kept)} of {len(answer.retrieved)} retrieved memories", ["score", "id", "text", "valid_at"],
              [(f"{h.score:.3f}", h.id, h.text, short_time(h.valid_at)) for h in answer.kept])


DEMO_DIALOGUE = [
    ("Caroline", "Hi! Quick intro: I live in Boston and I have a golden retriever named Max.", "2023-05-08T10:00:00"),
    ("Melanie", "Nice to meet you! I'm a painter, mostly landscapes.", "2023-05-08T10:01:00"),
    ("Caroline", "I'm vegetarian, so I'm always hunting for good veggie places in town.", "2023-05-08T10:02:00"),
    ("Caroline", "Big news, we adopted a second dog! A beagle called Bella.", "2023-06-12T18:00:00"),
    ("Melanie", "I just sold my first painting at the art fair!", "2023-06-12T18:01:00"),
    ("Caroline", "We moved to Denver last week, so I don't live in Boston anymore.", "2023-07-20T09:00:00"),
    ("Caroline", "Also, I started eating fish again, I'm not vegetarian anymore.", "2023-07-20T09:01:00"),
]


@app.command()
def demo(policy: Optional[str] = PolicyOpt, model: Optional[str] = ModelOpt,
         db: Optional[Path] = typer.Option(None, "--demo-db", help="Keep the demo database here (default: a temp folder).")) -> None:
    """A first-run tour: ingest a short three-session dialogue with the local model, show the ops,
    replay the bank at two times, and explain a deletion."""
    from memstore import MemoryStore
    from memstore.ingest import ingest as run_ingest
    from policy.turns import Turn
    from memstore.clock import to_stamp

    folder = Path(tempfile.mkdtemp(prefix="memstore-demo-")) if db is None else db.parent
    path = db or folder / "demo.db"
    store = MemoryStore(path, "demo")
    console.print(f"[bold]memstore demo[/] - database {path}; loading the local model...")
    agent = _agent(policy, model, None, None, store=store)
    console.print(f"policy {agent.policy.name!r} ({agent.policy.actor})")
    turns = [Turn(f"demo:{i}", s, t, to_stamp(w), f"session {1 + (w > '2023-06') + (w > '2023-07')}")
             for i, (s, t, w) in enumerate(DEMO_DIALOGUE, 1)]
    with progress_bar("ingesting the dialogue") as tick:
        report = run_ingest(store, agent.policy, turns, progress=lambda n, total, _id: tick(n, total))
    console.print(f"ingested {report.applied} turns in {report.seconds:.0f} s; ops: {report.ops}")
    table("what the manager did", ["seq", "op", "memory", "text", "observed", "because of the turn"],
          [(e.seq, e.op + ("" if e.outcome == "applied" else " (refused)"), e.memory_id or "-",
            e.text or (e.prev_text and f"(was) {e.prev_text}") or "", short_time(e.valid_at),
            (e.cause or {}).get("fact") or e.reason) for e in store.events()])
    for when in ("2023-06-01", None):
        memories = store.replay(when)
        table(f"the bank as of {when or 'now'}", ["id", "text", "valid_at"],
              [(m.id, m.text, short_time(m.valid_at)) for m in memories])
    deleted = [e for e in store.events() if e.op == "DELETE" and e.outcome == "applied"]
    updated = [e for e in store.events() if e.op == "UPDATE" and e.outcome == "applied"]
    target = deleted[-1] if deleted else updated[-1] if updated else None
    if target is None:
        console.print("the model made no DELETE or UPDATE this time, so there is no change to explain")
    else:
        why = store.why(target.memory_id)
        console.print(f"[bold]why[/] {target.memory_id}: {why['summary']}")
        for step in why["chain"]:
            for src in step["sources"]:
                console.print(f"  source turn {src['input_id']} ({short_time(src['time'])}) {src['speaker']}: {src['text']}")
        if not deleted:
            console.print("(the model made no DELETE this time; explained its last UPDATE instead)")
    answer = agent.ask("Where does Caroline live now?")
    console.print(f"ask 'Where does Caroline live now?' -> [bold]{answer.answer}[/] "
                  f"(kept {len(answer.kept)} of {len(answer.retrieved)} memories)")
    console.print(f"try: memstore --db {path} --bank demo replay --as-of 2023-06-30")
    agent.close()
