"""Overhead of qia's render + save path (what `qia generate --no-plan` does, minus CLI startup)
against a plain diffusers call + PIL save, on the tiny random-weight pipeline (64x64, 2 steps).

Run: python benchmarks/bench_no_plan.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout


def main(n: int = 20) -> None:
    import torch

    from qia_cli.agent.types import RenderSpec
    from qia_cli.imaging.output import build_metadata, output_name, save_image
    from qia_cli.imaging.pipeline import DiffusersRenderer
    from qia_cli.imaging.tiny import build_tiny_pipeline

    with tempfile.TemporaryDirectory(prefix="qia-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        model = build_tiny_pipeline(root / "tiny-sd")
        build_s = time.perf_counter() - start

        from diffusers import StableDiffusionPipeline

        plain_pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, local_files_only=True)
        plain_pipe.set_progress_bar_config(disable=True)
        spec = RenderSpec(
            prompt="a red bicycle", model=str(model), width=64, height=64, steps=2, guidance=0.0, seed=1, device="cpu"
        )
        renderer = DiffusersRenderer()
        start = time.perf_counter()
        loaded = renderer.load(str(model), "cpu")
        load_s = time.perf_counter() - start

        def plain(i: int) -> None:
            with torch.inference_mode():
                img = plain_pipe(
                    spec.prompt,
                    num_inference_steps=2,
                    guidance_scale=0.0,
                    width=64,
                    height=64,
                    generator=torch.Generator("cpu").manual_seed(i),
                ).images[0]
            img.save(root / f"plain-{i}.png")

        def qia(i: int) -> None:
            s = spec.model_copy(update={"seed": i})
            [(img, seed)] = renderer.render(s, loaded=loaded)
            meta = build_metadata(s.prompt, s, seed, plan_json="{}")
            save_image(
                img,
                outdir=root / "out",
                output=None,
                metadata=meta,
                sidecar={"render": s.model_dump(), "seed": seed},
                name=output_name(s.prompt, seed),
            )

        for i in range(3):  # warm-up
            plain(i)
            qia(i)
        times: dict[str, list[float]] = {"plain": [], "qia": []}
        for i in range(n):  # interleaved so load changes hit both alike
            for label, fn in (("plain", plain), ("qia", qia)):
                start = time.perf_counter()
                fn(100 + i)
                times[label].append(time.perf_counter() - start)

    plain_ms = statistics.median(times["plain"]) * 1000
    qia_ms = statistics.median(times["qia"]) * 1000
    print(f"tiny pipeline build: {build_s * 1000:.0f} ms, qia load: {load_s * 1000:.0f} ms")
    print(f"N={n}, 64x64, 2 steps, torch threads={torch.get_num_threads()}")
    print(f"plain diffusers + PIL save : median {plain_ms:7.2f} ms")
    print(f"qia render() + save_image(): median {qia_ms:7.2f} ms")
    print(f"ratio qia/plain: {qia_ms / plain_ms:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
