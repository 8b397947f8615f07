"""Render precision by CPU capability (--dtype) and the tiny-VAE option (--vae), with simulated CPUs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qia_cli.agent.types import RenderSpec
from qia_cli.cli.app import app
from qia_cli.errors import ModelError, UsageError
from qia_cli.imaging import device
from qia_cli.imaging import pipeline as R
from qia_cli.imaging.output import build_metadata, read_metadata
from qia_cli.imaging.vae import check_vae, vae_source
from tests.conftest import run_qia
from tests.imaging_fixtures import tiny_pipeline_dir, tiny_vae_dir  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
RENDERER = R.DiffusersRenderer()  # one for the module: the pipeline stays warm between tests
runner = CliRunner()

SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16"})
SKYLAKE = frozenset({"avx2", "avx512f"})
OLD_LAPTOP = frozenset({"avx2"})


@pytest.fixture
def cpu(monkeypatch):
    """Simulate a CPU: cpu(FLAGS) makes device.cpu_flags() return FLAGS; no CUDA, no MPS."""
    monkeypatch.setattr(device, "_cuda_ok", lambda: False)
    monkeypatch.setattr(device, "_mps_ok", lambda: False)

    def use(flags):
        monkeypatch.setattr(device, "cpu_flags", lambda: frozenset(flags))

    return use


def spec_for(model: Path, **changes) -> RenderSpec:
    values = dict(
        prompt="a red bicycle", model=str(model), width=64, height=64, steps=2, guidance=0.0, seed=7, device="cpu"
    )
    values.update(changes)
    return RenderSpec(**values)


# --- choosing the dtype ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, want",
    [(SAPPHIRE_RAPIDS, "bf16"), (ZEN4, "bf16"), (SKYLAKE, "fp32"), (OLD_LAPTOP, "fp32"), (frozenset(), "fp32")],
)
def test_auto_dtype_on_the_cpu_follows_bf16_hardware(cpu, flags, want):
    cpu(flags)
    for name in ("cpu", "auto"):
        dev, dtype = device.resolve_device(name)
        assert (dev, device.dtype_name(dtype)) == ("cpu", want)


def test_explicit_dtype_wins_over_the_cpu(cpu):
    import torch

    cpu(SKYLAKE)
    assert device.resolve_device("cpu", "bf16") == ("cpu", torch.bfloat16)
    assert device.resolve_device("cpu", "FP16") == ("cpu", torch.float16)
    cpu(SAPPHIRE_RAPIDS)
    assert device.resolve_device("cpu", "fp32") == ("cpu", torch.float32)
    with pytest.raises(UsageError, match="unknown dtype 'fp64'"):
        device.resolve_device("cpu", "fp64")


def test_gpus_stay_fp16_by_default_whatever_the_cpu(cpu, monkeypatch):
    import torch

    cpu(SAPPHIRE_RAPIDS)
    monkeypatch.setattr(device, "_mps_ok", lambda: True)
    assert device.resolve_device("auto") == ("mps", torch.float16)
    monkeypatch.setattr(device, "_cuda_ok", lambda: True)
    assert device.resolve_device("auto") == ("cuda", torch.float16)
    assert device.resolve_device("auto", "bf16") == ("cuda", torch.bfloat16)


def test_cpu_flags_from_cpuinfo_and_torch(tmp_path, monkeypatch):
    from qia_cli import cpu as cpuinfo

    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    read = cpuinfo.flags
    monkeypatch.setattr(device, "_torch_flags", lambda: set())
    monkeypatch.setattr(cpuinfo, "flags", lambda: read(x86))
    assert device.cpu_bf16_ok()
    monkeypatch.setattr(cpuinfo, "flags", lambda: read(arm))
    assert not device.cpu_bf16_ok()  # Arm's bf16 is not measured here: it keeps fp32
    monkeypatch.setattr(device, "_torch_flags", lambda: {"avx512_bf16"})  # torch's probe alone is enough
    assert device.cpu_bf16_ok()


# --- loading and rendering in a dtype --------------------------------------------------------------


def test_load_in_each_dtype_is_cached_apart_and_bf16_is_channels_last(tiny_pipeline_dir):
    import torch

    renderer = R.DiffusersRenderer()
    fp32 = renderer.load(str(tiny_pipeline_dir), "cpu", dtype="fp32")
    bf16 = renderer.load(str(tiny_pipeline_dir), "cpu", dtype="bf16")
    assert renderer.loads == 2
    assert fp32.pipe.unet.dtype == torch.float32 and fp32.dtype_name == "fp32"
    assert bf16.pipe.unet.dtype == torch.bfloat16 and bf16.pipe.vae.dtype == torch.bfloat16
    assert bf16.pipe.text_encoder.dtype == torch.bfloat16
    weight = bf16.pipe.vae.decoder.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert bf16.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fp32.pipe.vae.decoder.conv_in.weight.is_contiguous()  # fp32: no gain measured, layout kept


def test_bf16_render_is_finite_not_black_and_near_fp32(tiny_pipeline_dir):
    spec = spec_for(tiny_pipeline_dir)
    [(a, _)] = RENDERER.render(spec.model_copy(update={"dtype": "fp32"}))
    [(b, _)] = RENDERER.render(spec.model_copy(update={"dtype": "bf16"}))
    assert not R.is_black(b) and b.size == a.size
    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    assert diff.mean() < 2  # the same picture, rounded differently (measured: 0.5 levels of 255, at most 3)


def test_is_black():
    from PIL import Image

    assert R.is_black(Image.new("RGB", (8, 8)))
    assert R.is_black(Image.new("L", (8, 8)))
    assert not R.is_black(Image.new("RGB", (8, 8), (0, 0, 1)))


# --- the VAE choice --------------------------------------------------------------------------------


def test_check_vae(tmp_path):
    assert check_vae(None) == "full" and check_vae("TINY") == "tiny" and check_vae(" full ") == "full"
    assert check_vae("madebyollin/taesd") == "madebyollin/taesd"
    (tmp_path / "config.json").write_text('{"_class_name": "AutoencoderTiny"}')
    assert check_vae(str(tmp_path)) == str(tmp_path)
    for folder in (tmp_path.parent, tmp_path / "config.json"):  # no config.json; a file (issue 23)
        with pytest.raises(ModelError, match="not a diffusers VAE folder"):
            check_vae(str(folder))
    for bad in ("tiyn", "../nowhere", "a/b/c"):
        with pytest.raises(UsageError, match="unknown VAE"):
            check_vae(bad)


def test_tiny_maps_to_the_family_taesd():
    assert vae_source("tiny", "sd-turbo", "stabilityai/sd-turbo") == "madebyollin/taesd"
    assert vae_source("tiny", "sdxl", "x/sdxl") == "madebyollin/taesdxl"
    assert vae_source("full", "sdxl", "x/sdxl") is None
    with pytest.raises(ModelError, match="no tiny VAE is known for model x/flux"):
        vae_source("tiny", "unknown", "x/flux")


def test_tiny_vae_folder_replaces_the_decoder(tiny_pipeline_dir, tiny_vae_dir):
    from diffusers import AutoencoderKL, AutoencoderTiny

    spec = spec_for(tiny_pipeline_dir, dtype="fp32", width=64, height=48)
    full = RENDERER.load(str(tiny_pipeline_dir), "cpu", dtype="fp32")
    assert isinstance(full.pipe.vae, AutoencoderKL) and full.vae == "full"
    [(a, _)] = RENDERER.render(spec, loaded=full)
    tiny = RENDERER.load(str(tiny_pipeline_dir), "cpu", dtype="fp32", vae=str(tiny_vae_dir))
    assert isinstance(tiny.pipe.vae, AutoencoderTiny) and tiny.vae == str(tiny_vae_dir)
    [(b, _)] = RENDERER.render(spec, loaded=tiny)
    assert b.size == (64, 48)
    assert not np.array_equal(np.asarray(a), np.asarray(b))  # a different decoder really ran


def test_tiny_for_an_uncached_taesd_fails_offline_with_a_hint(tiny_pipeline_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError) as info:
        RENDERER.load(str(tiny_pipeline_dir), "cpu", vae="tiny")
    assert "madebyollin/taesd" in info.value.message and "not in the Hugging Face cache" in info.value.message
    assert "hf download madebyollin/taesd" in info.value.hint


def test_unknown_family_fails_before_the_pipeline_loads(tmp_path):
    folder = tmp_path / "some-flux"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    renderer = R.DiffusersRenderer()
    with pytest.raises(ModelError, match="no tiny VAE is known"):
        renderer.load(str(folder), "cpu", vae="tiny")
    assert renderer.loads == 0


def test_wrong_vae_folders(tiny_pipeline_dir, tmp_path):
    from qia_cli.imaging.tiny import build_tiny_vae

    with pytest.raises(ModelError, match="no config.json"):
        RENDERER.load(str(tiny_pipeline_dir), "cpu", vae=str(tiny_pipeline_dir))
    with pytest.raises(ModelError, match="is a UNet2DConditionModel"):
        RENDERER.load(str(tiny_pipeline_dir), "cpu", vae=str(tiny_pipeline_dir / "unet"))
    wide = build_tiny_vae(tmp_path / "taesd3-like", latent_channels=16)
    with pytest.raises(ModelError, match="16 latent channels; this model makes 4"):
        RENDERER.load(str(tiny_pipeline_dir), "cpu", vae=str(wide))


# --- recorded in the spec, sidecar and PNG ---------------------------------------------------------


def generate(*args):
    result = runner.invoke(
        app, ["generate", "a cat", "--no-plan", "--llm", "fake", "--json", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("flags, want", [(SAPPHIRE_RAPIDS, "bf16"), (SKYLAKE, "fp32")])
def test_generate_on_the_cpu_picks_and_records_the_dtype(cpu, tiny_pipeline_dir, tmp_path, flags, want):
    cpu(flags)
    doc = generate("--model", str(tiny_pipeline_dir), "--device", "cpu", "--steps", "1", "--outdir", str(tmp_path))
    assert doc["render"]["dtype"] == want and doc["render"]["vae"] == "full"
    (out,) = doc["outputs"]
    assert read_metadata(Path(out["path"]))["qia:dtype"] == want
    assert json.loads(Path(out["sidecar"]).read_text())["render"]["dtype"] == want
    assert not doc["plan"]["warnings"]


def test_generate_with_dtype_and_vae_flags(tiny_pipeline_dir, tiny_vae_dir, tmp_path):
    doc = generate(
        "--model",
        str(tiny_pipeline_dir),
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--vae",
        str(tiny_vae_dir),
        "--steps",
        "1",
        "--outdir",
        str(tmp_path),
    )
    assert doc["render"]["dtype"] == "fp32" and doc["render"]["vae"] == str(tiny_vae_dir)
    meta = read_metadata(Path(doc["outputs"][0]["path"]))
    assert meta["qia:vae"] == str(tiny_vae_dir) and f"VAE: {tiny_vae_dir}" in meta["parameters"]


def test_settings_choose_dtype_and_vae(tiny_pipeline_dir, tiny_vae_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("QIA_DTYPE", "fp32")
    monkeypatch.setenv("QIA_VAE", str(tiny_vae_dir))
    doc = generate("--model", str(tiny_pipeline_dir), "--device", "cpu", "--steps", "1", "--outdir", str(tmp_path))
    assert doc["render"]["dtype"] == "fp32" and doc["render"]["vae"] == str(tiny_vae_dir)
    doc = generate(
        "--model",
        str(tiny_pipeline_dir),
        "--device",
        "cpu",
        "--steps",
        "1",
        "--outdir",
        str(tmp_path),
        "--dtype",
        "bf16",
        "--vae",
        "full",
    )
    assert doc["render"]["dtype"] == "bf16" and doc["render"]["vae"] == "full"


def test_a_black_image_is_warned_about(tiny_pipeline_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(R, "is_black", lambda image: True)
    doc = generate(
        "--model",
        str(tiny_pipeline_dir),
        "--device",
        "cpu",
        "--dtype",
        "bf16",
        "--steps",
        "1",
        "--outdir",
        str(tmp_path),
    )
    assert any("all black" in w and "--dtype fp32" in w for w in doc["plan"]["warnings"])


@pytest.mark.parametrize(
    "extra, message", [(["--dtype", "fp64"], "unknown dtype 'fp64'"), (["--vae", "tiyn"], "unknown VAE 'tiyn'")]
)
def test_bad_dtype_or_vae_exit_2_before_anything(tmp_path, extra, message):
    result = run_qia(
        "generate",
        "a cat",
        "--llm",
        "fake",
        "--model",
        str(tmp_path / "nope"),
        "--outdir",
        str(tmp_path / "out"),
        *extra,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_config_validates_dtype(tmp_path):
    ok = run_qia("config", "set", "dtype", "bf16")
    assert ok.returncode == 0, ok.stderr
    bad = run_qia("config", "set", "dtype", "fp64")
    assert bad.returncode == 2 and "dtype" in bad.stderr


def test_metadata_without_a_vae_swap_keeps_the_a1111_line():
    spec = RenderSpec(prompt="p", model="m", width=8, height=8, steps=1, guidance=0, seed=1, dtype="bf16")
    meta = build_metadata("r", spec, 1)
    assert meta["qia:dtype"] == "bf16" and meta["qia:vae"] == "full" and "VAE" not in meta["parameters"]


def test_vae_tiny_loads_the_family_taesd_from_the_hf_cache(tiny_pipeline_dir, tiny_vae_dir, tmp_path):
    """`--vae tiny` on an SD pipeline finds madebyollin/taesd in the Hugging Face cache, offline."""
    import shutil

    cache = tmp_path / "hub"
    repo = cache / "models--madebyollin--taesd"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_vae_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    result = run_qia(
        "generate",
        "a cat",
        "--no-plan",
        "--llm",
        "fake",
        "--model",
        str(tiny_pipeline_dir),
        "--device",
        "cpu",
        "--vae",
        "tiny",
        "--steps",
        "1",
        "--outdir",
        str(tmp_path / "out"),
        "--json",
        env={"HF_HUB_CACHE": str(cache)},
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["render"]["vae"] == "madebyollin/taesd"
    assert read_metadata(Path(doc["outputs"][0]["path"]))["qia:vae"] == "madebyollin/taesd"
