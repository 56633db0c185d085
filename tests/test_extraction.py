"""Fact extraction without a model: the parser of extracted facts, the window an extraction reads
(the same call in serving and in training), the cache and erase, the rule that keeps a
decision's new content, the "facts lost" count and `bench facts`' measures."""

from __future__ import annotations

import json
from datetime import date

import pytest

from conftest import SHARED_LOCOMO
from fake_llm import ScriptedLLM
from evaluation import facts as bench_facts
from policy.inputs import locomo_turns
from memstore import MemoryStore
from memstore.ingest import ingest
from policy import prompts
from policy.facts import clean_facts, grounded_in, is_noise, third_person
from policy.manager import AppendPolicy, Decision, ManagerPolicy, content_kept, grounded
from policy.turns import Turn, windows
from policy.times import days_named, resolve_times, when_said
from trainer.extraction import dated_target, examples

SAMPLE = {
    "sample_id": "chat-1",
    "conversation": {
        "speaker_a": "Evan", "speaker_b": "Sam",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Evan", "dia_id": "D1:1", "text": "I started lifting weights last month."},
            {"speaker": "Sam", "dia_id": "D1:2", "text": "I want to get into it too."},
            {"speaker": "Evan", "dia_id": "D1:3", "text": "Great, keep it up!"},
        ],
        "session_2_date_time": "10:00 am on 20 May, 2023",
        "session_2": [
            {"speaker": "Sam", "dia_id": "D2:1", "text": "I bought dumbbells yesterday."},
            {"speaker": "Evan", "dia_id": "D2:2", "text": "Nice!"},
        ],
    },
    "observation": {
        "session_1_observation": {"Evan": [["Evan started lifting weights.", "D1:1"]],
                                  "Sam": [["Sam wants to start lifting weights.", "D1:2"]]},
        "session_2_observation": {"Sam": [["Sam bought dumbbells.", "D2:1"]]},
    },
    "qa": [],
}


class RecordingLLM(ScriptedLLM):
    """The scripted extractor, keeping every prompt it was given."""

    def __init__(self):
        super().__init__()
        self.users: list[str] = []

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
        self.users.append(user)
        return super()._complete(system, user, schema, max_tokens, temperature, seed, prefix)


@pytest.mark.parametrize("fact, expected", [
    ("I'm traveling through Lake Tahoe", "Sam is traveling through Lake Tahoe"),
    ("I adopted a puppy named Max", "Sam adopted a puppy named Max"),
    ("my dog is named Max", "Sam's dog is named Max"),
    ("We're traveling through Lake Tahoe", "Sam said: We're traveling through Lake Tahoe"),
    ("I love my dog", "Sam said: I love my dog"),
    ("Evan likes watercolor painting", "Evan likes watercolor painting"),
])
def test_the_speaker_is_named_only_where_the_sentence_stays_grammatical(fact, expected):
    assert third_person(fact, "Sam") == expected


@pytest.mark.parametrize("fact, noise", [
    ("Sam", True), ("Thanks", True), ("Keep up the hard work!", True), ("Ready for an adventure?", True),
    ("Sam and Evan", True), ("Sam bought dumbbells", False), ("Evan lives in Denver", False),
    ("Sam is 32", False),
])
def test_noise_is_a_fact_without_a_content_word(fact, noise):
    assert is_noise(fact, {"Sam", "Evan"}) is noise


@pytest.mark.parametrize("fact, noise", [
    ("Sam is thanking Evan for his support", True), ("Evan thanked Sam for the kind words", True),
    ("Sam is congratulating Evan on the launch", True), ("Evan is congratulated on his new job", True),
    ("Sam is asking Evan about his new job", True), ("Evan asked if Sam wants to keep pushing", True),
    ("I'm asking you about the photo", True), ("Sam apologized for being late", True),
    ("Sam asked Evan to join his studio", False), ("Sam thinks Evan's studio will succeed", False),
    ("Evan asked for a raise and got it", False), ("Sam is a thankful person", False),
])
def test_a_speech_act_between_the_speakers_is_noise(fact, noise):
    """Thanks, congratulations, apologies and asked questions tell how the talk went, not a fact."""
    assert is_noise(fact, {"Sam", "Evan"}) is noise


def test_the_parser_drops_noise_repeats_and_non_strings():
    out = {"facts": ["Sam bought dumbbells.", "sam bought dumbbells.", "Thanks!", 5, "Evan", "  Sam  lifts  "]}
    assert clean_facts(out, "Sam", {"Evan"}) == ["Sam bought dumbbells.", "Sam lifts"]
    assert clean_facts(None, "Sam") == [] and clean_facts({"facts": "x"}, "Sam") == []


def test_relative_times_in_a_turn_date_its_targets():
    day = date(2023, 5, 8)
    assert when_said("I went there yesterday", day) == "on 7 May, 2023"
    assert when_said("we moved last month", day) == "in April, 2023"
    assert when_said("two weeks ago we met", day) == "in the week of 24 April, 2023"
    assert when_said("last Saturday was fun", day) == "on 6 May, 2023"
    assert when_said("I like tea", day) is None
    assert dated_target("Caroline went to a support group.", "I went yesterday", day) == \
        "Caroline went to a support group on 7 May, 2023."
    assert dated_target("Caroline went in May 2023.", "I went yesterday", day) == "Caroline went in May 2023."


def test_the_parser_writes_relative_times_as_the_absolute_times_they_point_at():
    day = "2023-05-08"  # a Monday
    assert resolve_times("Gina went hiking yesterday.", day) == "Gina went hiking on 7 May, 2023."
    assert resolve_times("Jon adopted a dog last week", day) == "Jon adopted a dog in the week before 8 May, 2023"
    assert resolve_times("Jon has run daily since last month", day) == "Jon has run daily since April, 2023"
    assert resolve_times("Two weeks ago Gina quit; Jon starts tomorrow", day) == \
        "in the week of 24 April, 2023 Gina quit; Jon starts on 9 May, 2023"
    assert resolve_times("Gina met Anna last Saturday", day) == "Gina met Anna on 6 May, 2023"
    assert resolve_times("Maria got the idea on a trip a few years ago", day) == "Maria got the idea on a trip in 2020"
    assert resolve_times("Gina likes tea in May", day) == "Gina likes tea in May"
    out = {"facts": ["I'm going to a support group tomorrow", "My dog turned 3 last month"]}
    assert clean_facts(out, "Caroline", day=day) == ["Caroline is going to a support group on 9 May, 2023",
                                                     "Caroline's dog turned 3 in April, 2023"]
    assert clean_facts(out, "Caroline")[0] == "Caroline is going to a support group tomorrow"  # no day known


def test_a_window_holds_earlier_messages_of_the_same_session_only():
    turns = locomo_turns(SAMPLE)
    ctx = windows(turns, 2)
    assert ctx["chat-1:D1:1"] == ()
    assert ctx["chat-1:D1:3"] == (("Evan", "I started lifting weights last month."), ("Sam", "I want to get into it too."))
    assert ctx["chat-1:D2:1"] == ()  # a new session starts without context
    assert windows(turns, 0)["chat-1:D1:3"] == ()


def test_serving_and_training_make_the_same_extraction_call(tmp_path):
    data = tmp_path / "chat.json"
    data.write_text(json.dumps([SAMPLE]))
    llm = RecordingLLM()
    policy = AppendPolicy(llm)
    policy.batch, policy.window = 1, prompts.EXTRACT_WINDOW  # as a trained extractor is served
    with MemoryStore(tmp_path / "s.db", "chat") as store:
        ingest(store, policy, locomo_turns(SAMPLE))
    trained = [r["messages"] for r in examples(data, ["chat-1"], empty_share=1.0, seed=0)]
    assert all(m[0]["content"] == prompts.EXTRACT_SYSTEM for m in trained)
    assert sorted(llm.users) == sorted(m[1]["content"] for m in trained)
    assert any("Earlier messages (context only):\nEvan: I started lifting" in u for u in llm.users)


def test_a_student_learns_its_teachers_kept_facts_from_the_call_the_teacher_read(tmp_path):
    data = tmp_path / "chat.json"
    data.write_text(json.dumps([SAMPLE]))
    teacher = RecordingLLM()  # plumbing only: the scripted teacher returns each message as its fact
    with MemoryStore(tmp_path / "teacher.db", "teacher") as store:
        taught, _ = bench_facts.extract_turns(store, AppendPolicy(teacher), locomo_turns(SAMPLE))
    rows = examples(data, ["chat-1"], empty_share=0.0, seed=0, taught=taught)
    assert len(rows) == 5  # every turn, those the teacher found empty too
    assert sorted(r["messages"][1]["content"] for r in rows) == sorted(teacher.users)
    assert all("Earlier messages (context only):\n(none)" in u for u in teacher.users)
    by_turn = {r["turn"]: json.loads(r["completion"])["facts"] for r in rows}
    # "I" -> the speaker and "last month" -> the month, by the parser
    assert by_turn["chat-1:D1:1"] == ["Evan started lifting weights in April, 2023."]
    assert by_turn["chat-1:D1:3"] == []  # small talk: the parser kept nothing


def test_prefetched_extractions_read_the_same_window(tmp_path):
    one, many = RecordingLLM(), RecordingLLM()
    for llm, batch in ((one, 1), (many, 8)):
        policy = AppendPolicy(llm)
        policy.batch, policy.window = batch, prompts.EXTRACT_WINDOW
        with MemoryStore(tmp_path / f"b{batch}.db", "chat") as store:
            ingest(store, policy, locomo_turns(SAMPLE))
    assert sorted(one.users) == sorted(many.users) and len(one.users) == 5


def test_earlier_inputs_are_scoped_by_bank_and_session(tmp_path):
    with MemoryStore(tmp_path / "s.db", "a") as store:
        store.record_input("Evan", "one", "2023-05-08T10:00", input_id="1", session="s1")
        store.record_input("Sam", "two", "2023-05-08T10:01", input_id="2", session="s1")
        store.record_input("Sam", "other", "2023-05-08T10:02", input_id="3", session="s2")
        store.with_bank("b").record_input("Eve", "hidden", "2023-05-08T10:00", input_id="x", session="s1")
        assert store.earlier_inputs("s1", "2023-05-08T11:00", 5) == [("Evan", "one"), ("Sam", "two")]
        assert store.earlier_inputs("s1", "2023-05-08T10:01", 5) == [("Evan", "one")]
        assert store.earlier_inputs("s1", "2023-05-08T11:00", 1) == [("Sam", "two")]


def test_erasing_a_turn_drops_the_cached_facts_of_turns_that_read_it(tmp_path):
    policy = AppendPolicy(ScriptedLLM())
    policy.batch, policy.window = 1, prompts.EXTRACT_WINDOW
    with MemoryStore(tmp_path / "s.db", "chat") as store:
        ingest(store, policy, locomo_turns(SAMPLE))
        rows = lambda: store.conn.execute("SELECT COUNT(*) FROM fact_cache").fetchone()[0]  # noqa: E731
        assert rows() == 5
        first = next(e for e in store.events() if list(e.source) == ["chat-1:D1:1"] and e.op == "ADD")
        store.erase(first.memory_id, reason="privacy request", with_sources=True)
        # D1:1's own facts and those of D1:2 and D1:3 (their window held it) are gone; session 2 keeps its own
        assert rows() == 2


def test_a_decision_keeps_the_new_content_of_its_fact():
    assert content_kept("DELETE", "m1", None, "Caroline moved to Denver", 0.6) == [
        ("DELETE", "m1", None, ""), ("ADD", "", "Caroline moved to Denver", " (the fact that ended the memory is kept)")]
    assert content_kept("NOOP", "", None, "fact", 0.5)[0][:3] == ("ADD", "", "fact")
    assert content_kept("NOOP", "", None, "fact", 0.95) == [("NOOP", "", None, "")]
    assert content_kept("ADD", "", None, "fact", 0.0) == [("ADD", "", "fact", "")]


def test_an_update_keeps_only_what_the_fact_or_the_memory_states():
    fact, memory = "John moved to Berlin", "John lives in Paris"
    assert content_kept("UPDATE", "m1", "John lives in Berlin", fact, 0.8, memory) == \
        [("UPDATE", "m1", "John lives in Berlin", "")]
    # a note copied from the prompt's example is cut; one the sources state stays
    assert grounded("John lives in Berlin (updated)", fact, memory) == "John lives in Berlin"
    assert grounded("Jon dances with Gina (observed 2023-05-11) (moved from Paris)", "Jon dances with Gina", "") == \
        "Jon dances with Gina"
    assert grounded("John lives in Berlin (moved from Paris)", fact, memory) == "John lives in Berlin (moved from Paris)"
    # a text with words of its own becomes the fact
    assert grounded("John got a job at a bank in Berlin", fact, memory) == fact
    op, target, text, note = content_kept("UPDATE", "m1", "John lives in Berlin (updated)", fact, 0.8, memory)[0]
    assert (op, target, text) == ("UPDATE", "m1", "John lives in Berlin") and "updated" in note


def test_the_parser_drops_a_fact_that_nothing_said_grounds():
    said = "Thanks! I'm gonna keep pushing. Started hitting the gym last week."
    out = {"facts": ["Gina bought her first pair of dumbbells on 11 May, 2023.", "Jon started hitting the gym",
                     "Jon feels great"]}
    assert clean_facts(out, "Jon", {"Gina"}, said=said) == ["Jon started hitting the gym"]
    assert grounded_in("Jon feels great", "I feel great!", {"Jon"})
    assert grounded_in("Jon is 32", "32", {"Jon"})  # nothing but a name and a number: the noise test's business
    assert len(clean_facts(out, "Jon", {"Gina"})) == 3  # no text given: no check


def test_facts_lost_counts_a_deletion_that_drops_the_new_fact(tmp_path):
    fact = "Caroline moved to Denver last week"
    with MemoryStore(tmp_path / "s.db", "c") as store:
        old = store.add("Caroline lives in Boston", at="2023-01-01")
        store.delete(old.memory_id, at="2023-03-01", cause={"fact": fact})  # a DELETE alone, as a model may choose
        assert bench_facts.facts_lost(store) == {"decided": 1, "lost": 1}
    with MemoryStore(tmp_path / "t.db", "c") as store:
        old = store.add("Caroline lives in Boston", at="2023-01-01")
        for op, memory_id, text, _ in content_kept("DELETE", old.memory_id, None, fact, 0.6):
            store.apply(op, memory_id, text, at="2023-03-01", cause={"fact": fact})
        assert bench_facts.facts_lost(store) == {"decided": 1, "lost": 0}


def test_an_update_or_delete_stands_only_where_the_memory_can_have_stopped_being_true():
    fact = "Caroline moved to Denver on 13 July, 2023"
    # a memory written by an earlier fact of the same turn: one message does not contradict itself
    for op in ("UPDATE", "DELETE"):
        [(got, target, text, note)] = content_kept(op, "m1", fact, fact, 0.8, "Caroline lives in Denver", fresh=True)
        assert (got, target, text) == ("ADD", "", fact) and "same turn" in note
    # an event of another day happened all the same
    [(got, _, text, note)] = content_kept("UPDATE", "m1", fact, fact, 0.8, "Caroline adopted a dog on 12 June, 2023")
    assert (got, text) == ("ADD", fact) and "different days" in note
    # a state the fact changes is updated: undated, or the same day
    assert content_kept("UPDATE", "m1", fact, fact, 0.8, "Caroline lives in Boston")[0][:3] == ("UPDATE", "m1", fact)
    assert content_kept("UPDATE", "m1", fact, fact, 0.8, "Caroline packed on 13 July, 2023")[0][0] == "UPDATE"
    assert days_named("on 7 May, 2023 and 12 June 2023") == {"7 May 2023", "12 June 2023"}
    assert days_named("in May, 2023") == set()


class Overwrites(ManagerPolicy):
    """Scripted decisions (plumbing only): every fact UPDATEs its closest memory."""
    name = "overwrites"

    def decide(self, fact, candidates, turn):
        return Decision("UPDATE", target=candidates[0], text=fact) if candidates else Decision("ADD", text=fact)


def test_a_later_fact_of_a_turn_does_not_overwrite_an_earlier_one(tmp_path):
    facts = ["Caroline moved to Denver", "Caroline does not live in Boston anymore"]
    turn = Turn("t1", "Caroline", "We moved to Denver, so I don't live in Boston anymore.", "2023-07-20T09:00:00")
    with MemoryStore(tmp_path / "s.db", "c") as store:
        policy = Overwrites(ScriptedLLM())
        policy.min_score = 0.0
        policy.apply_turn(store, turn, facts)
        assert sorted(m.text for m in store.replay()) == sorted(facts)
        assert bench_facts.facts_lost(store) == {"decided": 2, "lost": 0}
        # carried out as the model chose, the second fact would have taken the first out of the bank
        first = store.replay()[0]
        store.apply("UPDATE", first.id, facts[1], at="2023-07-20T09:00:00", cause={"fact": facts[1]})
        assert bench_facts.facts_lost(store)["lost"] == 1


def test_invented_names_and_numbers_are_those_absent_from_the_turn():
    source = "Sam: I bought dumbbells yesterday. 8 May, 2023"
    assert not bench_facts.invented("Sam bought dumbbells on 7 May, 2023.", source)  # a date the turn resolves
    assert bench_facts.invented("Sam bought dumbbells at Walmart.", source)
    assert bench_facts.invented("Sam bought 3 dumbbells.", source)
    assert not bench_facts.invented("Sam bought dumbbells in May, 2023.", source)


def test_bench_facts_measures_an_extractor_against_observations(tmp_path):
    policy = AppendPolicy(ScriptedLLM())  # plumbing only: the scripted extractor returns each message
    rep = bench_facts.measure("scripted", policy, SAMPLE, tmp_path / "facts.db")
    row = rep.row()
    assert row["turns"] == 5 and row["observations"] == 3
    assert rep.facts == 3  # "Great, keep it up!" and "Nice!" are noise, dropped by the parser
    assert rep.raw == 5 and rep.noise == 2 and row["noise %"] == 40.0
    assert rep.recalled >= 2 and rep.unmatched <= 1, rep.examples
    again = bench_facts.measure("scripted", AppendPolicy(ScriptedLLM()), SAMPLE, tmp_path / "facts.db")
    assert again.row()["recall %"] == row["recall %"]  # read back from the cache


def test_the_hand_labelled_pairs_refer_to_observations_without_copying_them():
    rows = [json.loads(line) for line in bench_facts.PAIRS.read_text().splitlines() if line.strip()]
    assert len(rows) == 50 and {r["same"] for r in rows} == {True, False}
    assert all(set(r) == {"conversation", "turn", "observation", "fact", "same"} for r in rows)


@pytest.mark.skipif(not SHARED_LOCOMO.exists(), reason="needs ../shared LoCoMo data")
def test_the_matcher_threshold_agrees_with_hand_labels():
    from policy.inputs import locomo_samples
    from memstore.embed import default_embedder
    res = bench_facts.check_threshold(default_embedder().embed, bench_facts.load_pairs(bench_facts.PAIRS,
                                                                                       locomo_samples(SHARED_LOCOMO)))
    assert res["pairs"] == 50 and res["agreement %"] >= 80
