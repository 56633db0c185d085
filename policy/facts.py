"""What an extraction's output becomes: the one parser of extracted facts, shared by serving,
training and `bench facts`, and the test of a noise fact that the bench counts.

A small model keeps some of the speaker's "I" and "my" and writes small talk as facts. Only the
rewrites that stay grammatical whatever the verb are made ("my" -> "Sam's", "I am" -> "Sam is");
a fact still in the first or second person is kept as the speaker's words ("Sam said: ...") rather
than bent into "Sam're" or "Sam love". A fact with no content word (a bare name, thanks, a
question) is dropped, and so is one with no content word of the message or the earlier messages
its extraction read (invented). A relative time ("yesterday", "last week") is written as the absolute time
it points at when the day the message was said is known (policy/times.py)."""

from __future__ import annotations

import re

from .times import resolve_times

# Rewrites whose grammar does not depend on the verb that follows.
_SAFE = [(re.compile(p, flags), r) for p, flags, r in [
    (r"\bI am\b|\bI'm\b", 0, "{s} is"), (r"\bI was\b", 0, "{s} was"),
    (r"\bI have\b|\bI've\b", 0, "{s} has"), (r"\bI had\b|\bI'd had\b", 0, "{s} had"),
    (r"\bI will\b|\bI'll\b", 0, "{s} will"), (r"\bI (can|could|would|should|might|did)\b", 0, r"{s} \1"),
    (r"\bI (\w+ed)\b", 0, r"{s} \1"),
    (r"\bmy\b", re.I, "{s}'s"), (r"\bmine\b", re.I, "{s}'s"), (r"\bmyself\b", re.I, "{s}"),
    (r"(?<!\w)me\b", 0, "{s}")]]
_PERSONAL = re.compile(r"\b(I|I'd|we|we're|we've|we'll|our|ours|us|you|your|you're|you've)\b", re.I)

# Two texts state the same fact when their embeddings (all-MiniLM-L6-v2) reach this cosine: the
# matcher of `bench facts` (recall of the annotated observations, unmatched facts), of the harness's
# "facts lost" count, and of the manager's NOOP check. Checked on hand-labelled pairs
# (evaluation/data/fact_pairs.jsonl, `memstore bench matcher`).
SAME_FACT = 0.7

# Words that carry no fact: function words, greetings, thanks, praise and filler.
STOP = set("""a an the and or but so of to in on at for with from by about as into than then that this
these those it its it's is am are was were be been being has have had do does did will would can could
should may might must shall not no yes very really just too also only even still again more most much
many some any all both each every such what which who whom whose when where why how there here if
he she they them his her their him i me my we us our you your hi hello hey bye goodbye thanks thank
thx welcome congrats congratulations wow awesome great cool nice good amazing wonderful glad happy
sounds sound luck keep up hard work lot lots okay ok oh ah haha lol sure totally definitely
absolutely agree true right well fun chat talk talking catch soon later see time take care""".split())
# A speech act between the speakers reported as a fact: thanks, congratulations, an apology, a
# greeting, a question asked ("Gina is thanking Jon for his support", "Jon asked Gina about the
# changes"). It tells how the conversation went, not what is true of anyone; the content it names
# is stated by the message it answers, and an asked question states nothing, as a question does.
_SPEECH_ACT = re.compile(
    r"^\s*(?:[A-Z][\w'-]*\s+){1,2}(?:(?:is|are|was|were|am|has|had|have|will|just|also|then|always|been)\s+)*"
    r"(?:thank|congratulat|apologi|greet|bid\w* goodbye|say\w* (?:thanks|thank you|goodbye|bye|hi|hello)"
    r"|ask\w*\s+(?:(?:[A-Z][\w'-]*|him|her|them|me|you|us)\s+)?(?:about|if|whether|what|how|why|when|where|who|which))",
)
MONTHS = set("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday week weekend month year day before after""".split())


def is_noise(fact: str, names: set[str] = frozenset()) -> bool:
    """True for a fact that states nothing: a question, a speech act between the speakers
    (`_SPEECH_ACT`), or no content word beyond names, greetings, thanks, praise and function words."""
    text = fact.strip()
    if not text or text.endswith("?") or _SPEECH_ACT.match(text):
        return True
    words = re.findall(r"[A-Za-z][A-Za-z']*|\d+", text)
    lowered = {n.casefold() for n in names}
    content = [w for w in words
               if w.casefold().removesuffix("'s") not in STOP and w.casefold().removesuffix("'s") not in lowered]
    return not content


def third_person(fact: str, speaker: str) -> str:
    """The fact naming the speaker instead of "I"/"my" where that stays grammatical; otherwise,
    if the first or second person remains, the speaker's own words, attributed."""
    rewritten = fact
    for pattern, repl in _SAFE:
        rewritten = pattern.sub(repl.replace("{s}", speaker.replace("\\", r"\\")), rewritten)
    if _PERSONAL.search(rewritten):
        return f"{speaker} said: {fact}"
    return rewritten


def content_stems(text: str, skip: set[str] = frozenset()) -> set[str]:
    """The first four letters of each content word (not a function word, not in `skip`): enough
    to tell whether two texts share a word across endings ("feels" ~ "feel", "bank" ~ "banker")."""
    words = {w.casefold().removesuffix("'s") for w in re.findall(r"[A-Za-z][A-Za-z']*", text)}
    return {w[:4] for w in words - STOP - skip}


def grounded_in(fact: str, said: str, names: set[str] = frozenset()) -> bool:
    """True when the fact carries at least one content word of what was said (the message and the
    earlier messages its extraction read), compared on the first four letters ("feels" ~ "feel"),
    beyond names, dates and function words. A fact with none is invented: on LoCoMo the small
    extractors copy their prompt's example ("bought his first pair of dumbbells") into turns that
    speak of something else, or answer a question the message asks ("Gina got a new book" for
    "What did you get?")."""
    content = content_stems(fact, {n.casefold() for n in names} | MONTHS | {"said"})
    return not content or bool(content & content_stems(said))


def clean_facts(out: dict | None, speaker: str, names: set[str] = frozenset(), day: str | None = None,
                said: str | None = None) -> list[str]:
    """The facts of one extraction output (`{"facts": [...]}`), in order, without noise, invented
    facts (with `said`: the message and its window, `grounded_in`) or repeats; with `day` (the
    message's date, ISO), relative times made absolute."""
    facts: list[str] = []
    given = out.get("facts") if isinstance(out, dict) else None
    for raw in given if isinstance(given, list) else []:
        if not isinstance(raw, str) or is_noise(raw, names | {speaker}):
            continue
        if said is not None and not grounded_in(raw, said, names | {speaker}):
            continue
        fact = third_person(" ".join(raw.split()), speaker)
        if day:
            fact = resolve_times(fact, day)
        if fact.casefold() not in (f.casefold() for f in facts):
            facts.append(fact)
    return facts
