"""`qia plan` as users and scripts run it: exit codes, stdin, JSON, and the bundled model end to end."""

import json

import pytest

from tests.conftest import run_qia


@pytest.mark.parametrize(
    "args, message",
    [
        (["plan", ""], "the prompt is empty"),
        (["plan", "   "], "the prompt is empty"),
        (["plan", "x" * 5000], "the limit is"),
        (["plan", "a cat", "--llm", "/nonexistent/model.gguf"], "model file not found"),
        (["plan", "a cat", "--bogus"], "No such option"),
        (["plan", "a cat", "--search", "carrier-pigeon"], "search"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, message):
    result = run_qia(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model at all")
    result = run_qia("plan", "a cat", "--llm", str(fake))
    assert result.returncode == 2
    assert "not a GGUF model file" in result.stderr


def test_model_from_environment_is_used(tmp_path):
    result = run_qia("plan", "a cat", env={"QIA_LLM_MODEL": str(tmp_path / "missing.gguf")})
    assert result.returncode == 2 and "missing.gguf" in result.stderr


def test_corrupt_memory_stops_with_a_clear_message_and_keeps_the_bytes(isolated_home):
    memory = isolated_home / "data" / "memory.json"
    memory.parent.mkdir(parents=True)
    memory.write_bytes(b"{not json")
    result = run_qia("plan", "a cat", "--llm", "fake")
    assert result.returncode == 1
    assert str(memory) in result.stderr and "Traceback" not in result.stderr
    assert memory.read_bytes() == b"{not json"


def test_json_is_one_document_from_piped_stdin_without_blocking():
    result = run_qia("plan", "--json", "--llm", "fake", input="a poster for my dog's birthday\n", timeout=60)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["request"] == "a poster for my dog's birthday"
    assert plan["prompt"]
    # Nobody at a terminal: every question was answered by a recorded assumption.
    assert plan["questions"] and all(q["status"] == "assumed" for q in plan["questions"])
    assert any(e["source"] == "assumption" for e in plan["evidence"])


@pytest.mark.parametrize("where", ["after", "before"])
def test_quiet_prints_the_final_prompt_alone(where):
    args = ["plan", "a lighthouse on a cliff", "--llm", "fake", "--no-ask"]
    result = run_qia(*(args + ["-q"] if where == "after" else ["-q", *args]))
    assert result.returncode == 0, result.stderr
    planned = json.loads(run_qia(*args, "--json").stdout)
    assert result.stdout == planned["prompt"] + "\n"  # one line: no table, no panel, no footer
    assert result.stderr == ""


def test_the_footer_and_the_json_name_the_knowledge_model_too():
    from qia_cli.llm.bundled import bundled_path

    gguf = bundled_path()  # a real GGUF, named here; no knowledge question loads it
    env = {"QIA_KNOWLEDGE_LLM": str(gguf)}
    result = run_qia("plan", "a lighthouse on a cliff", "--llm", "fake", "--no-ask", env=env)
    assert result.returncode == 0, result.stderr
    assert f"planned by fake (knowledge questions: {gguf.name}) in" in " ".join(result.stdout.split())
    plan = json.loads(run_qia("plan", "a lighthouse on a cliff", "--llm", "fake", "--json", env=env).stdout)
    assert plan["model"]["name"] == "fake" and plan["knowledge_model"]["name"] == gguf.name
    result = run_qia("plan", "a lighthouse on a cliff", "--llm", "fake", "--no-ask")  # the planner answers
    assert "planned by fake in" in result.stdout and "knowledge questions" not in result.stdout


def test_dash_reads_the_prompt_from_stdin():
    result = run_qia("plan", "-", "--json", "--llm", "fake", input="a red kite")
    assert json.loads(result.stdout)["request"] == "a red kite"


def test_answer_flags_fill_questions_in_order():
    result = run_qia(
        "plan",
        "a poster for my dog's birthday",
        "--json",
        "--llm",
        "fake",
        "--answer",
        "Biscuit, a corgi",
        "--answer",
        "Happy birthday Biscuit",
    )
    plan = json.loads(result.stdout)
    assert "Biscuit, a corgi" in plan["prompt"]


def test_answers_file(tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"q1": "Rex, a black labrador"}))
    result = run_qia("plan", "my dog in the snow", "--json", "--llm", "fake", "--answers", str(answers))
    assert "Rex, a black labrador" in json.loads(result.stdout)["prompt"]
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = run_qia("plan", "my dog", "--llm", "fake", "--answers", str(bad))
    assert result.returncode == 2 and "answers file" in result.stderr


def test_memory_session_end_to_end():
    assert run_qia("memory", "add", "Biscuit is my dog, a three-legged corgi").returncode == 0
    plan = json.loads(run_qia("plan", "Biscuit playing in the park", "--json", "--llm", "fake").stdout)
    assert "three-legged corgi" in plan["prompt"]
    assert any(e["source"] == "memory" for e in plan["evidence"])
    other = json.loads(run_qia("plan", "a mountain lake at dawn", "--json", "--llm", "fake").stdout)
    assert "corgi" not in other["prompt"]


def test_search_fixture_end_to_end(tmp_path):
    fixture = tmp_path / "search.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "query": "world chess champion 2026",
                    "results": [
                        {
                            "title": "Chess",
                            "href": "https://chess.example/2026",
                            "body": "The 2026 world chess champion is Mira Solberg of Norway.",
                        }
                    ],
                }
            ]
        )
    )
    result = run_qia(
        "plan",
        "the 2026 world chess champion at the board",
        "--json",
        "--llm",
        "fake",
        "--search",
        f"fixture:{fixture}",
    )
    plan = json.loads(result.stdout)
    assert "Mira Solberg" in plan["prompt"]
    ev = [e for e in plan["evidence"] if e["source"] == "search"]
    assert ev[0]["detail"] == "https://chess.example/2026"


def test_remember_saves_answers_about_lasting_facts():
    run_qia("plan", "my cat asleep", "--llm", "fake", "--answer", "Mo, a grey tabby", "--remember")
    listed = json.loads(run_qia("memory", "list", "--json").stdout)
    assert any("Mo, a grey tabby" in e["text"] for e in listed)


def test_no_remember_by_default_when_nobody_is_asked():
    run_qia("plan", "my cat asleep", "--llm", "fake", "--answer", "Mo, a grey tabby")
    listed = json.loads(run_qia("memory", "list", "--json").stdout)
    assert not any("Mo" in e["text"] for e in listed)


@pytest.mark.slow
def test_bundled_model_plans_end_to_end():
    """The real bundled GGUF through llama-cpp-python: the structure, not the wording."""
    result = run_qia("plan", "a poster for my dog's birthday", "--json", "--no-ask", timeout=300)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["prompt"].strip()
    assert plan["gaps"] and all(g["action"] in {"ask", "search", "recall", "reason", "assume"} for g in plan["gaps"])
    assert plan["model"]["backend"] == "llama.cpp" and "SmolLM2" in plan["model"]["name"]
    assert plan["timings"]["total"] > 0


@pytest.mark.slow
def test_bundled_model_reasons_about_a_description():
    result = run_qia("plan", "The fruit that keeps the doctor away, according to the saying", "--json", timeout=300)
    plan = json.loads(result.stdout)
    gap = next(g for g in plan["gaps"] if g["kind"] == "knowledge")
    assert gap["action"] == "reason" and gap["query"].startswith("What is")
    assert "reason" in plan["timings"]
