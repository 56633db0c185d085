"""A small point-in-time desk scenario, written by the project itself (no outside data): a PM and
an analyst chat over a quarter while a position book changes, a company's guidance is superseded
mid-quarter, an investment thesis is revised and price targets go stale; questions are asked as
of dates at which their answer differs.

    python examples/desk/make_desk.py --out examples/desk            # desk_chat.jsonl, desk_qa.jsonl
    python examples/desk/make_desk.py --books 5 --seed 1 --out /tmp/d # a bigger, different desk

Each "book" is one company followed through the quarter with its own numbers (drawn from the
seed); chatter that should be remembered by nobody is mixed in. The chat is memstore's chat JSONL
(`memstore ingest`), the questions are the own-QA format (evaluation/own.py) with `evidence` naming
the messages each answer rests on."""

from __future__ import annotations

import argparse
import json
import random
from datetime import date, timedelta
from pathlib import Path

COMPANIES = ["Acme Robotics", "Boltline Energy", "Crux Semiconductors", "Dynamo Foods", "Everfield Bank",
             "Fjord Shipping", "Granite Health", "Helix Software"]
TICKERS = ["ACME", "BOLT", "CRUX", "DYNO", "EVRF", "FJRD", "GRNT", "HLXS"]
THESES = [("margin expansion from the new plant", "a buyback story, because the plant is delayed"),
          ("share gains in data centres", "a cost-cutting story, since data-centre share is flat"),
          ("pricing power after the merger", "a balance-sheet repair story after the merger stalled"),
          ("a recovery in volumes", "a dividend story, volumes did not recover")]
CHATTER = ["The coffee machine on the fourth floor is broken again.", "Anyone up for lunch at the noodle place?",
           "The risk meeting moved to Thursday at 3pm.", "My train was late this morning.",
           "IT says the terminals get patched tonight.", "Don't forget the compliance training is due Friday.",
           "The printer jammed, I used the one by reception.", "Nice weather for once."]
PM, ANALYST = "Dana", "Raj"
START = date(2025, 1, 6)


def at(day: int, hour: int = 9, minute: int = 0) -> str:
    return f"{START + timedelta(days=day)}T{hour:02d}:{minute:02d}"


def book(rng: random.Random, i: int) -> tuple[list[tuple], list[dict]]:
    """One company through the quarter: (day, hour, speaker, text, key) messages and its questions
    (evidence given as message keys, resolved to ids by the caller)."""
    name, ticker = COMPANIES[i % len(COMPANIES)], TICKERS[i % len(TICKERS)]
    s1, s2, s3 = (rng.randrange(10, 60) * 10 for _ in range(3))
    g1 = rng.randrange(15, 40) / 10
    g2 = round(g1 - rng.randrange(2, 6) / 10, 1)
    t1 = rng.randrange(40, 90)
    t2 = t1 + rng.randrange(5, 15)
    old, new = THESES[rng.randrange(len(THESES))]
    d = [rng.randrange(0, 6), rng.randrange(12, 20), rng.randrange(28, 40), rng.randrange(50, 62), rng.randrange(72, 80)]
    msgs = [
        (d[0], 9, PM, f"We opened a position in {ticker} ({name}): {s1} shares.", "open"),
        (d[0], 10, ANALYST, f"My thesis on {ticker} is {old}.", "thesis1"),
        (d[0] + 1, 11, ANALYST, f"{name} guided full-year revenue to ${g1} billion.", "guide1"),
        (d[0] + 2, 15, ANALYST, f"I set a price target of ${t1} on {ticker}.", "target1"),
        (d[1], 9, PM, f"We trimmed {ticker}, we now hold {s2} shares.", "trim"),
        (d[2], 14, ANALYST, f"{name} cut its full-year revenue guidance to ${g2} billion.", "guide2"),
        (d[2] + 1, 10, ANALYST, f"I raised my {ticker} price target to ${t2}.", "target2"),
        (d[3], 9, PM, f"Added to {ticker} today, the position is now {s3} shares.", "add"),
        (d[3] + 2, 16, ANALYST, f"I revised the {ticker} thesis: it is now {new}.", "thesis2"),
        (d[4], 9, PM, f"We closed the {ticker} position entirely, we hold no shares now.", "close"),
    ]

    def q(question, answer, day, evidence, category=4):
        return {"question": question, "answer": answer, "asked_at": at(day, 18, 5 * i), "evidence": evidence,
                "category": category}

    held = f"How many {ticker} shares do we hold?"
    guide = f"What is {name}'s full-year revenue guidance?"
    target = f"What is Raj's price target on {ticker}?"
    thesis = f"What is our thesis on {ticker}?"
    qas = [
        q(held, f"{s1} shares", d[1] - 1, ["open"]), q(held, f"{s2} shares", d[2], ["trim"]),
        q(held, f"{s3} shares", d[4] - 1, ["add"]), q(held, "none, the position is closed", d[4] + 3, ["close"]),
        q(guide, f"${g1} billion", d[2] - 1, ["guide1"]), q(guide, f"${g2} billion", d[3], ["guide2"]),
        q(target, f"${t1}", d[1], ["target1"]), q(target, f"${t2}", d[3], ["target2"]),
        q(thesis, old, d[2], ["thesis1"], 3), q(thesis, new, d[4] + 3, ["thesis2"], 3),
        q(f"When did we open the {ticker} position?", str(START + timedelta(days=d[0])), d[4] + 3, ["open"], 2),
    ]
    return msgs, qas


def make(books: int, seed: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    msgs, qas = [], []
    for i in range(books):
        m, q = book(rng, i)
        msgs += [(*x[:2], 5 * i, *x[2:4], f"{i}:{x[4]}") for x in m]
        qas += [{**x, "evidence": [f"{i}:{e}" for e in x["evidence"]]} for x in q]
    for day in sorted(rng.sample(range(0, 85), k=3 * books)):
        msgs.append((day, 12, 30, rng.choice([PM, ANALYST]), rng.choice(CHATTER), None))
    msgs.sort(key=lambda m: m[:3])
    ids, chat = {}, []
    for n, (day, hour, minute, speaker, text, key) in enumerate(msgs, 1):
        mid = f"desk:{n}"
        if key:
            ids[key] = mid
        chat.append({"id": mid, "speaker": speaker, "text": text, "time": at(day, hour, minute), "session": f"{START + timedelta(days=day)}"})
    for x in qas:
        x["evidence"] = [ids[e] for e in x["evidence"]]
    return chat, sorted(qas, key=lambda x: x["asked_at"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--books", type=int, default=6, help="companies followed (11 questions each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    if not 1 <= args.books <= len(COMPANIES):
        ap.error(f"--books must be between 1 and {len(COMPANIES)}")
    chat, qas = make(args.books, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("desk_chat.jsonl", chat), ("desk_qa.jsonl", qas)):
        (args.out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(chat)} messages, {len(qas)} questions -> {args.out}")


if __name__ == "__main__":
    main()
