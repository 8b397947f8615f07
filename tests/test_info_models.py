"""`qia info` (also with a broken torch) and `qia models list|info|set-default` against a Hugging Face
cache folder built here: nothing is downloaded."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import tomllib

from qia_cli import paths
from tests.conftest import run_qia


def _blob(repo: Path, name: str, data: bytes) -> Path:
    blob = repo / "blobs" / name
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    return blob


def _link(snapshot: Path, rel: str, blob: Path) -> None:
    target = snapshot / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(os.path.relpath(blob, target.parent))


INDEX = json.dumps(
    {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
).encode()


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """A hub cache as huggingface_hub lays it out: blobs, snapshots of symlinks, refs/main."""
    root = tmp_path / "hf-hub"
    # acme/tiny-sd: two revisions sharing the weights blob; refs/main names the newer one
    repo = root / "models--acme--tiny-sd"
    index, weights, vae = _blob(repo, "i1", INDEX), _blob(repo, "w1", b"x" * 1000), _blob(repo, "v1", b"v" * 200)
    for rev in ("rev-old", "rev-new"):
        _link(repo / "snapshots" / rev, "model_index.json", index)
        _link(repo / "snapshots" / rev, "unet/diffusion_pytorch_model.safetensors", weights)
        _link(repo / "snapshots" / rev, "vae/diffusion_pytorch_model.safetensors", vae)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("rev-new")
    # acme/plain: real files, no symlinks (as on Windows without developer mode)
    snap = root / "models--acme--plain" / "snapshots" / "r1"
    snap.mkdir(parents=True)
    (snap / "model_index.json").write_bytes(INDEX)
    (snap / "weights.bin").write_bytes(b"y" * 500)
    # a transformers model: no model_index.json, so not an image model
    other = root / "models--acme--clip" / "snapshots" / "r1"
    other.mkdir(parents=True)
    (other / "config.json").write_text("{}")
    (root / "datasets--acme--data").mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    return root


# -- qia info -----------------------------------------------------------------------------------------
def test_info_json(qia, isolated_home, monkeypatch):
    rc, out, _ = qia("info", "--json")
    data = json.loads(out)
    assert rc == 0
    assert data["qia"] and data["python"] == sys.version.split()[0] and data["cpu_count"] == os.cpu_count()
    assert data["torch"]["ok"] is True and isinstance(data["torch"]["cuda"], bool) and "mps" in data["torch"]
    assert data["diffusers"]["ok"] is True and data["transformers"]["ok"] is True
    assert data["llama_cpp"]["ok"] is True and isinstance(data["llama_cpp"]["gpu_offload"], bool)
    assert data["paths"] == paths.all_paths() and data["paths"]["config_file"].startswith(str(isolated_home))
    assert data["settings"]["llm"]["value"] == "bundled" and data["settings"]["search"] == "off"
    assert data["settings"]["image_model"]["value"] == "stabilityai/sd-turbo"
    from qia_cli import cpu

    assert data["cpu"]["amx"] is cpu.has_amx()
    assert data["cpu"]["bf16_renders"] is bool({"amx_bf16", "amx_tile", "avx512_bf16"} & cpu.flags())
    assert data["cpu"]["llm_repack"] == {"setting": "auto", "effective": "off" if cpu.has_amx() else "on"}

    from qia_cli.llm.bundled import KNOWLEDGE_NAME, knowledge_installed

    gemma = knowledge_installed()  # the [knowledge] extra answers knowledge questions for the bundled planner
    knowledge = data["settings"]["knowledge_llm"]
    assert knowledge["value"] == "auto" and knowledge["source"] == "default" and knowledge["planner"] is not gemma
    assert knowledge["model"] == (KNOWLEDGE_NAME if gemma else "SmolLM2-135M-Instruct Q4_1 (bundled)")

    monkeypatch.setenv("QIA_LLM_REPACK", "off")
    rc, out, _ = qia("info")
    assert rc == 0 and "torch:" in out and "llama-cpp-python:" in out and str(isolated_home) in out
    assert "llm repack off (setting off)" in out
    assert f"knowledge llm:    auto (default; {KNOWLEDGE_NAME if gemma else 'the planner answers'})" in out
    monkeypatch.setenv("QIA_LLM_MODEL", "fake")
    rc, out, _ = qia("info")
    assert "knowledge llm:    auto (default; the planner answers)" in out  # a planner the user chose answers


def test_info_survives_a_broken_torch(tmp_path):
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('simulated broken torch')\n")
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), str(root)])}
    proc = run_qia("info", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["torch"]["ok"] is False and "simulated broken torch" in data["torch"]["error"]
    assert data["llama_cpp"]["ok"] is True and data["paths"]["config_file"]
    proc = run_qia("info", env=env)
    assert proc.returncode == 0 and "torch:" in proc.stdout and "not usable" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_info_reports_a_broken_config_instead_of_failing(qia, isolated_home):
    file = paths.config_file()
    file.parent.mkdir(parents=True)
    file.write_text("steps = [\n")
    rc, out, _ = qia("info", "--json")
    assert rc == 0 and "cannot be read" in json.loads(out)["settings"]["config_error"]


# -- qia models ---------------------------------------------------------------------------------------
def test_models_list_reads_the_hub_cache_in_a_process(hub):
    proc = run_qia("models", "list", "--json", env={"HF_HUB_CACHE": str(hub), "QIA_IMAGE_MODEL": "acme/tiny-sd"})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["hub_cache"] == str(hub)
    cached = {m["id"]: m for m in data["cached_image_models"]}
    assert sorted(cached) == ["acme/plain", "acme/tiny-sd"]
    tiny = cached["acme/tiny-sd"]
    assert tiny["size"] == len(INDEX) + 1200  # symlinked snapshots count once
    assert tiny["complete"] is True and cached["acme/plain"]["complete"] is False  # plain: no unet/, no vae/
    assert sorted(cached["acme/plain"]["missing"]) == ["unet/", "vae/"]
    assert tiny["pipeline"] == "StableDiffusionPipeline" and tiny["components"] == ["unet", "vae"]
    assert tiny["snapshot"].endswith("rev-new") and sorted(tiny["revisions"]) == ["rev-new", "rev-old"]
    assert cached["acme/plain"]["size"] == len(INDEX) + 500
    assert data["image_model"]["name"] == "acme/tiny-sd" and data["image_model"]["available"] is True
    assert data["image_model"]["source"] == "env"
    assert data["bundled_llm"]["available"] is True and data["bundled_llm"]["path"].endswith(".gguf")
    assert data["llm"]["name"] == "bundled" and data["llm"]["available"] is True

    proc = run_qia("models", "list", env={"HF_HUB_CACHE": str(hub)})
    assert proc.returncode == 0 and "acme/tiny-sd" in proc.stdout and "acme/clip" not in proc.stdout
    assert "qia models pull stabilityai/sd-turbo" in proc.stdout  # the default is not cached here


def test_models_list_with_no_cache_and_a_missing_llm(qia, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nothing"))
    monkeypatch.setenv("QIA_LLM_MODEL", str(tmp_path / "gone.gguf"))
    rc, out, _ = qia("models", "list", "--json")
    data = json.loads(out)
    assert rc == 0 and data["cached_image_models"] == []
    assert data["llm"]["available"] is False and "not found" in data["llm"]["error"]
    assert (
        data["image_model"]["available"] is False
        and data["image_model"]["hint"] == "qia models pull stabilityai/sd-turbo"
    )


def test_models_info(qia, hub, tmp_path):
    rc, out, _ = qia("models", "info", "acme/tiny-sd", "--json")
    data = json.loads(out)
    assert rc == 0 and data["kind"] == "hub" and data["pipeline"] == "StableDiffusionPipeline"
    rc, out, _ = qia("models", "info", "acme/tiny-sd")
    assert rc == 0 and "pipeline:   StableDiffusionPipeline" in out and "unet, vae" in out
    rc, out, err = qia("models", "info", "acme/never-downloaded")
    assert rc == 2 and out == "" and "qia models pull acme/never-downloaded" in err
    rc, out, _ = qia("models", "info", "bundled", "--json")
    assert rc == 0 and json.loads(out)["kind"] == "bundled"
    rc, _, err = qia("models", "info", str(tmp_path / "no-such-folder"))
    assert rc == 2 and "no such folder" in err


def _config():
    return tomllib.loads(paths.config_file().read_text())


def test_set_default_image(qia, hub, tmp_path):
    folder = tmp_path / "my-pipeline"
    folder.mkdir()
    rc, _, err = qia("models", "set-default", "image", str(folder))
    assert rc == 2 and "model_index.json" in err
    (folder / "model_index.json").write_bytes(INDEX)
    rc, _, err = qia("models", "set-default", "image", str(folder))
    assert rc == 0 and _config()["image_model"] == str(folder.resolve())

    rc, _, err = qia("models", "set-default", "image", "acme/tiny-sd")
    assert rc == 0 and "warning" not in err and _config()["image_model"] == "acme/tiny-sd"
    rc, _, err = qia("models", "set-default", "image", "acme/not-cached")
    assert rc == 0 and "qia models pull acme/not-cached" in err and _config()["image_model"] == "acme/not-cached"


def test_set_default_llm(qia, tmp_path):
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04 not a gguf")
    rc, _, err = qia("models", "set-default", "llm", str(not_gguf))
    assert rc == 2 and "not a GGUF" in err
    rc, _, err = qia("models", "set-default", "llm", str(tmp_path / "missing.gguf"))
    assert rc == 2 and "not found" in err
    assert not paths.config_file().exists()

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    assert qia("models", "set-default", "llm", str(gguf))[0] == 0
    assert _config()["llm"] == str(gguf.resolve())
    assert qia("models", "set-default", "llm", "bundled")[0] == 0 and _config()["llm"] == "bundled"
    assert qia("models", "set-default", "video", "x")[0] == 2
