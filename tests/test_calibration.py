"""Per-model calibration: a model's own saved thresholds, else the measured row for its family, else defaults."""

from qia_cli.llm import calibration
from qia_cli.llm.calibration import Calibration
from qia_cli.llm.types import ModelInfo, ModelProfile


def info(tmp_path, arch="qwen2", size="1.5B", name="m.gguf"):
    path = tmp_path / name
    path.write_bytes(b"GGUF" + b"\0" * 10)
    return ModelInfo(
        name=name, backend="llama.cpp", path=str(path), profile=ModelProfile(architecture=arch, size_label=size)
    )


def test_an_unmeasured_model_gets_the_cautious_default(tmp_path):
    cal = calibration.load(info(tmp_path, arch="mystery", size="3B"), tmp_path / "none.json")
    assert cal == Calibration() and cal.sure is None and cal.whole is None and "default" in cal.source


def test_a_saved_calibration_wins_and_is_keyed_by_the_file(tmp_path, monkeypatch):
    model = info(tmp_path)
    measured = Calibration(sure=-0.4, agree=-0.9, agree3=-1.5, whole=-0.5, source="family row")
    monkeypatch.setitem(calibration.MEASURED, ("qwen2", "1.5B"), measured)
    saved = tmp_path / "calibration.json"
    assert calibration.load(model, saved) == measured  # nothing saved yet: the family's measured row
    mine = Calibration(sure=-0.2, agree=-0.5, agree3=-1.0, whole=None, source="qia bench calibrate")
    calibration.save(model, mine, saved)
    assert calibration.load(model, saved) == mine
    other = info(tmp_path, name="other.gguf")  # another file of the same family: the row, not this file's
    assert calibration.load(other, saved) == measured


def test_a_broken_calibration_file_is_ignored(tmp_path):
    saved = tmp_path / "calibration.json"
    saved.write_text("{not json")
    assert calibration.load(info(tmp_path, arch="x"), saved) == Calibration()
    saved.write_text('{"m.gguf:14": {"sure": "high", "bogus": 1}}')  # edited by hand: wrong type
    assert calibration.load(info(tmp_path, arch="x"), saved) == Calibration()
    saved.write_text('{"m.gguf:14": {"sure": -0.5, "bogus": 1}}')  # unknown keys are ignored
    assert calibration.load(info(tmp_path, arch="x"), saved).sure == -0.5


def _asked(capability, request, answers, flagged=True, expect=()):
    from qia_cli.agent.grounding.reasoning import Candidate
    from qia_cli.bench.calibrate import Asked
    from qia_cli.bench.suite import Item

    item = Item(id=request[:20], capability=capability, request=request, expect_any=list(expect))
    suite = "knowledge" if capability == "reason" else "everyday"
    return Asked(suite, item, flagged, [Candidate("q", 0, text, lp) for text, lp in answers])


def test_the_search_keeps_the_most_right_answers_that_harm_no_ordinary_request():
    from qia_cli.bench import calibrate

    rows = [
        # the model is sure of a right answer at once, and agrees with itself on another at -1.0
        _asked("reason", "the national flower of Japan", [("cherry blossoms", -0.3)], expect=["cherry blossom"]),
        _asked(
            "reason", "the tallest mountain on Earth", [("Everest", -1.0), ("Mount Everest", -1.1)], expect=["Everest"]
        ),
        # an ordinary request the grammar flags, answered at -1.2 twice: trusting -1.2 would harm it
        _asked("ordinary", "a robot that waters the plants", [("a gardener", -1.2), ("a gardener", -1.2)]),
    ] + [_asked("ordinary", f"a red bicycle number {i}", [("a red bicycle", -0.1)], flagged=False) for i in range(99)]
    cal, result = calibrate.search(rows, "test")
    assert result["harm"]["everyday"] == (0, 100)
    assert result["right"] == 2 and result["wrong"] == 0
    assert cal.sure is not None and cal.sure > -1.2 and cal.agree > -1.2 and cal.whole is None  # the robot stays out


def test_qia_bench_calibrate_saves_the_result_for_the_model(isolated_home):
    import json

    from tests.conftest import run_qia

    result = run_qia("bench", "calibrate", "--llm", "fake", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["saved"] and set(doc["calibration"]) >= {"sure", "agree", "agree3", "whole", "source"}
    saved = json.loads(next(isolated_home.rglob("calibration.json")).read_text())
    assert [v["source"] for v in saved.values()] == [doc["calibration"]["source"]]
    assert run_qia("bench", "calibrate", "--split", "test", "--llm", "fake").returncode == 2  # tune on dev only


def test_the_bundled_models_find_their_measured_rows_by_name_before_they_are_built():
    from qia_cli.llm.bundled import KNOWLEDGE_NAME, NAME

    for name in (KNOWLEDGE_NAME, NAME):
        cal = calibration.load(ModelInfo(name=name, backend="llama.cpp"), None)
        assert "measured" in cal.source and cal.whole is None  # small models do not judge requests


def test_qia_bench_plans_with_the_calibration_the_user_saved(isolated_home, tmp_path):
    import json

    from tests.conftest import run_qia

    suite = tmp_path / "mine.jsonl"
    suite.write_text(
        json.dumps(
            {"id": "r", "capability": "reason", "request": "the national flower of Japan", "expect_any": ["sakura"]}
        )
        + "\n"
    )
    before = json.loads(run_qia("bench", str(suite), "--llm", "fake", "--json", "--no-baselines").stdout)
    assert "default" in before["model"]["calibration"]["source"]
    assert run_qia("bench", "calibrate", "--llm", "fake").returncode == 0
    after = json.loads(run_qia("bench", str(suite), "--llm", "fake", "--json", "--no-baselines").stdout)
    assert after["model"]["calibration"]["source"] == "qia bench calibrate on the dev split"
