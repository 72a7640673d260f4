"""The distractor constraint catalog: strict verifiers, rewrites that satisfy them, and how they combine."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchcore.errors import InputError
from prompts import constraints as C
from prompts.suites import read_rows

PAPER_13 = {
    "max_words_50", "double_space_alternate", "only_exclamation", "capitalize_every_5th", "replace_e_with_3",
    "no_periods", "no_commas", "exactly_3_sentences", "no_repeated_words", "max_word_length_5", "no_letter_a",
    "double_vowels", "replace_o_with_0",
}
PAPER_EVAL_8 = {
    "max_words_50", "double_space_alternate", "only_exclamation", "capitalize_every_5th", "replace_e_with_3",
    "no_periods", "no_commas", "exactly_3_sentences",
}

_W50 = " ".join(["word"] * 50)
_W51 = " ".join(["word"] * 51)
_W40 = " ".join(f"w{i}x" for i in range(40))

# id -> (texts that satisfy it, texts that do not); hand-written edge cases of each definition
EXAMPLES: dict[str, tuple[list[str], list[str]]] = {
    "double_space_alternate": (
        ["one  two three  four", "a  b c\nd  e", "single", "  lead  ing spaces  ok  "],
        ["one two three four", "one  two  three", "a\t b c", "a  b c d  e"],
    ),
    "only_exclamation": (
        ["Go now! Run fast!", "no punctuation at all", "Wow!! 3 + 4 = 7 <<ok>>"],
        ["Hello.", "don't", "well-being!", 'say "hi"!'],
    ),
    "no_periods": (
        ["Hi! How are you?", "no marks", "A, b; c: d!"],
        ["Hello.", "3.5 apples", "e.g! this", "…and."],
    ),
    "no_commas": (
        ["No commas here.", "a; b: c", "1 000 000"],
        ["a, b", "1,000", "end,"],
    ),
    "capitalize_every_5th": (
        ["one two three four Five six seven eight nine Ten", "short text", "a b c d 3Rd", "A B C D E"],
        ["one two three four five", "one two three four Five six seven eight nine ten", "a b c d éclair"],
    ),
    "all_lowercase": (
        ["all lower here.", "123 !?", "über café"],
        ["All lower", "sHout", "ÜBER"],
    ),
    "all_uppercase": (
        ["ALL UPPER!", "123 <<>>", "ÜBER CAFÉ"],
        ["ALL UPPEr", "lower", "Mixed Case"],
    ),
    "replace_e_with_3": (
        ["th3 r3st", "a bright sunny day", "3333"],
        ["the", "East", "tree 3"],
    ),
    "replace_o_with_0": (
        ["g00d", "think twice", "0k"],
        ["good", "Over", "t0o"],
    ),
    "double_vowels": (
        ["Heelloo wooriild", "bcd fgh", "boot", "AAnd"],
        ["hello", "a", "brrr ea", "baaa"],
    ),
    "max_words_50": (
        [_W50, "short answer.", "1 2 3 " * 40],
        [_W51, _W51 + ".", " ".join(["don't"] * 51)],
    ),
    "exactly_3_sentences": (
        ["One. Two! Three?", "First one. Second one. third without end", "I said 3.5 is fine. Ok. Yes.",
         "1. One.\n2. Two.\n3. Three."],
        ["One. Two.", "One. Two. Three. Four.", "Just one", "e.g. this is. a test. really. yes"],
    ),
    "min_words_40": (
        [_W40, _W40 + " and more", " ".join(["yes"] * 45)],
        ["too short", " ".join(["w"] * 39), "1 2 3 " * 20],
    ),
    "bullets_3": (
        ["* a\n* b\n* c", "Intro\n- one\n- two\n- three\nOutro", "  * a\n  * b\n  * c"],
        ["* a\n* b", "* a\n* b\n* c\n* d", "*a\n*b\n*c", "1. a\n2. b\n3. c"],
    ),
    "numbered_list": (
        ["1. a\n2. b", "1. one\n\n2. two\n3. three", "  1. x\n  2. y"],
        ["1. a", "1. a\n3. b", "1) a\n2) b", "Intro\n1. a\n2. b"],
    ),
    "json_wrap": (
        ['{"a": 1}', '["text"]', '```json\n{"x": [1, 2]}\n```', "  42  "],
        ["not json", "{a: 1}", '{"a": 1} trailing'],
    ),
    "title_double_angle": (
        ["<<My Title>>\nbody", "text <<t>> text", "<<A b c>>"],
        ["<My Title>", "<<>>", "<<two\nlines>>"],
    ),
    "no_repeated_words": (
        ["every word differs here", "A cat sat.", "don't do it"],
        ["the cat and the dog", "Yes yes", "It's its it's"],
    ),
    "max_word_length_5": (
        ["short words only", "a bb ccc dddd eeeee", "12345678 ok"],
        ["elephant", "don'ts", "tiny enormous"],
    ),
    "no_letter_a": (
        ["The quick brown fox", "h3llo", "4ll ok"],
        ["a", "Apple", "banana"],
    ),
    "include_keyword": (
        ["It is truly fine", "TRULY.", "truly"],
        ["untruly", "true", "trulyx here"],
    ),
    "forbidden_word": (
        ["quite good", "everything", "Avery is here"],
        ["very good", "VERY!", "it is very"],
    ),
    "start_with_phrase": (
        ["In short, yes.", '"In  short it works"', "* in short: fine", "In short"],
        ["Briefly, yes", "Inshort yes", "In shortly", "yes. In short"],
    ),
    "end_with_phrase": (
        ["Done. Hope this helps.", "hope  this helps", 'All good. "Hope this helps!"'],
        ["Hope this helps you", "Hope this help", "Nope this helpsx"],
    ),
    "wrap_double_quotes": (
        ['"quoted"', ' "x" ', "“curly”"],
        ["not quoted", '"only start', 'end only"', '"'],
    ),
}


def test_examples_cover_every_constraint():
    assert set(EXAMPLES) == set(C.CATALOG)
    for cid, (pos, neg) in EXAMPLES.items():
        assert len(pos) >= 3 and len(neg) >= 3, cid


@pytest.mark.parametrize("cid,text,expected",
                         [(cid, t, True) for cid, (pos, _) in EXAMPLES.items() for t in pos]
                         + [(cid, t, False) for cid, (_, neg) in EXAMPLES.items() for t in neg])
def test_verifier_examples(cid, text, expected):
    assert C.get_constraint(cid).verify(text) is expected


def test_catalog_contains_paper_pool_and_families():
    assert PAPER_13 <= set(C.CATALOG)
    assert {c.id for c in C.CATALOG.values() if c.paper} == PAPER_13
    assert len(C.CATALOG) >= 21
    fams = C.families()
    assert sorted(i for ids in fams.values() for i in ids) == sorted(C.CATALOG)
    for c in C.CATALOG.values():
        assert c.phrasings and all(p.strip() for p in c.phrasings)


def test_heldout_families_disjoint_and_about_a_third():
    assert C.TRAIN_FAMILIES.isdisjoint(C.HELDOUT_FAMILIES)
    assert C.TRAIN_FAMILIES | C.HELDOUT_FAMILIES == set(C.families())
    held = C.ids_in_families(C.HELDOUT_FAMILIES)
    assert 0.25 <= len(held) / len(C.CATALOG) <= 0.4
    assert set(held) & PAPER_13, "held-out families include some of the paper's constraints"
    assert not set(held) & PAPER_EVAL_8, "the paper's evaluation constraints stay train-visible"


def test_family_group_partitions_constraint_sets():
    train, held = C.ids_in_families(C.TRAIN_FAMILIES), C.ids_in_families(C.HELDOUT_FAMILIES)
    assert C.family_group(()) == "train_families"
    assert {C.family_group((c,)) for c in train} == {"train_families"}
    assert {C.family_group((c,)) for c in held} == {"heldout_families"}
    for a, b in itertools.product(train, held):  # one held-out constraint is enough, wherever it sits
        assert C.family_group((a, b)) == C.family_group((b, a)) == "heldout_families"
    assert C.FAMILY_GROUPS == ("train_families", "heldout_families")
    with pytest.raises(InputError):
        C.family_group(("no_such_thing",))


def test_unknown_constraint_is_input_error():
    with pytest.raises(InputError) as e:
        C.get_constraint("no_such_thing")
    assert e.value.field == "constraint"


def test_compatible_is_symmetric_and_irreflexive():
    ids = list(C.CATALOG)
    for a, b in itertools.product(ids, ids):
        assert C.compatible(a, b) == C.compatible(b, a)
    assert not any(C.compatible(a, a) for a in ids)
    assert not C.compatible("all_lowercase", "all_uppercase")
    assert not C.compatible("no_letter_a", "start_with_phrase") or "a" not in C.CATALOG["start_with_phrase"].params["phrase"].lower()
    assert not C.compatible("replace_e_with_3", "end_with_phrase")  # "Hope this helps" has an e
    assert not C.compatible("json_wrap", "bullets_3")


def _suite_texts() -> list[str]:
    texts = []
    for f in ("harmful_scenarios.jsonl", "benign_requests.jsonl", "instruction_tasks.jsonl"):
        texts += [r["text"] for r in read_rows(f)]
    return texts


SUITE_TEXTS = _suite_texts()


def test_every_constraint_has_an_applicator():
    assert all(c.apply is not None for c in C.CATALOG.values())


@pytest.mark.parametrize("cid", list(C.CATALOG))
def test_apply_satisfies_over_every_suite_text(cid):
    c = C.CATALOG[cid]
    assert len(SUITE_TEXTS) > 500
    for text in SUITE_TEXTS:
        out = c.apply(text)
        assert c.verify(out), (cid, text, out)
        assert c.apply(out) == out, "a satisfied text is left alone"


_text = st.text(alphabet=st.sampled_from(list("abceoAEIOU xyzé'.,!?-\"\n3")), max_size=120)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_text, cid=st.sampled_from(list(C.CATALOG)))
def test_apply_satisfies_generated_text(text, cid):
    c = C.CATALOG[cid]
    out = c.apply(text)
    assert c.verify(out)
    assert c.apply(out) == out


COMPATIBLE_PAIRS = [(a, b) for a, b in itertools.combinations(C.CATALOG, 2) if C.compatible(a, b)]


def test_most_pairs_compatible():
    assert len(COMPATIBLE_PAIRS) > 0.8 * len(list(itertools.combinations(C.CATALOG, 2)))


def test_apply_all_pairs_over_suite_texts():
    for a, b in COMPATIBLE_PAIRS:
        for text in SUITE_TEXTS[::3]:
            out = C.apply_all(text, [a, b])
            assert all(C.verify_all(out, [a, b]).values()), (a, b, text, out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_text, pair=st.sampled_from(COMPATIBLE_PAIRS))
def test_apply_all_pairs_generated(text, pair):
    out = C.apply_all(text, list(pair))
    assert all(C.verify_all(out, pair).values())


def test_apply_all_triples_sample():
    rng = random.Random(0)
    pool = list(C.CATALOG)
    done = 0
    while done < 300:
        ids = C.sample_constraints(rng, pool, 3, 3)
        text = rng.choice(SUITE_TEXTS)
        out = C.apply_all(text, ids)
        assert all(C.verify_all(out, ids).values()), (ids, text, out)
        done += 1


def test_apply_all_rejects_incompatible():
    with pytest.raises(ValueError):
        C.apply_all("text", ["all_lowercase", "all_uppercase"])


def test_instruction_text_seeded_and_natural():
    ids = ("no_commas", "exactly_3_sentences")
    a = C.instruction_text(ids, random.Random(7))
    assert a == C.instruction_text(ids, random.Random(7))
    paren = C.instruction_text(ids, random.Random(1), form="paren")
    assert paren.startswith(" (") and paren.endswith(")") and " and " in paren
    sent = C.instruction_text(("no_commas", "no_periods", "all_lowercase"), random.Random(1), form="sentence")
    assert sent.startswith(" ") and sent.endswith(".") and ", " in sent and " and " in sent
    assert C.attach("Say it when X.", " (no periods)") == "Say it when X (no periods)."
    assert C.instruction_text((), random.Random(0)) == ""


def test_sample_constraints_compatible_and_in_pool():
    rng = random.Random(3)
    for _ in range(200):
        ids = C.sample_constraints(rng, C.ids_in_families(C.HELDOUT_FAMILIES))
        assert 1 <= len(ids) <= 3 and C.compatible_set(ids)
        assert all(C.CATALOG[i].family in C.HELDOUT_FAMILIES for i in ids)
