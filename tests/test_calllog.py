"""The call log: every model call of every stage recorded with its fields and whether its answer reached the
prompt; nothing written when logging is off; parallel processes lose no rows; a corrupt or locked database
warns once and never fails a plan; secrets never enter it; `qia logs` reads it back."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qia_cli import paths
from qia_cli.agent.run import Agent
from qia_cli.calllog.store import CallLog, Filters
from qia_cli.config import Settings
from qia_cli.llm import calls as stages
from qia_cli.llm.base import Completion
from qia_cli.llm.fake import FakeLLM
from qia_cli.llm.types import ModelInfo
from qia_cli.search.fixture import FixtureBackend
from tests.conftest import run_qia

FLOWER = "the national flower of Japan in a blue vase"
ANSWERS = {
    "national flower of Japan": "cherry blossoms",
    "look like": "pale pink five-petal flowers on dark branches",
    "headquarters": "a glass tower shaped like a sail",
}
GAPS = {"Image request": {"missing": [{"kind": "purpose", "span": "blue vase", "question": "What is it for?"}]}}
FIELDS = {"time", "plan_id", "request", "stage", "model", "question", "prompt", "answer", "logprob", "tokens"}
FIELDS |= {"seconds", "used", "outcome", "why"}


def scripted() -> FakeLLM:
    return FakeLLM(dict(ANSWERS), json_answers=dict(GAPS))


def headquarters(tmp_path: Path) -> FixtureBackend:
    path = tmp_path / "fixture.json"
    body = "Acme's new headquarters is a glass tower shaped like a sail in Lisbon."
    path.write_text(
        json.dumps(
            [
                {
                    "query": "new headquarters acme",
                    "results": [{"title": "Acme opens", "href": "https://news.example/acme", "body": body}],
                }
            ]
        )
    )
    return FixtureBackend(path)


def logged(log: CallLog, **filters) -> list[dict]:
    return [c for plan in log.query(Filters(plans=0, **filters)) for c in plan["calls"]]


def test_every_planning_stage_is_logged_with_its_fields_and_whether_it_was_used(tmp_path):
    log = CallLog(tmp_path / "calls.db")
    agent = Agent(Settings(llm="fake"), llm=scripted(), calllog=log, search=headquarters(tmp_path))
    flower = agent.plan(FLOWER)
    acme = agent.plan("the new headquarters of Acme")

    rows = logged(log)
    assert {r["stage"] for r in rows} == {stages.GAPS, stages.KNOWLEDGE, stages.LOOK, stages.SEARCH}
    for row in rows:
        assert FIELDS <= set(row) and row["model"]["name"] == "fake" and row["prompt"] and row["question"]
        assert row["plan_id"] in {flower.id, acme.id} and row["seconds"] >= 0 and isinstance(row["used"], bool)

    mine = [r for r in rows if r["plan_id"] == flower.id]
    knowledge = [r for r in mine if r["stage"] == stages.KNOWLEDGE]
    assert [r["answer"] for r in knowledge] == ["cherry blossoms", "cherry blossoms"]  # asked twice
    named = next(e for e in flower.evidence if e.role == "name")
    assert [r["outcome"] for r in knowledge] == ["used", "confirmation"] and knowledge[0]["gap_id"] == named.gap_id
    assert knowledge[0]["request"] == FLOWER and "national flower of Japan" in knowledge[0]["question"]
    look = [r for r in mine if r["stage"] == stages.LOOK]
    assert look[0]["used"] and look[0]["answer"] in flower.prompt
    (gaps,) = [r for r in mine if r["stage"] == stages.GAPS]
    (proposed,) = [g for g in flower.gaps if g.origin == "llm"]
    assert gaps["used"] and proposed.id in gaps["detail"]  # it proposed the purpose gap the plan kept

    (search,) = [r for r in rows if r["stage"] == stages.SEARCH]
    found = next(e for e in acme.evidence if e.source == "search")
    assert search["plan_id"] == acme.id and search["used"] and search["gap_id"] == found.gap_id is not None
    assert "glass tower" in acme.prompt
    plans = {p["id"]: p for p in log.query(Filters(plans=0))}
    assert plans[flower.id]["prompt"] == flower.prompt and plans[flower.id]["request"] == FLOWER


class Sequence(FakeLLM):
    """Answers each completion with the next of `texts`, with a low log-probability (a guess)."""

    def __init__(self, *texts: str) -> None:
        super().__init__()
        self.texts = list(texts)

    def complete(self, prompt, *, max_tokens=24, stop=None):
        self.prompts.append(prompt)
        return Completion(text=self.texts.pop(0) if self.texts else "", tokens=2, logprob=-1.5)


def test_a_withheld_guess_is_logged_with_why_and_marked_in_the_plan_and_explain(monkeypatch, qia):
    guess = Sequence("chrysanthemum", "cherry blossom", "a flower")
    monkeypatch.setattr("qia_cli.llm.factory.make_llm", lambda settings, verbose=False: guess)
    result = qia("plan", FLOWER, "--llm", "fake", "--no-ask", "--explain")
    assert result.code == 0, result.err
    out = result.out
    assert "✗ withheld" in out and "chrysanthemum" in out  # the guess, shown unlike used evidence
    why = out.split("Why", 1)[1]
    assert re.search(r"g\d+ knowledge", why) and "withheld: a guess" in why and "not used" in why

    doc = json.loads(qia("logs", "--json").out)
    (plan,) = doc["plans"]
    first = next(c for c in plan["calls"] if c["stage"] == "knowledge")
    assert (first["answer"], first["used"], first["outcome"]) == ("chrysanthemum", False, "withheld")
    assert first["why"].startswith("a guess") and first["logprob"] == -1.5 and first["tokens"] == 2


def test_plan_explain_json_carries_the_calls(qia):
    result = qia("plan", FLOWER, "--llm", "fake", "--json", "--explain")
    doc = json.loads(result.out)
    assert doc["id"] and doc["calls"] and {c["plan_id"] for c in doc["calls"]} == {doc["id"]}


def test_feedback_calls_are_logged_under_the_plan(tiny_pipeline_dir, tmp_path):
    from tests.test_feedback import RENDERER, ScriptedScorer, make_plan, opts

    log = CallLog(tmp_path / "calls.db")
    llm = FakeLLM({"look like": "rough red bricks with grey mortar"})
    agent = Agent(Settings(threshold=0.22), llm=llm, calllog=log, scorer=ScriptedScorer([0.3, 0.1], [0.3, 0.3]))
    agent.renderer = RENDERER
    plan = make_plan().model_copy(update={"id": "pfeedback"})
    result = agent.render(plan, opts(tiny_pipeline_dir, tmp_path, rounds=1))
    rows = logged(log, stage=[stages.FEEDBACK])
    assert rows and {r["plan_id"] for r in rows} == {"pfeedback"}
    assert rows[0]["detail"] == "a brick wall" and rows[0]["used"]
    assert rows[0]["answer"] in result.rounds[1].prompt


def test_bench_calls_are_logged_in_the_users_log_not_the_items_home(tmp_path, isolated_home):
    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"id": "r1", "capability": "reason", "request": FLOWER, "expect_any": ["x"]}) + "\n")
    result = run_qia("bench", str(suite), "--llm", "fake", "--json")
    assert result.returncode == 0, result.stderr
    rows = logged(CallLog(isolated_home / "data" / "calls.db"))
    assert {r["stage"] for r in rows} >= {stages.BENCH, stages.KNOWLEDGE}
    assert all(r["plan_id"] is None for r in rows if r["stage"] == stages.BENCH)  # the baselines
    assert all(r["plan_id"] for r in rows if r["stage"] == stages.KNOWLEDGE)  # the agent's plan


def test_logging_off_writes_nothing(isolated_home, qia):
    db = isolated_home / "data" / "calls.db"
    for args in (["plan", FLOWER, "--llm", "fake", "--no-log"],):
        assert qia(*args).code == 0
    assert not db.exists()
    assert qia("logs", "off").code == 0
    assert qia("plan", FLOWER, "--llm", "fake").code == 0
    assert not db.exists()
    assert qia("logs", "on").code == 0
    assert qia("plan", FLOWER, "--llm", "fake").code == 0
    assert db.exists() and logged(CallLog(db))


def test_secrets_never_enter_the_log(tmp_path):
    key = "sk-test-0123456789abcdefXYZ"

    class Server(FakeLLM):
        def __init__(self):
            super().__init__({"national flower": f"cherry blossoms Authorization: Bearer {key}"})
            self.info = ModelInfo(name="m", backend="openai", path="https://bob:hunter22@llm.example/v1?api_key=zzz9")

    log = CallLog(tmp_path / "calls.db")
    agent = Agent(Settings(llm="fake", llm_api_key=key), llm=Server(), calllog=log)
    agent.plan(f"the national flower of Japan, key {key}")
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("calls.db"))
    assert logged(log) and b"national flower" in stored
    for secret in (key, "hunter22", "zzz9", "bob:"):
        assert secret.encode() not in stored


def test_a_corrupt_log_warns_once_and_every_plan_succeeds(tmp_path, isolated_home):
    db = isolated_home / "data" / "calls.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database, just text " * 200)
    requests = tmp_path / "requests.txt"
    requests.write_text("a red bicycle\na blue house\na green tree\n")
    result = run_qia("batch", str(requests), "--plan-only", "--llm", "fake", "--outdir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("call log") == 1 and "not a database" in result.stderr
    assert db.read_bytes().startswith(b"this is not a database")  # left as it was
    shown = run_qia("logs")
    assert shown.returncode == 1 and "cannot be read" in shown.stderr and "Traceback" not in shown.stderr


def test_a_locked_log_warns_once_and_the_plan_succeeds(tmp_path):
    warned: list[str] = []
    log = CallLog(tmp_path / "calls.db", timeout=0.2, on_warning=warned.append)
    agent = Agent(Settings(llm="fake"), llm=scripted(), calllog=log)
    agent.plan("a red bicycle")  # creates the log
    holder = sqlite3.connect(tmp_path / "calls.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert agent.plan(FLOWER).prompt and agent.plan(FLOWER).prompt
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(warned) == 1 and "locked" in warned[0] and len(log.warnings) == 2
    agent.plan(FLOWER)
    assert len(log.query(Filters(plans=0))) == 2  # the first plan and the one after the lock


PARALLEL = """
import sys
from qia_cli.cli.app import main
sys.argv = ["qia", "batch", sys.argv[1], "--plan-only", "--llm", "fake", "--outdir", sys.argv[2], "--json"]
main()
"""


def test_two_parallel_processes_lose_no_rows(tmp_path, isolated_home):
    requests = tmp_path / "requests.txt"
    requests.write_text("".join(f"{FLOWER} number {i}\n" for i in range(12)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PARALLEL, str(requests), str(tmp_path / f"out{n}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        for n in range(2)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        assert b"call log" not in err
    plans = CallLog(paths.calllog_file()).query(Filters(plans=0))
    ids = {
        json.loads(line)["plan"]["id"]
        for n in range(2)
        for line in (tmp_path / f"out{n}" / "results.jsonl").read_text().splitlines()
    }
    assert len(ids) == 24 and {p["id"] for p in plans} == ids
    counts = {len(p["calls"]) for p in plans}
    assert len(counts) == 1 and counts.pop() >= 2  # every plan has all of its calls


def test_logs_filters_search_and_prune(tmp_path):
    log = CallLog(tmp_path / "calls.db")
    agent = Agent(Settings(llm="fake"), llm=scripted(), calllog=log, search=headquarters(tmp_path))
    flower = agent.plan(FLOWER)
    acme = agent.plan("the new headquarters of Acme")
    assert [p["id"] for p in log.query()] == [acme.id]  # the last plan by default
    assert [p["id"] for p in log.query(Filters(plans=2))] == [flower.id, acme.id]
    assert [p["id"] for p in log.query(Filters(plan=flower.id[:5]))] == [flower.id]
    assert {c["stage"] for c in logged(log, stage=["look"])} == {"look"}
    assert {c["plan_id"] for c in logged(log, query="cherry blossoms")} == {flower.id}
    assert {c["plan_id"] for c in logged(log, query='glass "tower')} == {acme.id}  # quotes are words, not syntax
    assert logged(log, model="fak") and not logged(log, model="llama")
    from datetime import timedelta

    assert log.prune(timedelta(days=30)) == (0, 0)
    plans, calls = log.prune(timedelta(seconds=0))
    assert plans == 2 and calls > 0 and log.query(Filters(plans=0)) == []


def test_logs_cli_path_json_and_bad_input(isolated_home, qia):
    assert qia("logs", "path").out.strip() == str(isolated_home / "data" / "calls.db")
    empty = qia("logs", "--json")
    assert json.loads(empty.out)["plans"] == []
    plan = json.loads(qia("plan", FLOWER, "--llm", "fake", "--json").out)
    from qia_cli.memory.store import MemoryStore

    assert MemoryStore().sessions()[-1].plan_id == plan["id"]  # the session record names the plan
    table = qia("logs", "--stage", "knowledge,gaps")
    assert table.code == 0 and "knowledge" in table.out and FLOWER in table.out
    bad = run_qia("logs", "prune", "--older-than", "soon")
    assert bad.returncode == 2 and "invalid duration" in bad.stderr
    missing = run_qia("logs", "--plan", "pnope")
    assert missing.returncode == 2 and "no plan 'pnope'" in missing.stderr


def test_the_size_cap_drops_the_oldest_calls(tmp_path):
    log = CallLog(tmp_path / "calls.db", max_mb=1)
    agent = Agent(Settings(llm="fake"), llm=FakeLLM(default="x" * 2000), calllog=log)
    for i in range(300):
        agent.plan(f"{FLOWER} {i}")
    stats = log.stats()
    assert stats["bytes"] <= 1 << 20 and (tmp_path / "calls.db").stat().st_size <= 2 << 20
    newest = log.query()[0]
    assert newest["request"].endswith(" 299") and log.query(Filters(plans=0))[0]["request"] != f"{FLOWER} 0"


@pytest.mark.slow
def test_the_bundled_model_plan_is_in_the_log_with_question_answer_model_stage_and_use():
    """The issue's check: after `qia plan "the national flower of Japan in a blue vase"`, `qia logs --json`
    holds that plan's model calls with question, answer, model, stage and whether each was used."""
    plan = run_qia("plan", FLOWER, "--no-ask", "--json", timeout=600)
    assert plan.returncode == 0, plan.stderr
    plan_id = json.loads(plan.stdout)["id"]
    doc = json.loads(run_qia("logs", "--json").stdout)
    (logged_plan,) = doc["plans"]
    assert logged_plan["id"] == plan_id and logged_plan["calls"]
    for call in logged_plan["calls"]:
        assert call["question"] and call["answer"] is not None and call["model"]["name"] and call["stage"]
        assert isinstance(call["used"], bool) and (call["used"] or call["why"])
    assert any(c["stage"] == "knowledge" and "flower" in c["question"] for c in logged_plan["calls"])
