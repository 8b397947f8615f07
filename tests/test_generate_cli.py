"""`qia generate` end to end on the tiny random-weight pipeline, through the real from_pretrained path."""

import json
import time
from pathlib import Path

import pytest

from qia_cli.imaging.output import read_metadata
from tests.conftest import run_qia


@pytest.fixture
def generate(qia):
    """`qia generate ARGS --llm fake --json` in this process: its JSON document (exit code 0)."""

    def run(*args: str) -> dict:
        code, out, err = qia("generate", *args, "--llm", "fake", "--json")
        assert code == 0, err
        return json.loads(out)

    return run


def test_generate_writes_png_with_plan_and_sidecar(tiny_pipeline_dir, tmp_path, generate):
    doc = generate("a red bicycle", "--model", str(tiny_pipeline_dir), "--steps", "2", "--outdir", str(tmp_path))
    (out,) = doc["outputs"]
    png = Path(out["path"])
    assert png.parent == tmp_path and png.suffix == ".png" and "red-bicycle" in png.name
    from PIL import Image

    with Image.open(png) as img:
        assert img.size == (64, 64)
    meta = read_metadata(png)
    assert meta["qia:request"] == "a red bicycle"
    assert meta["qia:prompt"] == doc["plan"]["prompt"]
    assert meta["qia:seed"] == str(out["seed"])
    assert json.loads(meta["qia:plan"])["request"] == "a red bicycle"
    sidecar = json.loads(Path(out["sidecar"]).read_text())
    assert sidecar["plan"]["prompt"] == doc["plan"]["prompt"]
    assert {"plan", "load_pipeline", "render", "save"} <= set(doc["timings"])
    assert doc["render"]["steps"] == 2


def test_same_seed_same_image_and_count_gives_distinct_seeds(tiny_pipeline_dir, tmp_path, generate):
    import numpy as np
    from PIL import Image

    a = generate(
        "a cat",
        "--model",
        str(tiny_pipeline_dir),
        "--seed",
        "42",
        "--steps",
        "2",
        "--outdir",
        str(tmp_path),
        "--no-plan",
    )
    b = generate(
        "a cat",
        "--model",
        str(tiny_pipeline_dir),
        "--seed",
        "42",
        "--steps",
        "2",
        "--outdir",
        str(tmp_path),
        "--no-plan",
    )
    pa, pb = a["outputs"][0]["path"], b["outputs"][0]["path"]
    assert pa != pb  # never overwritten
    assert np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb)))
    two = generate(
        "a cat", "--model", str(tiny_pipeline_dir), "--count", "2", "--steps", "2", "--outdir", str(tmp_path)
    )
    seeds = [o["seed"] for o in two["outputs"]]
    assert len(set(seeds)) == 2 and len({o["path"] for o in two["outputs"]}) == 2


def test_no_plan_renders_the_prompt_as_typed(tiny_pipeline_dir, tmp_path, generate):
    doc = generate(
        "exactly this", "--model", str(tiny_pipeline_dir), "--outdir", str(tmp_path), "--no-plan", "--steps", "1"
    )
    assert doc["render"]["prompt"] == "exactly this" and doc["plan"]["gaps"] == []


def test_output_file_and_session_record(tiny_pipeline_dir, tmp_path, generate):
    target = tmp_path / "mine.png"
    doc = generate("a kite", "--model", str(tiny_pipeline_dir), "--steps", "1", "-o", str(target))
    assert doc["outputs"][0]["path"] == str(target) and target.exists() and target.with_suffix(".json").exists()
    from qia_cli.memory.store import MemoryStore

    (record,) = MemoryStore().sessions()
    assert record.kind == "generate" and record.outputs == [str(target)]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "500x500"], "multiples of 8"),
        (["--size", "0x64"], "size"),
        (["--size", "banana"], "size"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_bad_render_flags_exit_2(tiny_pipeline_dir, tmp_path, extra, message):
    result = run_qia(
        "generate", "a cat", "--llm", "fake", "--model", str(tiny_pipeline_dir), "--outdir", str(tmp_path), *extra
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outdir_fails_before_loading_and_leaves_nothing(tiny_pipeline_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_qia(
        "generate", "a cat", "--llm", "fake", "--model", str(tiny_pipeline_dir), "--outdir", str(blocker / "sub")
    )
    assert result.returncode == 2 and "not writable" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_folder_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_qia(
        "generate", "a cat", "--llm", "fake", "--model", str(tmp_path / "empty"), "--outdir", str(tmp_path / "o")
    )
    assert result.returncode == 2 and "not a diffusers pipeline" in result.stderr


def test_hub_model_offline_fails_fast_with_how_to_get_it(tmp_path):
    start = time.monotonic()
    result = run_qia(
        "generate",
        "a cat",
        "--llm",
        "fake",
        "--model",
        "someone/never-downloaded-model",
        "--outdir",
        str(tmp_path),
        env={"HF_HUB_CACHE": str(tmp_path / "hf")},
    )
    assert time.monotonic() - start < 60  # torch import included; the hub retries alone would take ~23 s
    assert result.returncode == 2, result.stderr
    assert "someone/never-downloaded-model" in result.stderr and "qia models pull" in result.stderr


def test_seed_minus_one_is_random_and_a_prompt_past_clip_warns_what_is_cut(tiny_pipeline_dir, tmp_path, generate):
    long = " ".join(f"word{i}" for i in range(60))
    doc = generate(
        long, "--model", str(tiny_pipeline_dir), "--no-plan", "--seed", "-1", "--steps", "1", "--outdir", str(tmp_path)
    )
    assert 0 <= doc["outputs"][0]["seed"] <= 2**32 - 1
    (note,) = [w for w in doc["plan"]["warnings"] if "reads 77 tokens" in w]
    assert "will not see" in note and "word59" in doc["plan"]["prompt"] and "word0 " not in note.split("see:")[1]
    short = generate("a cat", "--model", str(tiny_pipeline_dir), "--no-plan", "--steps", "1", "--outdir", str(tmp_path))
    assert not [w for w in short["plan"]["warnings"] if "tokens" in w]


def test_control_characters_never_reach_the_png_or_the_session(tiny_pipeline_dir, tmp_path, generate):
    doc = generate(
        "a \x1b]0;pwned\x07red\x1b[2J kite\x00",
        "--model",
        str(tiny_pipeline_dir),
        "--no-plan",
        "--steps",
        "1",
        "--outdir",
        str(tmp_path),
        "--negative",
        "blur\x1b[31m",
    )
    meta = read_metadata(Path(doc["outputs"][0]["path"]))
    assert meta["qia:request"] == meta["qia:prompt"] == "a red kite" and meta["qia:negative_prompt"] == "blur"
    from qia_cli.memory.store import MemoryStore

    assert [s.request for s in MemoryStore().sessions()] == ["a red kite"]
