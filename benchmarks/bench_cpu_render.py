"""A one-step 512 px render on the CPU at full size: fp32 against bf16, the full VAE against the tiny one.

    python benchmarks/bench_cpu_render.py [--dtypes fp32,bf16] [--reps 2] [--plan-seconds S | --measure-plan]
                                          [--no-ab] [--json FILE]

Builds an sd-turbo-sized pipeline from configs with random weights (no download): the SD 2.1 architecture
at 512 px, UNet 866M, VAE 84M, text encoder 340M parameters, Euler scheduler with trailing steps, plus a
full-size AutoencoderTiny (the TAESD design, 2.4M). The picture is noise but the arithmetic is real, so
the times are those of sd-turbo. For each dtype it times, after one warm-up render:

  - text encoding, one UNet step, the full VAE's decode and the tiny VAE's decode (64x64 latents -> 512 px);
  - a whole render through qia's renderer (`qia_cli.imaging.pipeline.DiffusersRenderer.render`, 1 step, guidance 0), with
    each VAE;
  - unless --no-ab, the UNet step and the decodes in the other memory layout too: qia puts the UNet and VAE
    weights in channels-last layout for bf16 on the CPU and leaves them contiguous otherwise.

Then it compares each dtype with fp32 on the same inputs and seed (relative error of the UNet output, pixel
differences of the decoded images, NaNs, all-black images), and the planning share of an end-to-end
`qia generate`: plan / (plan + render), taking the plan time from --plan-seconds or, with --measure-plan,
from `qia plan --search off --no-memory --json` (median of 3 runs, LLM load excluded) on a rules-only
prompt and on one that asks the LLM. Pipeline loading from disk is not part of a render and is left out.

It prints wall-clock medians and the CPU seconds of the process. On a busy machine the wall times of a
multi-threaded run swing widely (each OpenMP region waits for its slowest thread); `--threads 1` and the
CPU-seconds table then give the steadiest comparison of dtypes and VAEs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout

PROMPT = "a red bicycle leaning on a brick wall, late afternoon light"
SIZE = 512


def build_pipeline(seed: int = 0):
    """sd-turbo's architecture (stabilityai/sd-turbo's configs) with random weights, fp32, in memory."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from qia_cli.imaging.pipeline import set_verbose
    from qia_cli.imaging.tiny import _write_tokenizer_files, assemble_pipeline

    set_verbose(False)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 8,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=32,
        sample_size=768,
        scaling_factor=0.18215,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(  # OpenCLIP ViT-H/14 text tower, penultimate layer: 23 layers
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
        )
    )
    with tempfile.TemporaryDirectory(prefix="qia-bench-tok-") as tmp:  # a small BPE; token ids fit the vocab
        vocab_file, merges_file, _ = _write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)
    pipe = assemble_pipeline(vae, text_encoder, tokenizer, unet)
    pipe.set_progress_bar_config(disable=True)
    tiny = AutoencoderTiny()  # the TAESD design (diffusers' defaults)
    for module in (unet, vae, text_encoder, tiny):
        module.eval()
    return pipe, tiny


def params(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


class Timer:
    def __init__(self, reps: int) -> None:
        self.reps = reps

    def __call__(self, fn):
        """Median wall and CPU seconds of `reps` calls, and the last result."""
        walls, cpus, out = [], [], None
        for _ in range(self.reps):
            wall, cpu = time.perf_counter(), time.process_time()
            out = fn()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        return {"s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3)}, out


def pixels(image) -> object:
    import numpy as np

    return np.asarray(image, dtype=np.float64)


def image_diff(ref, other) -> dict:
    import numpy as np

    a, b = pixels(ref), pixels(other)
    mse = float(np.mean((a - b) ** 2))
    return {
        "mean_abs": round(float(np.mean(np.abs(a - b))), 3),
        "max_abs": int(np.max(np.abs(a - b))),
        "psnr_db": round(10 * np.log10(255**2 / mse), 1) if mse else None,
    }


def to_image(decoded):
    """A decoded [-1, 1] batch -> the PIL image diffusers would save (NaN -> 0, as there)."""
    import numpy as np
    from PIL import Image

    x = decoded[0].float().clamp(-1, 1).add(1).mul(127.5).round()
    arr = np.nan_to_num(x.permute(1, 2, 0).cpu().numpy()).astype("uint8")
    return Image.fromarray(arr)


def run_dtype(name: str, pipe, tiny, reps: int, ab: bool, inputs: dict) -> tuple[dict, dict]:
    """Time one dtype; returns (times, outputs for the comparison)."""
    import torch

    from qia_cli.agent.types import RenderSpec
    from qia_cli.imaging import pipeline as renderer
    from qia_cli.imaging.device import resolve_dtype
    from qia_cli.imaging.families import SD_TURBO
    from qia_cli.imaging.vae import swap_vae

    dtype = resolve_dtype("cpu", name)
    pipe.to(dtype=dtype)
    tiny.to(dtype=dtype)
    full = pipe.vae
    sf = full.config.scaling_factor
    latents, emb, t = inputs["latents"].to(dtype), inputs["emb"].to(dtype), inputs["t"]
    timer = Timer(reps)
    times: dict[str, dict] = {}
    outs: dict[str, object] = {}

    def unet():
        return pipe.unet(latents, t, encoder_hidden_states=emb).sample

    def decode():
        return full.decode(latents / sf).sample

    def decode_tiny():
        return tiny.decode(latents).sample

    def encode():
        return pipe.encode_prompt(PROMPT, "cpu", 1, False)[0]

    ours = "channels_last" if renderer.uses_channels_last("cpu", dtype) else "contiguous"  # as DiffusersRenderer.load
    other = "contiguous" if ours == "channels_last" else "channels_last"

    def layout(kind: str) -> None:
        for module in (pipe.unet, full, tiny):
            module.to(memory_format=getattr(torch, kind if kind == "channels_last" else "contiguous_format"))

    with torch.inference_mode():
        if ab:  # the same calls in the layout qia does not use for this dtype
            layout(other)
            unet(), decode(), decode_tiny()  # warm-up: oneDNN builds its kernels on the first call of a shape
            times[f"unet_step_{other}"], _ = timer(unet)
            times[f"vae_decode_{other}"], _ = timer(decode)
            times[f"tiny_decode_{other}"], _ = timer(decode_tiny)
            print(
                f"  {name} {other}: unet {times[f'unet_step_{other}']['s']} s, "
                f"vae {times[f'vae_decode_{other}']['s']} s, tiny {times[f'tiny_decode_{other}']['s']} s",
                flush=True,
            )
        layout(ours)
        loaded = renderer.LoadedPipeline(pipe, "sd-turbo-sized (random weights)", "cpu", dtype, SD_TURBO, 0.0)
        spec = RenderSpec(
            prompt=PROMPT,
            model=loaded.model,
            width=SIZE,
            height=SIZE,
            steps=1,
            guidance=0.0,
            seed=inputs["seed"],
            device="cpu",
            dtype=name,
        )

        qia = renderer.DiffusersRenderer()

        def render():
            return qia.render(spec, loaded=loaded)[0][0]

        render()  # warm-up
        times["text_encoder"], _ = timer(encode)
        times["unet_step"], outs["unet"] = timer(unet)
        times["vae_decode"], decoded = timer(decode)
        times["tiny_decode"], decoded_tiny = timer(decode_tiny)
        outs["nan"] = {
            "unet": bool(torch.isnan(outs["unet"]).any()),
            "vae": bool(torch.isnan(decoded).any()),
            "tiny": bool(torch.isnan(decoded_tiny).any()),
        }
        outs["vae"], outs["tiny"] = to_image(decoded), to_image(decoded_tiny)
        if ab:
            for stage in ("unet_step", "vae_decode", "tiny_decode"):
                times[f"{stage}_{ours}"] = times[stage]
        times["render"], outs["render"] = timer(render)
        swap_vae(pipe, tiny, "tiny")
        try:
            render()  # warm-up of the tiny decoder inside the pipeline
            times["render_tiny_vae"], outs["render_tiny_vae"] = timer(render)
        finally:
            pipe.vae = full
    print(f"  {name} ({ours}): " + ", ".join(f"{k} {v['s']} s" for k, v in times.items() if "_c" not in k), flush=True)
    return times, outs


def measure_plan(prompt: str, runs: int = 3) -> float | None:
    """Median plan time (plan.timings.total: rules, LLM questions, compose; not the model load) of
    `qia plan PROMPT --search off --no-memory --json`, in fresh processes as a user would run it."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    found = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-m", "qia_cli", "plan", prompt, "--search", "off", "--no-ask", "--no-memory", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if proc.returncode != 0:
            print(f"  qia plan failed ({proc.returncode}): {proc.stderr.strip()[-300:]}", flush=True)
            return None
        found.append(json.loads(proc.stdout)["timings"]["total"])
    return round(statistics.median(found), 3)


def machine() -> dict:
    import torch

    from qia_cli import cpu
    from qia_cli.imaging.device import cpu_bf16_ok, cpu_flags

    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    flags = cpu_flags()
    return {
        "cpu": model,
        "physical_cores": cpu.physical_cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "bf16_flags": sorted(flags & {"amx_bf16", "amx_tile", "avx512_bf16"}),
        "bf16_by_default": cpu_bf16_ok(),
        "nice": os.nice(0),
        "loadavg": os.getloadavg(),
    }


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def table(results: dict, plans: dict[str, float], metric: str = "s") -> str:
    names = list(results)
    base = results.get("fp32", {}).get("times")
    rows = [
        ("text encoder", "text_encoder"),
        ("one UNet step", "unet_step"),
        ("VAE decode, 64->512", "vae_decode"),
        ("tiny VAE decode, 64->512", "tiny_decode"),
        ("one-step 512 px render", "render"),
        ("one-step 512 px render, tiny VAE", "render_tiny_vae"),
        ("UNet step, contiguous", "unet_step_contiguous"),
        ("UNet step, channels-last", "unet_step_channels_last"),
        ("VAE decode, contiguous", "vae_decode_contiguous"),
        ("VAE decode, channels-last", "vae_decode_channels_last"),
        ("tiny VAE decode, contiguous", "tiny_decode_contiguous"),
        ("tiny VAE decode, channels-last", "tiny_decode_channels_last"),
    ]
    head = (
        "| stage | "
        + " | ".join(names)
        + (" | " + " | ".join(f"{n} vs fp32" for n in names if n != "fp32") if base else "")
        + " |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, key in rows:
        cells = [fmt(results[n]["times"].get(key, {}).get(metric)) for n in names]
        if not any(c != "-" for c in cells):
            continue
        if base:
            for n in names:
                if n == "fp32":
                    continue
                a, b = base.get(key, {}).get(metric), results[n]["times"].get(key, {}).get(metric)
                cells.append(f"{a / b:.1f}x" if a and b else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if plans and metric == "s":
        configs = [(n, key) for n in names for key in ("render", "render_tiny_vae")]
        head = "| plan | " + " | ".join(f"{n}{', tiny VAE' if key != 'render' else ''}" for n, key in configs) + " |"
        lines += [
            "",
            "Planning share of an end-to-end generate, plan / (plan + render):",
            "",
            head,
            "|" + "---|" * (len(configs) + 1),
        ]
        for label, plan_s in plans.items():
            cells = [f"{100 * plan_s / (plan_s + results[n]['times'][key]['s']):.1f}%" for n, key in configs]
            lines.append(f"| {label}: {plan_s:.3f} s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (fp32 first)")
    parser.add_argument("--reps", type=int, default=2, help="timed calls per measurement, after a warm-up")
    parser.add_argument("--no-ab", dest="ab", action="store_false", help="skip the no-channels-last timings")
    parser.add_argument("--plan-seconds", type=float, help="a plan time to set against the render")
    parser.add_argument(
        "--measure-plan",
        action="store_true",
        help="time `qia plan --search off` (the configured LLM) on each --plan-prompt",
    )
    parser.add_argument(
        "--plan-prompt", action="append", help="repeatable; default: a rules-only prompt and one that asks the LLM"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, the physical cores)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args()
    names = [n.strip() for n in args.dtypes.split(",") if n.strip()]

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    print(f"machine: {json.dumps(info)}", flush=True)
    plans: dict[str, float] = {}
    if args.plan_seconds is not None:
        plans["given"] = args.plan_seconds
    if args.measure_plan:
        for prompt in args.plan_prompt or [
            "a red bicycle leaning on a wall",
            "a poster of the national flower of Japan",
        ]:
            seconds = measure_plan(prompt)
            print(f"plan: {seconds} s (median of 3, `qia plan {prompt!r} --search off`)", flush=True)
            if seconds is not None:
                plans[repr(prompt)] = seconds

    start = time.perf_counter()
    pipe, tiny = build_pipeline()
    sizes = {
        "unet": params(pipe.unet),
        "vae": params(pipe.vae),
        "text_encoder": params(pipe.text_encoder),
        "tiny_vae": params(tiny),
    }
    print(
        f"built in {time.perf_counter() - start:.0f} s: " + ", ".join(f"{k} {v:.1f}M" for k, v in sizes.items()),
        flush=True,
    )
    gen = torch.Generator().manual_seed(args.seed)
    inputs = {
        "latents": torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=gen),
        "emb": None,
        "t": torch.tensor([999.0]),
        "seed": args.seed,
    }
    with torch.inference_mode():
        inputs["emb"] = pipe.encode_prompt(PROMPT, "cpu", 1, False)[0].float()

    results: dict[str, dict] = {}
    ref = None
    cast = False
    for name in names:
        if cast:  # weights already rounded to a 16-bit type: rebuild (same seed) rather than cast again
            pipe, tiny = build_pipeline()
        cast = name != "fp32"
        times, outs = run_dtype(name, pipe, tiny, args.reps, args.ab, inputs)
        result = {
            "times": times,
            "nan": outs["nan"],
            "black": {k: bool(pixels(outs[k]).max() == 0) for k in ("vae", "tiny", "render", "render_tiny_vae")},
        }
        if ref is None and name == "fp32":
            ref = outs
        elif ref is not None:
            a, b = ref["unet"].float(), outs["unet"].float()
            result["vs_fp32"] = {
                "unet_rel_error": round(float((a - b).norm() / a.norm()), 4),
                "vae_decode": image_diff(ref["vae"], outs["vae"]),
                "tiny_decode": image_diff(ref["tiny"], outs["tiny"]),
                "render": image_diff(ref["render"], outs["render"]),
                "render_tiny_vae": image_diff(ref["render_tiny_vae"], outs["render_tiny_vae"]),
            }
            print(f"  {name} vs fp32: {json.dumps(result['vs_fp32'])}", flush=True)
        if ref is not None:
            result["tiny_vs_full_vae"] = image_diff(outs["render"], outs["render_tiny_vae"])
        results[name] = result
        del outs

    info["loadavg_after"] = os.getloadavg()
    print()
    print("Wall-clock seconds:\n")
    print(table(results, plans))
    print("\nCPU seconds of this process (all its threads; with one thread the steadiest measure on a busy machine):\n")
    print(table(results, {}, "cpu_s"))
    print()
    for name, r in results.items():
        print(
            f"{name}: NaNs {r['nan']}, all-black {r['black']}"
            + (f", vs fp32 {json.dumps(r['vs_fp32'])}" if "vs_fp32" in r else "")
        )
    print(f"load average before {info['loadavg']}, after {info['loadavg_after']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "params_m": sizes, "plan_s": plans, "reps": args.reps, "results": results}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
