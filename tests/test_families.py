"""The image family table and the decisions made from it, with fakes where a GPU or real weights would be
needed: defaults per family, what each pipeline call gets, model CPU offload, freeing the planner, the
catalog's recommendation, and the prompt budget that follows the text encoder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qia_cli.imaging import families as F
from qia_cli.imaging.families import defaults_for
from qia_cli.imaging.pipeline import call_kwargs, clip_head, needs_offload

GIB = 1024**3


# -- the table ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "family", "steps", "guidance", "side", "tokens", "negative"),
    [
        ("black-forest-labs/FLUX.1-schnell", "flux.1-schnell", 4, 0.0, 1024, 256, "never"),
        ("black-forest-labs/FLUX.1-dev", "flux.1-dev", 28, 3.5, 1024, 512, "never"),
        ("black-forest-labs/FLUX.2-klein-4B", "flux.2-klein", 4, 1.0, 1024, 512, "never"),
        ("black-forest-labs/FLUX.2-klein-base-9B", "flux.2-klein-base", 50, 4.0, 1024, 512, "never"),
        ("stabilityai/stable-diffusion-3-medium-diffusers", "sd3", 28, 7.0, 1024, 256, "guidance"),
        ("stabilityai/stable-diffusion-3.5-large", "sd3.5-large", 28, 3.5, 1024, 256, "guidance"),
        ("stabilityai/stable-diffusion-3.5-large-turbo", "sd3.5-large-turbo", 4, 0.0, 1024, 256, "guidance"),
        ("stabilityai/stable-diffusion-3.5-medium", "sd3.5-medium", 40, 4.5, 1024, 256, "guidance"),
        ("Qwen/Qwen-Image", "qwen-image", 50, 4.0, 1328, 512, "true_cfg"),
        ("Tongyi-MAI/Z-Image-Turbo", "z-image-turbo", 9, 0.0, 1024, 512, "guidance"),
        ("Efficient-Large-Model/Sana_1600M_1024px_diffusers", "sana", 20, 4.5, 1024, 300, "guidance"),
        ("stabilityai/sd-turbo", "sd-turbo", 1, 0.0, 512, 77, "guidance"),
        ("stabilityai/sdxl-turbo", "sdxl-turbo", 1, 0.0, 512, 77, "guidance"),
    ],
)
def test_each_family_has_the_defaults_of_its_model_card(model, family, steps, guidance, side, tokens, negative):
    row = defaults_for(model)
    assert (row.family, row.steps, row.guidance, row.width, row.height) == (family, steps, guidance, side, side)
    assert (row.max_tokens, row.negative) == (tokens, negative)
    assert row.scheduler and row.pipeline
    assert row.prompt_words == (90 if tokens == 77 else {256: 190, 300: 220, 512: 380}[tokens])


def test_qwen_image_guides_through_true_cfg_scale_and_a_quantized_spec_has_its_base_family():
    assert defaults_for("Qwen/Qwen-Image").true_cfg_scale == 4.0
    assert defaults_for("black-forest-labs/FLUX.1-dev").true_cfg_scale is None
    spec = "black-forest-labs/FLUX.1-schnell+city96/FLUX.1-schnell-gguf/flux1-schnell-Q4_K_S.gguf"
    assert defaults_for(spec).family == "flux.1-schnell"


def _folder(tmp_path: Path, name: str, index: dict, transformer: dict | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(index))
    if transformer is not None:
        (folder / "transformer").mkdir()
        (folder / "transformer" / "config.json").write_text(json.dumps(transformer))
    return folder


def test_a_folder_with_no_telling_name_gets_its_family_from_model_index_and_the_transformer(tmp_path):
    flux = {"_class_name": "FluxPipeline"}
    assert defaults_for(str(_folder(tmp_path, "a", flux, {"guidance_embeds": False}))).family == "flux.1-schnell"
    assert defaults_for(str(_folder(tmp_path, "b", flux, {"guidance_embeds": True}))).family == "flux.1-dev"
    sd3 = {"_class_name": "StableDiffusion3Pipeline"}
    assert defaults_for(str(_folder(tmp_path, "c", sd3, {"dual_attention_layers": [0, 1]}))).family == "sd3.5-medium"
    assert defaults_for(str(_folder(tmp_path, "d", sd3, {"num_layers": 38}))).family == "sd3.5-large"
    assert defaults_for(str(_folder(tmp_path, "e", sd3, {"num_layers": 24}))).family == "sd3"
    klein = {"_class_name": "Flux2KleinPipeline", "is_distilled": False}
    assert defaults_for(str(_folder(tmp_path, "f", klein))).family == "flux.2-klein-base"
    assert defaults_for(str(_folder(tmp_path, "g", {**klein, "is_distilled": True}))).family == "flux.2-klein"
    assert defaults_for(str(_folder(tmp_path, "h", {"_class_name": "QwenImagePipeline"}))).family == "qwen-image"
    assert defaults_for(str(_folder(tmp_path, "i", {"_class_name": "ZImagePipeline"}))).family == "z-image-turbo"
    assert defaults_for(str(_folder(tmp_path, "j", {"_class_name": "SanaPipeline"}))).family == "sana"
    # the name refines the class: a FLUX.1 dev folder whose transformer config is missing
    assert defaults_for(str(_folder(tmp_path, "FLUX.1-dev", flux))).family == "flux.1-dev"


def test_a_pipeline_whose_vae_was_made_for_small_images_renders_at_that_size(tmp_path):
    folder = _folder(tmp_path, "small", {"_class_name": "FluxPipeline"}, {"guidance_embeds": False})
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text(json.dumps({"sample_size": 72}))
    row = defaults_for(str(folder))
    assert (row.family, row.steps, row.width, row.height) == ("flux.1-schnell", 4, 64, 64)
    (folder / "vae" / "config.json").write_text(json.dumps({"sample_size": 1024}))  # as the released VAEs
    assert defaults_for(str(folder)).width == 1024


# -- what the pipeline call gets ------------------------------------------------------------------------------
class Spec:
    def __init__(self, prompt="a red cat", negative="blurry", steps=4, guidance=0.0, true_cfg=None):
        self.prompt, self.negative_prompt, self.steps, self.guidance = prompt, negative, steps, guidance
        self.width = self.height = 64
        self.true_cfg_scale = true_cfg


class Pipe:
    def __init__(self, tokenizer=None, long_tokenizer=None):
        self.tokenizer = tokenizer
        self.tokenizer_2 = self.tokenizer_3 = long_tokenizer


FLUX_PARAMS = {"prompt", "prompt_2", "negative_prompt", "true_cfg_scale", "guidance_scale", "max_sequence_length"}
SD3_PARAMS = {"prompt", "prompt_2", "prompt_3", "negative_prompt", "guidance_scale", "max_sequence_length"}
QWEN_PARAMS = {"prompt", "negative_prompt", "true_cfg_scale", "guidance_scale", "max_sequence_length"}
SD_PARAMS = {"prompt", "negative_prompt", "guidance_scale"}


@pytest.fixture(scope="module")
def clip_tokenizer(tmp_path_factory):
    from transformers import CLIPTokenizer

    from qia_cli.imaging.tiny import _write_tokenizer_files

    vocab, merges, _ = _write_tokenizer_files(tmp_path_factory.mktemp("tok"))
    return CLIPTokenizer(str(vocab), str(merges), model_max_length=77)


def test_flux_gets_no_negative_its_t5_budget_and_the_whole_prompt_on_t5(clip_tokenizer):
    long = ", ".join(["a red cat on a wall"] + [f"detail number {i} of the scene" for i in range(30)])
    kw = call_kwargs(Pipe(clip_tokenizer, object()), F.FLUX1_SCHNELL, Spec(long), FLUX_PARAMS)
    assert "negative_prompt" not in kw and "true_cfg_scale" not in kw
    assert kw["guidance_scale"] == 0.0 and kw["max_sequence_length"] == 256
    assert kw["prompt_2"] == long  # T5 reads the whole plan
    assert long.startswith(kw["prompt"]) and len(kw["prompt"]) < len(long)  # CLIP its head, cut at a part
    assert len(clip_tokenizer(kw["prompt"]).input_ids) <= 77
    assert kw["prompt"].endswith("of the scene")
    # a guidance-distilled FLUX.1 dev has no negative pass either, whatever the guidance
    assert "negative_prompt" not in call_kwargs(
        Pipe(clip_tokenizer, object()), F.FLUX1_DEV, Spec(guidance=3.5), FLUX_PARAMS
    )


def test_sd3_feeds_both_clips_the_head_and_t5_the_whole_prompt_and_takes_a_negative_with_cfg(clip_tokenizer):
    long = ", ".join(f"part {i} of a long plan" for i in range(40))
    kw = call_kwargs(Pipe(clip_tokenizer, object()), F.SD3, Spec(long, guidance=7.0), SD3_PARAMS)
    assert kw["prompt_3"] == long and kw["prompt"] == kw["prompt_2"] != long
    assert kw["negative_prompt"] == "blurry" and kw["guidance_scale"] == 7.0
    turbo = call_kwargs(Pipe(clip_tokenizer, object()), F.SD35_LARGE_TURBO, Spec(guidance=0.0), SD3_PARAMS)
    assert "negative_prompt" not in turbo  # guidance 0: no unconditional pass
    # SD3 loaded without its T5: everything goes to the CLIP encoders as the prompt
    assert "prompt_3" not in call_kwargs(Pipe(clip_tokenizer, None), F.SD3, Spec(long, guidance=7.0), SD3_PARAMS)


def test_qwen_image_guides_with_true_cfg_and_always_has_a_negative():
    kw = call_kwargs(Pipe(), F.QWEN_IMAGE, Spec(negative="", steps=50, guidance=4.0, true_cfg=4.0), QWEN_PARAMS)
    assert kw["true_cfg_scale"] == 4.0 and "guidance_scale" not in kw
    assert kw["negative_prompt"] == " "  # as the card does: without one the pipeline skips CFG
    assert kw["max_sequence_length"] == 512
    off = call_kwargs(Pipe(), F.QWEN_IMAGE, Spec(guidance=1.0, true_cfg=1.0), QWEN_PARAMS)
    assert "negative_prompt" not in off


def test_sd_keeps_todays_rules():
    assert "negative_prompt" not in call_kwargs(Pipe(), F.SD_TURBO, Spec(guidance=0.0), SD_PARAMS)
    kw = call_kwargs(Pipe(), F.SD1, Spec(guidance=7.5), SD_PARAMS)
    assert kw["negative_prompt"] == "blurry" and "max_sequence_length" not in kw and kw["prompt"] == "a red cat"


def test_clip_head_keeps_at_least_the_first_part(clip_tokenizer):
    first = " ".join(["word"] * 100)
    assert clip_head(clip_tokenizer, f"{first}, more") == first
    assert clip_head(None, "a, b") == "a, b"


# -- memory: offload and freeing the planner --------------------------------------------------------------------
def test_needs_offload_compares_weights_and_working_memory_with_free_gpu_memory():
    assert needs_offload(30 * GIB, (24 * GIB, 24 * GIB))
    assert not needs_offload(10 * GIB, (20 * GIB, 24 * GIB))
    assert needs_offload(int(19.5 * GIB), (20 * GIB, 24 * GIB))  # no room left for the render itself
    assert not needs_offload(100 * GIB, None)  # CPU or MPS: nothing to offload to


class FakePipe:
    """Stands in for a diffusers pipeline: one module of 4 MB of weights; records how it was placed."""

    def __init__(self):
        import torch

        self.components = {"transformer": torch.nn.Linear(1024, 1024, bias=False)}  # 4 MiB in fp32
        self.calls: list[tuple] = []

    def to(self, device):
        self.calls.append(("to", device))
        return self

    def enable_model_cpu_offload(self, device=None):
        self.calls.append(("offload", device))


@pytest.mark.parametrize(("free", "offloaded"), [(GIB, True), (8 * GIB, False)])
def test_a_pipeline_that_does_not_fit_the_gpu_loads_with_cpu_offload_and_says_so(
    tmp_path, monkeypatch, free, offloaded
):
    import torch

    from qia_cli.imaging import pipeline as P

    folder = _folder(tmp_path, "pipe", {"_class_name": "FluxPipeline"}, {"guidance_embeds": False})
    fake = FakePipe()
    monkeypatch.setattr(P, "resolve_device", lambda device, dtype=None: ("cuda", torch.float32))
    monkeypatch.setattr(P, "gpu_memory", lambda device: (free, 8 * GIB) if device == "cuda" else None)
    monkeypatch.setattr(P, "WORKING_MEMORY", GIB)
    monkeypatch.setattr(P, "_load", lambda model, folder, dtype, **parts: fake)
    loaded = P.DiffusersRenderer().load(str(folder), "cuda")
    assert loaded.weights == 1024 * 1024 * 4 and loaded.family.family == "flux.1-schnell"
    assert loaded.offload is offloaded
    assert fake.calls == ([("offload", "cuda")] if offloaded else [("to", "cuda")])
    assert (loaded.note is not None and "CPU offload" in loaded.note) is offloaded


def test_the_planner_is_freed_before_a_pipeline_that_takes_most_of_the_memory(tmp_path, monkeypatch):
    from qia_cli.agent.run import Agent, RenderOptions
    from qia_cli.config import Settings
    from qia_cli.imaging import device, pipeline

    agent = Agent(settings=Settings(llm="bundled", llm_gpu_layers=0))
    auto = RenderOptions(release_llm=None)
    monkeypatch.setattr(device, "gpu_memory", lambda dev: (20 * GIB, 24 * GIB) if dev.startswith("cuda") else None)
    sizes = {"big": 16 * GIB, "small": 3 * GIB}
    monkeypatch.setattr(pipeline, "disk_weights", lambda model: sizes.get(model, 0))
    assert agent.should_release_llm(auto, "cuda", "big")  # 16 of 24 GiB: free the planner first
    assert not agent.should_release_llm(auto, "cuda", "small")  # a CPU planner beside a small pipeline stays
    assert not agent.should_release_llm(auto, "cuda", "not-cached")  # size unknown: as before
    assert agent.should_release_llm(RenderOptions(release_llm=True), "cuda", "small")
    assert not agent.should_release_llm(RenderOptions(release_llm=False), "cuda", "big")


def test_disk_weights_counts_one_precision_and_a_gguf_instead_of_the_transformer(tmp_path):
    from qia_cli.imaging.pipeline import disk_weights

    index = {"_class_name": "FluxPipeline", "transformer": ["diffusers", "X"], "vae": ["diffusers", "AutoencoderKL"]}
    folder = _folder(tmp_path, "pipe", index, {})
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "transformer" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"\0" * 500)
    (folder / "vae").mkdir()
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 300)
    gguf = tmp_path / "t.gguf"
    gguf.write_bytes(b"\0" * 70)
    assert disk_weights(str(folder)) == 800  # the fp16 transformer and the vae
    assert disk_weights(f"{folder}+{gguf}") == 370  # the GGUF in the transformer's place
    assert disk_weights("someone/not-cached") == 0


# -- the catalog ------------------------------------------------------------------------------------------------
def test_the_image_catalog_recommends_by_gpu_memory():
    from qia_cli.models import image_catalog as C

    GB = C.GB
    assert C.recommend(0).name == "sd-turbo"
    assert C.recommend(None).name == "sd-turbo"
    assert C.recommend(6 * GB).name == "sd-turbo"
    assert C.recommend(11 * GB).name == "sdxl-turbo"
    assert C.recommend(int(13.5 * GB)).name == "flux.2-klein-4b"
    assert C.recommend(int(16.8 * GB)).name == "z-image-turbo"  # a "16 GB" card
    assert C.recommend(80 * GB).name == "qwen-image"
    flux_dev = C.find("flux.1-dev")
    assert flux_dev is not None and not flux_dev.commercial and "Non-Commercial" in flux_dev.license
    assert C.placement(flux_dev, 24 * GB, 64 * GB) == "offload"
    assert C.placement(flux_dev, 80 * GB, 64 * GB) == "gpu"
    assert C.placement(flux_dev, 0, 64 * GB) == "needs-gpu"
    assert C.placement(C.find("sd-turbo"), 0, 16 * GB) == "cpu"
    for entry in C.IMAGE_CATALOG:
        assert F.by_family(entry.family) is not None and entry.disk > 0 and entry.gpu > 0 and entry.license


def test_pull_list_shows_image_models_with_memory_licence_and_a_recommendation(monkeypatch, capsys):
    from qia_cli.cli.app import main
    from qia_cli.models import image_catalog

    monkeypatch.setattr(image_catalog, "gpu_total", lambda: 16_800_000_000)

    def qia(*args):
        monkeypatch.setattr(sys, "argv", ["qia", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        assert (exc.value.code or 0) == 0
        return capsys.readouterr().out

    data = json.loads(qia("models", "pull", "--list", "--json"))
    assert data["gpu_memory"] == 16_800_000_000 and data["recommended_image"] == "z-image-turbo"
    rows = {r["name"]: r for r in data["image_models"]}
    assert rows["flux.2-klein-4b"]["placement"] == "gpu" and rows["qwen-image"]["placement"] in ("offload", "no")
    assert rows["flux.1-schnell"]["defaults"]["steps"] == 4 and rows["flux.1-dev"]["commercial"] is False
    assert data["models"] and data["recommended"]  # the planner catalog is still there
    text = qia("models", "pull", "--list")
    assert "Image models to pull" in text and "17 GB of GPU memory" in text
    assert "recommended here: qia models pull z-image-turbo" in text
    assert "FLUX.1 [dev] Non-Commercial [non-commercial]" in text


def test_info_shows_the_gpu_memory(monkeypatch):
    import torch

    from qia_cli.cli import info

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (20 * 10**9, 24 * 10**9))
    data = info._torch()
    assert (data["gpu_memory"], data["gpu_memory_free"]) == (24 * 10**9, 20 * 10**9)


def test_info_prints_the_gpu_memory(monkeypatch, capsys):
    from qia_cli.cli import info

    data = info.collect()
    data["torch"] = {**data["torch"], "ok": True, "cuda": True, "gpu": "Fake GPU", "cuda_version": "12.4"}
    data["torch"].update(gpu_memory=24 * 10**9, gpu_memory_free=20 * 10**9)
    info._print_text(data)
    assert "Fake GPU (CUDA 12.4), 24.0 GB memory (20.0 GB free)" in capsys.readouterr().out


# -- the prompt budget follows the encoder (and the long-request warning of issue 23) ----------------------
def _plan(monkeypatch, capsys, request: str, *extra: str) -> dict:
    from qia_cli.cli.app import main

    monkeypatch.setattr(sys, "argv", ["qia", "plan", request, "--llm", "fake", "--json", *extra])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr().out
    assert (exc.value.code or 0) == 0
    return json.loads(out)


PAD = " ".join(["in a quiet green garden with tall old trees and soft morning light"] * 8)  # 96 words


def test_a_request_past_the_clip_budget_says_so(monkeypatch, capsys):
    words = " ".join(f"word{i}" for i in range(132))
    plan = _plan(monkeypatch, capsys, words)
    (note,) = [w for w in plan["warnings"] if "132 words" in w]
    assert "90-word cap" in note and "sd-turbo" in note and "77 tokens" in note and "word90" in note
    assert plan["prompt"] == words  # the request itself is never cut
    short = _plan(monkeypatch, capsys, "a red bicycle")
    assert not [w for w in short["warnings"] if "cap" in w]


def test_a_t5_family_gets_its_larger_budget(monkeypatch, capsys, tmp_path):
    flux = _folder(tmp_path, "tiny-dit", {"_class_name": "FluxPipeline"}, {"guidance_embeds": False})
    request = f"a poster for my dog's birthday {PAD}"
    answers = ("--answer", "Biscuit, a three-legged corgi with a red collar")
    clip = _plan(monkeypatch, capsys, request, *answers)
    assert "Biscuit" not in clip["prompt"]
    assert any("capped at 90 words" in w for w in clip["warnings"])
    monkeypatch.setenv("QIA_IMAGE_MODEL", str(flux))
    t5 = _plan(monkeypatch, capsys, request, *answers)
    assert t5["prompt"].startswith(request) and "Biscuit, a three-legged corgi" in t5["prompt"]
    assert not [w for w in t5["warnings"] if "cap" in w]
    words = " ".join(f"word{i}" for i in range(200))
    (note,) = [w for w in _plan(monkeypatch, capsys, words)["warnings"] if "200 words" in w]
    assert "190-word cap for flux.1-schnell's T5 text encoder (256 tokens)" in note


def test_pull_selects_what_a_flux_repository_needs_and_with_a_gguf_no_transformer_weights():
    from qia_cli.models.pipeline import select

    index = {
        "_class_name": "FluxPipeline",
        **{c: ["x", "y"] for c in ("scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")},
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    tree = [
        "model_index.json",
        "flux1-schnell.safetensors",  # the original single-file checkpoint
        "ae.safetensors",
        "README.md",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder_2/config.json",
        "text_encoder_2/model-00001-of-00002.safetensors",
        "text_encoder_2/model-00002-of-00002.safetensors",
        "text_encoder_2/model.safetensors.index.json",
        "tokenizer/vocab.json",
        "tokenizer_2/spiece.model",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model-00001-of-00003.safetensors",
        "transformer/diffusion_pytorch_model.safetensors.index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    full = set(select(tree, index).files)
    assert {"text_encoder_2/model-00002-of-00002.safetensors", "tokenizer_2/spiece.model"} <= full
    assert "transformer/diffusion_pytorch_model-00001-of-00003.safetensors" in full
    assert not {"flux1-schnell.safetensors", "ae.safetensors", "README.md"} & full
    quant = set(select(tree, index, skip_weights=("transformer",)).files)
    assert "transformer/config.json" in quant
    assert not [f for f in quant if f.startswith("transformer/diffusion_pytorch_model")]
    assert full - quant == {
        "transformer/diffusion_pytorch_model-00001-of-00003.safetensors",
        "transformer/diffusion_pytorch_model.safetensors.index.json",
    }
