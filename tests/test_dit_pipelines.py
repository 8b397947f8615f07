"""Tiny random-weight FLUX.1, SD3, Qwen-Image and Z-Image pipelines through `qia generate` and `qia batch`:
each renders with its family's defaults recorded, a long plan reaches the long text encoder uncut, and a
GGUF transformer loads. The pipelines are built once per session from configs (tests/imaging_fixtures.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qia_cli.cli.app import main
from qia_cli.imaging.output import read_metadata
from qia_cli.imaging.tiny_dit import WORDS
from tests.imaging_fixtures import (  # noqa: F401
    tiny_flux_dir,
    tiny_flux_gguf,
    tiny_pipeline_dir,
    tiny_qwen_image_dir,
    tiny_sd3_dir,
    tiny_z_image_dir,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")

# fixture, family, steps, guidance, true_cfg_scale, the encoder that reads the whole prompt, its tokenizer
CASES = {
    "flux.1-schnell": ("tiny_flux_dir", 4, 0.0, None, "text_encoder_2", "tokenizer_2"),
    "sd3": ("tiny_sd3_dir", 28, 7.0, None, "text_encoder_3", "tokenizer_3"),
    "qwen-image": ("tiny_qwen_image_dir", 50, 4.0, 4.0, "text_encoder", "tokenizer"),
    "z-image-turbo": ("tiny_z_image_dir", 9, 0.0, None, "text_encoder", "tokenizer"),
}
# 120 words the tiny tokenizers read one token each; it ends in words found nowhere else in it
LONG = " ".join(WORDS[(i * 7) % 100] for i in range(117)) + " lighthouse castle bridge"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Toy models gain nothing from threads, and on a busy machine their synchronisation costs 10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def qia(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["qia", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


@pytest.fixture
def seen(monkeypatch) -> dict:
    """What each text encoder of the pipelines loaded in the test was given (input ids), and the last one loaded."""
    from qia_cli.imaging.pipeline import DiffusersRenderer

    real = DiffusersRenderer.load
    record: dict = {"ids": {}}

    def load(self, *args, **kwargs):
        loaded = real(self, *args, **kwargs)
        record["loaded"] = loaded
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
            encoder = getattr(loaded.pipe, name, None)
            if encoder is not None:

                def hook(_module, args, kwargs, name=name):
                    ids = kwargs.get("input_ids", args[0] if args else None)
                    record["ids"].setdefault(name, []).append(ids)

                encoder.register_forward_pre_hook(hook, with_kwargs=True)
        return loaded

    monkeypatch.setattr(DiffusersRenderer, "load", load)
    return record


def _read(seen: dict, encoder: str, tokenizer: str) -> str:
    """Everything the encoder read, decoded."""
    pipe = seen["loaded"].pipe
    ids = seen["ids"][encoder][0]
    return getattr(pipe, tokenizer).decode(ids[0], skip_special_tokens=True)


@pytest.mark.parametrize("family", list(CASES))
def test_generate_renders_with_the_family_defaults_and_the_long_encoder_reads_the_whole_plan(
    family, request, seen, monkeypatch, capsys, tmp_path
):
    fixture, steps, guidance, true_cfg, encoder, tokenizer = CASES[family]
    folder = request.getfixturevalue(fixture)
    args = ["generate", LONG, "--model", str(folder), "--size", "64x64", "--llm", "fake", "--json"]
    code, out, err = qia(monkeypatch, capsys, *args, "--outdir", str(tmp_path), "--device", "cpu")
    assert code == 0, err
    doc = json.loads(out)
    render = doc["render"]
    assert (render["family"], render["steps"], render["guidance"], render["true_cfg_scale"]) == (
        family,
        steps,
        guidance,
        true_cfg,
    )
    assert doc["plan"]["prompt"].startswith(LONG)  # the request whole, and what the plan added after it
    assert not [w for w in doc["plan"]["warnings"] if "cap" in w or "will not see" in w]
    png = Path(doc["outputs"][0]["path"])
    meta = read_metadata(png)
    assert meta["qia:family"] == family and f"Family: {family}" in meta["parameters"]
    assert json.loads(png.with_suffix(".json").read_text())["render"]["family"] == family
    assert LONG.split()[-1] in meta["qia:prompt"]
    # the encoder that reads the whole prompt got all 120 words, to the last one
    read = " ".join(_read(seen, encoder, tokenizer).split())
    assert "castle bridge" in read and len(read.split()) >= 120


def test_flux_schnell_shaped_renders_in_1_to_4_steps_at_guidance_0_and_clip_reads_the_head(
    tiny_flux_dir, seen, monkeypatch, capsys, tmp_path
):
    code, out, err = qia(
        monkeypatch, capsys, "generate", LONG, "--model", str(tiny_flux_dir), "--no-plan", "--json",
        "--outdir", str(tmp_path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    render = json.loads(out)["render"]
    assert 1 <= render["steps"] <= 4 and render["guidance"] == 0.0 and render["prompt"] == LONG
    assert (render["width"], render["height"]) == (64, 64)  # the size its VAE was made for
    assert "castle bridge" in _read(seen, "text_encoder_2", "tokenizer_2")  # T5
    clip_ids = seen["ids"]["text_encoder"][0]
    assert clip_ids.shape[-1] == 77  # CLIP reads its 77 tokens: the head of the prompt


def test_user_flags_override_the_family_defaults(tiny_flux_dir, monkeypatch, capsys, tmp_path):
    code, out, err = qia(
        monkeypatch, capsys, "generate", "a red cat", "--model", str(tiny_flux_dir), "--no-plan", "--json",
        "--steps", "2", "--guidance", "1.5", "--size", "64x48", "--outdir", str(tmp_path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    render = json.loads(out)["render"]
    assert (render["steps"], render["guidance"], render["width"], render["height"]) == (2, 1.5, 64, 48)
    assert render["family"] == "flux.1-schnell"


@pytest.mark.parametrize("family", list(CASES))
def test_batch_records_the_family_defaults(family, request, monkeypatch, capsys, tmp_path):
    fixture, steps, guidance, true_cfg, _, _ = CASES[family]
    folder = request.getfixturevalue(fixture)
    lines = tmp_path / "lines.txt"
    lines.write_text(f"a red cat\n{LONG}\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    code, out, err = qia(
        monkeypatch, capsys, "batch", str(lines), "--model", str(folder), "--llm", "fake", "--search", "off",
        "--size", "64x64", "--device", "cpu", "--outdir", str(out_dir), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["ok"] == 2
    records = [json.loads(x) for x in (out_dir / "results.jsonl").read_text().splitlines()]
    for record in records:
        render = record["render"]
        assert (render["family"], render["steps"], render["guidance"], render["true_cfg_scale"]) == (
            family,
            steps,
            guidance,
            true_cfg,
        )
        assert read_metadata(Path(record["outputs"][0]["path"]))["qia:family"] == family
    long = next(r for r in records if r["request"] == LONG)
    assert long["plan"]["prompt"].startswith(LONG)


# -- a GGUF-quantized transformer -------------------------------------------------------------------------------
def test_a_gguf_transformer_loads_with_its_base_pipeline(
    tiny_flux_dir, tiny_flux_gguf, seen, monkeypatch, capsys, tmp_path
):
    spec = f"{tiny_flux_dir}+{tiny_flux_gguf}"
    code, out, err = qia(
        monkeypatch, capsys, "generate", "a red cat", "--model", spec, "--no-plan", "--json", "--size", "64x64",
        "--outdir", str(tmp_path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["render"]["model"] == spec and doc["render"]["family"] == "flux.1-schnell"
    assert Path(doc["outputs"][0]["path"]).is_file()
    kinds = {type(p).__name__ for p in seen["loaded"].pipe.transformer.parameters()}
    assert "GGUFParameter" in kinds  # the weights stay quantized
    code, out, _ = qia(monkeypatch, capsys, "models", "info", spec, "--json")
    info = json.loads(out)
    assert code == 0 and info["kind"] == "quant" and info["available"] and info["family"] == "flux.1-schnell"
    assert info["transformer"] == str(tiny_flux_gguf)


def test_a_bad_gguf_spec_is_one_line_exit_2(
    tiny_flux_dir, tiny_pipeline_dir, tiny_flux_gguf, monkeypatch, capsys, tmp_path
):
    base = ["generate", "a cat", "--no-plan", "--outdir", str(tmp_path), "--model"]
    code, _, err = qia(monkeypatch, capsys, *base, f"{tiny_flux_dir}+{tmp_path / 'nope.gguf'}")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    code, _, err = qia(monkeypatch, capsys, *base, f"{tiny_pipeline_dir}+{tiny_flux_gguf}")
    assert code == 2 and "no transformer" in err
    code, _, err = qia(monkeypatch, capsys, *base, f"{tiny_flux_dir}+not-a-gguf.bin")
    assert code == 2 and "BASE+TRANSFORMER.gguf" in err
    code, _, err = qia(monkeypatch, capsys, *base, f"{tiny_flux_dir}+acme/missing/x.gguf")
    assert code == 2 and "not in the Hugging Face cache" in err and "qia models pull" in err
