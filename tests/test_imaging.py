"""The imaging layer: loading, rendering, saving, and the ways each can fail."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from qia_cli.agent.types import RenderSpec
from qia_cli.errors import ModelError, UsageError
from qia_cli.imaging import hub
from qia_cli.imaging import pipeline as R
from qia_cli.imaging.device import resolve_device
from qia_cli.imaging.families import defaults_for
from qia_cli.imaging.output import (
    build_metadata,
    check_output_file,
    check_writable,
    output_name,
    read_metadata,
    save_image,
    slugify,
)

# diffusers' Euler scheduler trips a numpy-2 DeprecationWarning on every render; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
RENDERER = R.DiffusersRenderer()  # one for the module: the pipeline stays warm between tests

WHEN = datetime(2026, 11, 28, 14, 15, 2)


def make_spec(model: Path, **changes) -> RenderSpec:
    values = dict(
        prompt="a red bicycle", model=str(model), width=64, height=48, steps=2, guidance=0.0, seed=12345, device="cpu"
    )
    values.update(changes)
    return RenderSpec(**values)


def save(img, seed, spec, outdir, request="red bicycle", **kw):
    meta = build_metadata(request, spec, seed, plan_json=json.dumps({"request": request}))
    return save_image(
        img,
        outdir=outdir,
        output=kw.pop("output", None),
        metadata=meta,
        sidecar={"request": request, "seed": seed, "render": spec.model_dump()},
        name=output_name(request, seed, WHEN),
        **kw,
    )


# --- loading ---------------------------------------------------------------------------------


def test_load_real_from_pretrained_and_cache(tiny_pipeline_dir):
    from diffusers import StableDiffusionPipeline

    renderer = R.DiffusersRenderer()
    first = renderer.load(str(tiny_pipeline_dir), "cpu")
    second = renderer.load(str(tiny_pipeline_dir), "cpu")
    assert isinstance(first.pipe, StableDiffusionPipeline)
    assert second is first and renderer.loaded == [first]
    assert renderer.loads == 1
    other = renderer.load(str(tiny_pipeline_dir), "cpu", dtype="bf16" if first.dtype_name == "fp32" else "fp32")
    assert renderer.loads == 2 and renderer.loaded == [other]  # one pipeline at a time
    renderer.release()
    assert renderer.loaded == []
    assert first.device == "cpu" and first.family.width == 64


def test_folder_without_model_index(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(ModelError, match="no model_index.json"):
        RENDERER.load(str(tmp_path), "cpu")


def test_missing_local_folder(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        RENDERER.load(str(tmp_path / "nope"), "cpu")


def test_uncached_hub_id_unreachable_fails_fast(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test; the loader sets it to 1
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: unreachable
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", hc.HF_HUB_OFFLINE)
    monkeypatch.setattr(hub, "_REACHABLE", None)
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        RENDERER.load("qia-tests/not-a-cached-model", "cpu")
    assert time.perf_counter() - start < 10
    assert "qia-tests/not-a-cached-model" in info.value.message
    assert "cannot be reached" in info.value.message
    assert "qia models pull qia-tests/not-a-cached-model" in info.value.hint


def test_uncached_hub_id_offline_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelError, match="not in the Hugging Face cache"):
        RENDERER.load("qia-tests/not-a-cached-model", "cpu")
    assert time.perf_counter() - start < 10


# --- device, size, families -------------------------------------------------------------------


def test_devices():
    import torch

    assert resolve_device("cpu", "fp32") == ("cpu", torch.float32)
    assert resolve_device("cpu")[1] in {torch.float32, torch.bfloat16}  # by the CPU: see test_dtype_vae.py
    assert resolve_device("auto")[0] in {"cpu", "cuda", "mps"}
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    import torch

    from qia_cli.imaging import device

    monkeypatch.setattr(device, "_cuda_ok", lambda: False)
    monkeypatch.setattr(device, "_mps_ok", lambda: True)
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset())
    assert resolve_device("auto") == ("mps", torch.float16)
    monkeypatch.setattr(device, "_cuda_ok", lambda: True)
    assert resolve_device("auto") == ("cuda", torch.float16)
    assert resolve_device("CPU") == ("cpu", torch.float32)
    monkeypatch.setattr(device, "_mps_ok", lambda: False)
    with pytest.raises(UsageError, match="not available"):
        resolve_device("mps")


@pytest.mark.parametrize("text", ["500x500", "0x512", "512", "axb", "8192x8", "4096x4096", "-8x8"])
def test_bad_sizes(text):
    with pytest.raises(UsageError, match="size"):
        R.parse_size(text)


def test_good_sizes():
    assert R.parse_size("768x512") == (768, 512)
    assert R.parse_size(" 512*768 ") == (512, 768)
    assert R.parse_size("4096x2048") == (4096, 2048)


def test_render_rejects_bad_size(tiny_pipeline_dir):
    with pytest.raises(UsageError, match="multiples of 8"):
        RENDERER.render(make_spec(tiny_pipeline_dir, width=500, height=500))


def test_families(tiny_pipeline_dir, tmp_path):
    turbo = defaults_for("stabilityai/sd-turbo")
    assert (turbo.steps, turbo.guidance, turbo.width) == (1, 0.0, 512)
    assert defaults_for("stabilityai/sdxl-turbo").width == 512
    assert defaults_for("stabilityai/stable-diffusion-xl-base-1.0").width == 1024
    assert defaults_for("stabilityai/stable-diffusion-2-1").width == 768
    assert defaults_for("stabilityai/stable-diffusion-2-1-base").width == 512
    assert defaults_for("runwayml/stable-diffusion-v1-5").steps == 25
    assert defaults_for("someone/unknown").guidance == 7.0
    xl = tmp_path / "mymodel"
    xl.mkdir()
    (xl / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    assert defaults_for(str(xl)).family == "sdxl"
    assert defaults_for(str(tiny_pipeline_dir)).width == 64


# --- rendering and saving ----------------------------------------------------------------------


def test_render_save_size_and_metadata(tiny_pipeline_dir, tmp_path):
    spec = make_spec(tiny_pipeline_dir, negative_prompt="blurry", guidance=2.0)
    steps = []
    [(img, seed)] = RENDERER.render(spec, on_step=lambda s, t: steps.append((s, t)))
    assert seed == 12345 and img.size == (64, 48)
    assert steps[-1] == (2, 2)
    png, side = save(img, seed, spec, tmp_path / "out")
    assert png.name == "20261128-141502_red-bicycle_s12345.png"
    assert side == png.with_suffix(".json")
    from PIL import Image

    with Image.open(png) as reread:
        assert reread.size == (64, 48)
    meta = read_metadata(png)
    assert meta["qia:request"] == "red bicycle"
    assert meta["qia:prompt"] == "a red bicycle"
    assert meta["qia:negative_prompt"] == "blurry"
    assert meta["qia:seed"] == "12345"
    assert meta["qia:model"] == str(tiny_pipeline_dir)
    assert meta["qia:steps"] == "2"
    assert json.loads(meta["qia:plan"]) == {"request": "red bicycle"}
    assert "Seed: 12345" in meta["parameters"]
    body = json.loads(side.read_text())
    assert body["seed"] == 12345 and body["image"] == png.name


def test_unicode_metadata_round_trips(tiny_pipeline_dir, tmp_path):
    spec = make_spec(tiny_pipeline_dir, prompt="桜の花 — café")
    [(img, seed)] = RENDERER.render(spec)
    png, _ = save(img, seed, spec, tmp_path, request="桜 " * 600)
    meta = read_metadata(png)
    assert meta["qia:prompt"] == "桜の花 — café"
    assert meta["qia:request"] == "桜 " * 600
    assert png.name == "20261128-141502_image_s12345.png"


def test_same_seed_same_pixels(tiny_pipeline_dir):
    spec = make_spec(tiny_pipeline_dir)
    [(a, _)] = RENDERER.render(spec)
    [(b, _)] = RENDERER.render(spec)
    [(c, _)] = RENDERER.render(spec.model_copy(update={"seed": 1}))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_count_two_distinct_seeds_and_files(tiny_pipeline_dir, tmp_path):
    spec = make_spec(tiny_pipeline_dir, seed=7)
    results = RENDERER.render(spec, count=2)
    assert [s for _, s in results] == [7, 8]
    assert not np.array_equal(np.asarray(results[0][0]), np.asarray(results[1][0]))
    paths = [save(img, seed, spec, tmp_path)[0] for img, seed in results]
    assert len(set(paths)) == 2
    assert [read_metadata(p)["qia:seed"] for p in paths] == ["7", "8"]


def test_no_overwrite_on_collision(tiny_pipeline_dir, tmp_path):
    spec = make_spec(tiny_pipeline_dir)
    [(img, seed)] = RENDERER.render(spec)
    names = [save(img, seed, spec, tmp_path)[0].name for _ in range(3)]
    assert names == [
        "20261128-141502_red-bicycle_s12345.png",
        "20261128-141502_red-bicycle_s12345-1.png",
        "20261128-141502_red-bicycle_s12345-2.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names + [n.replace(".png", ".json") for n in names])


def test_output_file_not_overwritten(tiny_pipeline_dir, tmp_path):
    spec = make_spec(tiny_pipeline_dir)
    [(img, seed)] = RENDERER.render(spec)
    target = tmp_path / "mine.png"
    png, side = save(img, seed, spec, None, output=target)
    assert png == target and side == tmp_path / "mine.json"
    before = target.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        save(img, seed, spec, None, output=target)
    with pytest.raises(UsageError, match="already exists"):
        check_output_file(target)
    assert target.read_bytes() == before
    save(img, seed, spec, None, output=target, overwrite=True)
    with pytest.raises(UsageError, match=r"\.png"):
        check_output_file(tmp_path / "x.jpg")


@pytest.mark.parametrize(
    "request_text", ["../../etc/passwd", "/tmp/x", "..", "a/../../b\\c", "", "...", "C:\\Windows\\x", "\x00\n"]
)
def test_slug_cannot_escape(tmp_path, request_text):
    name = output_name(request_text, 1, WHEN)
    assert "/" not in name and "\\" not in name and ".." not in name
    slug = slugify(request_text)
    assert slug and all(c.isascii() and (c.isalnum() or c == "-") for c in slug)
    assert len(slugify("word " * 50)) <= 40

    from PIL import Image

    outdir = tmp_path / "out"
    meta = {"qia:request": request_text, "qia:seed": "1"}
    png, side = save_image(Image.new("RGB", (8, 8)), outdir=outdir, output=None, metadata=meta, sidecar={})
    assert png.parent == outdir and side.parent == outdir
    png2, _ = save_image(
        Image.new("RGB", (8, 8)), outdir=outdir, output=None, metadata=meta, sidecar={}, name="../../" + request_text
    )
    assert png2.parent == outdir


def test_unwritable_outdir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="is not writable"):
        check_writable(blocker / "sub")
    with pytest.raises(UsageError, match="is not writable"):
        check_writable(blocker)
    from PIL import Image

    with pytest.raises(UsageError, match=str(blocker / "sub")):
        save_image(
            Image.new("RGB", (8, 8)), outdir=blocker / "sub", output=None, metadata={"qia:seed": "1"}, sidecar={}
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_check_writable_leaves_nothing(tmp_path):
    check_writable(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "exists").mkdir()
    check_writable(tmp_path / "exists")
    assert list((tmp_path / "exists").iterdir()) == []


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    from PIL import Image

    img = Image.new("RGB", (8, 8))

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(img, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_image(img, outdir=tmp_path, output=None, metadata={"qia:seed": "1"}, sidecar={})
    assert list(tmp_path.iterdir()) == []


def test_sidecar_failure_removes_png(tmp_path):
    from PIL import Image

    with pytest.raises(TypeError):
        save_image(
            Image.new("RGB", (8, 8)),
            outdir=tmp_path,
            output=None,
            metadata={"qia:seed": "1"},
            sidecar={("not", "a", "str"): 1},
        )
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_render_and_leaves_no_file(tiny_pipeline_dir, tmp_path):
    spec = make_spec(tiny_pipeline_dir, steps=4)
    outdir = tmp_path / "out"
    check_writable(outdir)
    steps = []
    with pytest.raises(R.RenderCancelled):
        results = RENDERER.render(spec, count=2, on_step=lambda s, t: steps.append(s), cancel=lambda: bool(steps))
        for img, seed in results:  # what the CLI does; never reached
            save(img, seed, spec, outdir)
    assert steps == [1]
    assert not outdir.exists() or list(outdir.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):  # exits 130 like Ctrl-C
        RENDERER.render(spec, cancel=lambda: True)
