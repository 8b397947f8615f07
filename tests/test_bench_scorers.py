"""The bench scorers on hand-made cases: what must pass, what must fail, what tests nothing."""

from __future__ import annotations

import pytest

from qia_cli.bench import scorers


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Cherry Blossoms!", {"cherry", "blossom"}),
        ("berries, boxes & horses", {"berry", "box", "horse"}),
        ("the Eiffel Tower's lights", {"eiffel", "tower", "light"}),
        ("crème brûlée", {"creme", "brulee"}),
        ("trick-or-treating", {"trick", "treating"}),
    ],
)
def test_content_words_normalise_case_plurals_punctuation_accents(text, words):
    assert scorers.content_words(text) == words


def test_plural_and_singular_meet():
    for plural, single in [
        ("cookies", "cookie"),
        ("tomatoes", "tomato"),
        ("glasses", "glass"),
        ("churches", "church"),
        ("eggs", "egg"),
        ("shoes", "shoe"),
    ]:
        assert scorers.singular(plural) == scorers.singular(single)
    assert scorers.singular("cactus") == "cactus" and scorers.singular("iris") == "iris"


REQUEST = "the national flower of Japan"


@pytest.mark.parametrize(
    "prompt",
    [
        "Cherry blossoms, the national flower of Japan, soft light",
        "a branch of cherry-blossom, pink petals",  # singular and hyphenated
        "SAKURA in bloom",  # the second alternative
    ],
)
def test_reason_passes_when_one_alternative_is_in_the_prompt(prompt):
    score = scorers.score_reason(prompt, REQUEST, ["cherry blossoms", "sakura"])
    assert score.status == "pass"


@pytest.mark.parametrize(
    "prompt",
    [
        REQUEST,  # the raw request
        "a cherry tree in Japan",  # only half of the answer
        "pink blossoms of the national flower",  # the other half
    ],
)
def test_reason_fails_without_all_new_words_of_an_alternative(prompt):
    assert scorers.score_reason(prompt, REQUEST, ["cherry blossoms", "sakura"]).status == "fail"


def test_a_compound_written_as_two_words_is_the_compound():
    request = "the round pastry shared at the Mid-Autumn Festival"
    assert scorers.score_reason("round pastry, moon cakes on a plate", request, ["mooncakes"]).passed
    assert scorers.score_reason("a kite surfing rider", "a board sport pulled by a kite", ["kitesurfing"]).passed
    # only words side by side join: "moon" and "cake" apart are not the compound
    assert not scorers.score_reason("a cake under the full moon", request, ["mooncakes"]).passed


def test_reason_counts_only_words_the_request_lacks():
    # "Easter" is in the request: "egg" alone is the answer
    assert scorers.score_reason("painted eggs in the grass", "decorations hidden at Easter", ["Easter eggs"]).passed
    assert not scorers.score_reason("Easter decorations", "decorations hidden at Easter", ["Easter eggs"]).passed


def test_reason_skips_an_item_whose_answer_is_in_the_request():
    score = scorers.score_reason("anything", "a bowl of ramen noodles", ["ramen", "noodle soup"])
    assert score.status == "skipped"
    assert scorers.score_reason("x", "y", ["the", "of"]).status == "skipped"  # no content words at all


FIXTURE_REQUEST = "the new headquarters of Lumetra Labs"


def test_facts_pass_with_every_expected_fact_and_no_forbidden_phrase():
    prompt = "Lumetra Labs headquarters, a curved glass tower with a rooftop garden"
    assert scorers.score_facts(prompt, FIXTURE_REQUEST, ["curved glass tower", "rooftop garden"], ["clown"]).passed


def test_facts_fail_on_a_missing_fact_or_a_forbidden_phrase():
    missing = scorers.score_facts("a curved tower", FIXTURE_REQUEST, ["curved glass tower"])
    assert missing.status == "fail" and "curved glass tower" in missing.detail
    leaked = scorers.score_facts(
        "a curved glass tower and two Clowns", FIXTURE_REQUEST, ["curved glass tower"], ["clown"]
    )
    assert leaked.status == "fail" and leaked.extra["leaked"] == ["clown"]
    raw = scorers.score_facts(FIXTURE_REQUEST, FIXTURE_REQUEST, ["curved glass tower"], ["clown"])
    assert raw.status == "fail"


def test_forbidden_words_the_request_names_are_not_held_against_the_prompt():
    # the request itself mentions a clown: only the planted words beyond it count
    score = scorers.score_facts("a clown at the circus, red nose", "a clown at the circus", ["red nose"], ["clown"])
    assert score.passed


def test_facts_all_in_the_request_test_nothing():
    assert scorers.score_facts("x", "a curved glass tower", ["glass tower"]).status == "skipped"


def _plan(gaps, questions=(), assumed=()):
    return {
        "gaps": [{"id": f"g{i + 1}", "kind": k} for i, k in enumerate(gaps)],
        "questions": [{"id": f"q{i + 1}", "gap_id": g} for i, g in enumerate(questions)],
        "evidence": [{"gap_id": g, "source": "assumption"} for g in assumed],
    }


def test_underspecified_needs_a_content_gap_with_a_question_or_assumption():
    request = "a poster for the event"
    assert scorers.score_plan(request, request, "underspecified", _plan(["purpose", "style"], ["g1"])).passed
    assert scorers.score_plan(request, request, "underspecified", _plan(["subject"], assumed=["g1"])).passed
    # style, composition and setting gaps alone do not count
    style_only = _plan(["style", "composition", "setting"], assumed=["g1", "g2", "g3"])
    assert not scorers.score_plan(request, request, "underspecified", style_only).passed
    # a content gap found but neither asked nor assumed (filled) does not count
    assert not scorers.score_plan(request, request, "underspecified", _plan(["knowledge"])).passed
    assert not scorers.score_plan(request, request, "underspecified", None).passed  # a baseline


LONG = (
    "A red vintage bicycle with a wicker basket full of sunflowers leaning against a whitewashed stone wall, "
    "deep blue shutters, harsh midday sunlight, photograph"
)


def test_specified_passes_without_questions_when_the_content_is_kept():
    assert scorers.score_plan(LONG + ", high detail", LONG, "specified", _plan(["style"])).passed
    assert scorers.score_plan(LONG, LONG, "specified", None).passed  # the raw request keeps everything


def test_specified_fails_on_a_question_or_lost_content():
    asked = scorers.score_plan(LONG, LONG, "specified", _plan(["subject"], ["g1"]))
    assert asked.status == "fail" and "question" in asked.detail
    cut = scorers.score_plan("a red bicycle with a basket of sunflowers", LONG, "specified", _plan([]))
    assert cut.status == "fail" and cut.extra["kept"] < 0.9


# -- harm on ordinary, fully specified requests ------------------------------------------------------
def _reasoning(*contents, source="reasoning"):
    return {"evidence": [{"gap_id": "g1", "source": source, "content": c} for c in contents]}


def test_word_tokens_keep_function_words_and_plurals_as_written():
    assert scorers.word_tokens("A child's Crayon drawing of the Café") == [
        "a",
        "child",
        "s",
        "crayon",
        "drawing",
        "of",
        "the",
        "cafe",
    ]
    assert scorers.word_tokens("three red apples") == ["three", "red", "apples"]


@pytest.mark.parametrize(
    "prompt",
    [
        "a linocut of a heron standing in the reeds",  # unchanged
        "a linocut of a heron standing in the reeds, soft morning light, high detail",  # only style added
        "A Linocut of a heron standing in the reeds.",  # case and punctuation
    ],
)
def test_harm_passes_an_intact_request(prompt):
    score = scorers.score_harm(prompt, "a linocut of a heron standing in the reeds", _reasoning())
    assert score.status == "pass", score.detail
    assert score.extra == {
        "dropped": [],
        "new_subject": [],
        "memory": [],
        "phantom_text": [],
        "notes": [],
        "head_changed": False,
    }


def test_harm_catches_a_dropped_word():
    score = scorers.score_harm("a linocut of a heron in the reeds", "a linocut of a heron standing in the reeds", None)
    assert score.status == "fail" and score.extra["dropped"] == ["standing"] and not score.extra["head_changed"]


def test_harm_catches_a_dropped_medium_and_the_changed_head_it_leaves():
    score = scorers.score_harm("a house on a mountain, dramatic light", "a painting of a house on a mountain", None)
    assert score.status == "fail"
    assert score.extra["dropped"] == ["of", "painting"] and score.extra["head_changed"]


def test_harm_counts_a_changed_plural_and_a_dropped_function_word():
    assert scorers.score_harm("three red apple", "three red apples", None).extra["dropped"] == ["apples"]
    assert scorers.score_harm("a bay with boats", "a bay without boats", None).extra["dropped"] == ["without"]


def test_harm_catches_a_new_subject_prepended_by_reasoning():
    request = "a smiling sloth wearing a kilt"
    score = scorers.score_harm("a horse, a smiling sloth wearing a kilt", request, _reasoning("a horse"))
    assert score.status == "fail"
    assert score.extra["new_subject"] == ["horse"] and score.extra["head_changed"] and not score.extra["dropped"]


def test_harm_catches_reasoning_content_added_after_the_request():
    request = "a bay without boats at sunrise"
    score = scorers.score_harm(request + ", a ship with a sail on it", request, _reasoning("a ship with a sail on it"))
    assert score.status == "fail" and not score.extra["head_changed"] and score.extra["dropped"] == []
    assert score.extra["new_subject"] == ["sail", "ship"] and "new subject: sail, ship" in score.detail


def test_harm_counts_only_reasoning_words_that_reach_the_prompt_and_are_new():
    request = "a red fox curled up asleep in fresh snow"
    # the reasoning answer repeats the request, or never reached the prompt
    assert scorers.score_harm(request, request, _reasoning("a red fox", "a wolf pack")).passed
    # words from other sources are not reasoning's: an assumed light is not a new subject
    assert scorers.score_harm(request + ", golden hour", request, _reasoning("golden hour", source="assumption")).passed


def test_harm_head_is_the_first_three_words_or_fewer():
    assert scorers.score_harm("glowing fireflies", "fireflies", None).extra["head_changed"]
    assert not scorers.score_harm("fireflies at night", "fireflies", None).extra["head_changed"]
    assert scorers.score_harm("the Eiffel Tower at dusk", "the Eiffel Tower at dusk", None).passed
    moved = scorers.score_harm("Eiffel Tower at dusk, the", "the Eiffel Tower at dusk", None)
    assert moved.status == "fail" and moved.extra["head_changed"] and moved.extra["dropped"] == []


def _evidence_plan(*evidence, gaps=()):
    return {"gaps": [{"id": g, "kind": k} for g, k in gaps], "evidence": list(evidence)}


def test_harm_catches_a_memory_entry_the_request_never_referred_to():
    request = "a red apple on a table"
    memory = {"source": "memory", "gap_id": None, "content": "Pepper, a black labrador with a red collar"}
    score = scorers.score_harm(
        request + ", Pepper, a black labrador with a red collar", request, _evidence_plan(memory)
    )
    assert score.status == "fail" and score.extra["memory"] == ["black", "collar", "labrador", "pepper"]
    # a style preference applies to a request with no style: not harm
    style = {"source": "memory", "gap_id": "g2", "content": "soft watercolour illustrations"}
    plan = _evidence_plan(style, gaps=[("g2", "style")])
    assert scorers.score_harm(request + ", soft watercolour illustrations", request, plan).status == "pass"


def test_harm_catches_phantom_text_and_notes_for_the_user():
    request = "an old man reading a newspaper on a bench"
    score = scorers.score_harm(request + ', the text "a newspaper on a bench"', request, None)
    assert score.status == "fail" and score.extra["phantom_text"] == ["a newspaper on a bench"]
    quoted = 'a shop sign that says "OPEN"'
    assert scorers.score_harm(quoted + ', the text "OPEN"', quoted, None).status == "pass"
    note = {"source": "assumption", "gap_id": "g1", "content": "as generally known; current facts were not checked"}
    request = "the new headquarters"
    plan = _evidence_plan(note, gaps=[("g1", "time")])
    score = scorers.score_harm(request + ", as generally known; current facts were not checked", request, plan)
    assert score.status == "fail" and score.extra["notes"] == [note["content"]]


def test_reason_outcome_tells_right_wrong_and_withheld_names():
    request, expect = "the national flower of Japan", ["cherry blossom"]

    def name(content, used):
        return {"source": "reasoning", "role": "name", "content": content, "used": used}

    assert scorers.reason_outcome(_evidence_plan(name("cherry blossoms", True)), request, expect) == "right"
    assert scorers.reason_outcome(_evidence_plan(name("a rose", True)), request, expect) == "wrong"
    assert scorers.reason_outcome(_evidence_plan(name("cherry blossoms", False)), request, expect) == "withheld-right"
    assert scorers.reason_outcome(_evidence_plan(name("a rose", False)), request, expect) == "withheld-wrong"
    assert scorers.reason_outcome(_evidence_plan(), request, expect) == "none"
    assert scorers.reason_outcome(None, request, expect) is None


def test_a_withheld_guess_is_not_harm():
    request = "a crossing guard holding a stop sign at a school crosswalk"
    guess = {"source": "reasoning", "role": "name", "content": "a traffic light", "used": False}
    plan = {"gaps": [], "evidence": [guess]}
    assert scorers.score_harm(request + ", soft natural light", request, plan).status == "pass"
    used = dict(guess, used=True)
    assert scorers.score_harm(request + ", a traffic light", request, {"gaps": [], "evidence": [used]}).status == "fail"
