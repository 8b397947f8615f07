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
    assert cal == Calibration() and cal.sure is None and not cal.whole and "default" in cal.source


def test_a_saved_calibration_wins_and_is_keyed_by_the_file(tmp_path, monkeypatch):
    model = info(tmp_path)
    measured = Calibration(sure=-0.4, agree=-0.9, agree3=-1.5, whole=True, source="family row")
    monkeypatch.setitem(calibration.MEASURED, ("qwen2", "1.5B"), measured)
    saved = tmp_path / "calibration.json"
    assert calibration.load(model, saved) == measured  # nothing saved yet: the family's measured row
    mine = Calibration(sure=-0.2, agree=-0.5, agree3=-1.0, whole=False, source="qia bench calibrate")
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
