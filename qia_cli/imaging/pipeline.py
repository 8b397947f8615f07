"""Rendering with diffusers: `DiffusersRenderer` loads a pipeline and keeps it warm, and renders seeded images
from a RenderSpec. The checks on a model and a size need no torch."""

from __future__ import annotations

import gc
import inspect
import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qia_cli.errors import ModelError, UsageError, first_line
from qia_cli.imaging.device import dtype_name, resolve_device
from qia_cli.imaging.families import FamilyDefaults, defaults_for
from qia_cli.imaging.hub import go_offline, hub_reachable
from qia_cli.seeds import MAX_SEED

MAX_SIDE = 4096
# 8.4 MP (e.g. 4096x2048): SD-class models are trained at 0.26-1 MP; far beyond that the output
# degrades into repeats while UNet attention memory grows with the square of the latent area.
MAX_AREA = MAX_SIDE * MAX_SIDE // 2


class RenderCancelled(KeyboardInterrupt):
    """Raised when `cancel()` says stop; a KeyboardInterrupt so nothing in between swallows it."""


@dataclass
class LoadedPipeline:
    pipe: Any
    model: str
    device: str
    dtype: Any
    family: FamilyDefaults
    load_seconds: float
    low_memory: bool = False
    vae: str = "full"  # "full" (the pipeline's own) or the folder / hub id of the VAE put in its place

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)


def validate_size(width: int, height: int) -> None:
    """Both > 0, multiples of 8, each <= 4096 and area <= 4096*2048; else UsageError."""
    size = f"{width}x{height}"
    if width <= 0 or height <= 0:
        raise UsageError(f"size {size} is invalid: width and height must be positive")
    if width % 8 or height % 8:
        raise UsageError(f"size {size} is invalid: width and height must be multiples of 8")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise UsageError(f"size {size} is invalid: width and height must be at most {MAX_SIDE}")
    if width * height > MAX_AREA:
        raise UsageError(f"size {size} is invalid: at most {MAX_AREA} pixels (e.g. 4096x2048)")


def parse_size(text: str) -> tuple[int, int]:
    """'768x512' or '768*512' -> (768, 512), validated."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*[xX*×]\s*(\d{1,6})\s*", text or "")
    if not match:
        raise UsageError(f"size '{text}' is invalid: use WIDTHxHEIGHT, e.g. 768x512")
    width, height = int(match.group(1)), int(match.group(2))
    validate_size(width, height)
    return width, height


def set_verbose(verbose: bool) -> None:
    """Progress bars and library warnings on (verbose) or off (default)."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    if verbose:
        dlog.enable_progress_bar()
        dlog.set_verbosity_warning()
        tlog.set_verbosity_warning()
        return
    dlog.disable_progress_bar()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    for module in ("diffusers", "transformers", "huggingface_hub", "torch", "accelerate"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)


def _local_folder(model: str) -> Path | None:
    """The folder `model` names, None for a hub id; ModelError for a bad path."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"model {model} is a file, not a diffusers pipeline folder",
                hint="pass a folder with model_index.json, or a Hugging Face id",
            )
        if not (path / "model_index.json").is_file():
            raise ModelError(f"model {model} is not a diffusers pipeline folder (no model_index.json)")
        return path.resolve()
    from qia_cli.models.spec import is_repo_id

    if not is_repo_id(model, owner_optional=True):
        raise ModelError(
            f"model folder {model} does not exist",
            hint="pass an existing folder or a Hugging Face id like stabilityai/sd-turbo",
        )
    return None


def _not_cached(model: str) -> ModelError:
    return ModelError(
        f"model {model} is not in the Hugging Face cache and the hub cannot be reached",
        hint=f"on a connected machine run `qia models pull {model}` or pass --model /path/to/folder",
    )


def check_model(model: str) -> None:
    """Whether `model` can load, on paper and without importing torch: a folder must hold a pipeline
    whose components are all there; a hub id must be cached or the hub reachable. ModelError if not."""
    folder = _local_folder(model)
    if folder is None:  # a hub id: its cached snapshot is checked the same way
        from qia_cli.models.cache import pipeline_snapshot

        folder = pipeline_snapshot(model)
        if folder is None:
            if not hub_reachable():
                go_offline()
                raise _not_cached(model)
            return  # it downloads when it loads
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {model}: model_index.json cannot be read ({first_line(exc)})") from None
    if not isinstance(index, dict) or not index.get("_class_name"):
        raise ModelError(f"model {model}: model_index.json names no pipeline class")
    missing = [
        name
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and all(value)
        and not (folder / name).is_dir()
    ]
    if missing:
        raise ModelError(
            f"model {model} is incomplete: no {', '.join(sorted(missing))} folder",
            hint="copy the whole pipeline folder, or download it again",
        )


def _variant(model: str, folder: Path | None) -> str | None:
    """'fp16' for a pipeline that holds only fp16 weights (as `qia models pull` fetches them)."""
    from qia_cli.models.cache import pipeline_snapshot
    from qia_cli.models.pipeline import local_variant

    snapshot = folder or pipeline_snapshot(model)
    return local_variant(snapshot) if snapshot is not None else None


def _from_pretrained(source: str, dtype: Any, local_only: bool, variant: str | None = None) -> Any:
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline

    kwargs = {"torch_dtype": dtype, "local_files_only": local_only}
    if variant:
        kwargs["variant"] = variant
    try:
        return AutoPipelineForText2Image.from_pretrained(source, safety_checker=None, **kwargs)
    except ValueError as exc:  # no text-to-image pipeline mapped to this class
        if "AutoPipeline" not in str(exc):
            raise
    try:
        return DiffusionPipeline.from_pretrained(source, safety_checker=None, **kwargs)
    except TypeError:
        return DiffusionPipeline.from_pretrained(source, **kwargs)


def _load(model: str, folder: Path | None, dtype: Any) -> Any:
    variant = _variant(model, folder)
    if folder is not None:
        try:
            return _from_pretrained(str(folder), dtype, local_only=True, variant=variant)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            raise ModelError(f"cannot load model {model}: {first_line(exc)}") from exc
    try:
        return _from_pretrained(model, dtype, local_only=True, variant=variant)
    except (OSError, ValueError) as cached_exc:
        if not hub_reachable():
            go_offline()
            raise _not_cached(model) from cached_exc
    try:
        return _from_pretrained(model, dtype, local_only=False)
    except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
        raise ModelError(
            f"cannot load model {model}: {first_line(exc)}",
            hint="check the id on huggingface.co, or pass --model /path/to/folder",
        ) from exc


def uses_channels_last(device: str, dtype: Any) -> bool:
    """Channels-last weights where they measured faster: bf16 on the CPU."""
    import torch

    return device == "cpu" and dtype == torch.bfloat16


def channels_last(pipe: Any) -> None:
    """UNet and VAE weights in channels-last layout. On the CPU in bf16, oneDNN's convolutions then skip a
    layout copy per call: VAE decode 2.3x faster, UNet step 4% (benchmarks/bench_cpu_render.py). In fp32
    and fp16 it measured no better or worse, so qia uses it for bf16 only."""
    import torch

    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs miss this form


def _memory_mode(loaded: LoadedPipeline, width: int, height: int) -> None:
    want = width * height > 1024 * 1024 or loaded.device == "mps"
    if want == loaded.low_memory:
        return
    pipe = loaded.pipe
    vae = getattr(pipe, "vae", None)
    if want:
        if hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing()
        if vae is not None and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
    else:
        if hasattr(pipe, "disable_attention_slicing"):
            pipe.disable_attention_slicing()
        if vae is not None and hasattr(vae, "disable_tiling"):
            vae.disable_tiling()
    loaded.low_memory = want


class DiffusersRenderer:
    """Renders with diffusers pipelines. The loaded pipeline stays warm in this object for the next render
    (cached per model, device, dtype and VAE), one at a time: they are GBs each."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str, str], LoadedPipeline] = {}
        self.loads = 0  # real loads (cache hits don't count)

    @property
    def loaded(self) -> list[LoadedPipeline]:
        """The pipelines held warm (at most one)."""
        return list(self._cache.values())

    def check_model(self, model: str) -> None:
        check_model(model)

    def validate_size(self, width: int, height: int) -> None:
        validate_size(width, height)

    def release(self) -> None:
        """Drop the warm pipeline and free its memory."""
        devices = {lp.device for lp in self._cache.values()}
        self._cache.clear()
        gc.collect()
        if any(d.startswith("cuda") for d in devices):
            import torch

            torch.cuda.empty_cache()

    def load(
        self,
        model: str,
        device: str = "auto",
        *,
        dtype: str | None = "auto",
        vae: str | None = "full",
        progress: Callable[[str], None] | None = None,
        verbose: bool = False,
    ) -> LoadedPipeline:
        """Load `model` (hub id or local folder) on `device` in `dtype` (auto|fp32|bf16|fp16), with its own
        VAE or `vae` (tiny, a folder, a hub id) in its place; the one already warm when it matches."""
        from qia_cli.imaging.vae import load_vae, swap_vae, vae_source

        dev, torch_dtype = resolve_device(device, dtype)
        folder = _local_folder(model)
        family = defaults_for(str(folder or model))
        vae_from = vae_source(vae, family.family, model)  # an unknown family fails here, before the big load
        key = (str(folder) if folder else model, dev, str(torch_dtype), vae_from or "full")
        if key in self._cache:
            return self._cache[key]
        self.release()  # one pipeline at a time
        set_verbose(verbose)
        if progress:
            progress(f"loading {model} on {dev} ({dtype_name(torch_dtype)})")
        start = time.perf_counter()
        pipe = _load(model, folder, torch_dtype)
        if vae_from is not None:
            swap_vae(pipe, load_vae(vae_from, torch_dtype), vae_from)
        pipe = pipe.to(dev)
        if uses_channels_last(dev, torch_dtype):
            channels_last(pipe)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=not verbose)
        self.loads += 1
        loaded = LoadedPipeline(
            pipe, model, dev, torch_dtype, family, time.perf_counter() - start, vae=vae_from or "full"
        )
        self._cache[key] = loaded
        return loaded

    def render(
        self,
        spec: Any,
        *,
        loaded: LoadedPipeline | None = None,
        count: int = 1,
        on_step: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        verbose: bool = False,
    ) -> list[tuple[Any, int]]:
        """Render `count` images with seeds spec.seed, spec.seed+1, ... on `loaded` (by default the pipeline
        `spec` names, loaded here); returns [(PIL image, seed)].

        `on_step(step, total)` after each step; `cancel()` returning True raises RenderCancelled.
        """
        import torch

        validate_size(spec.width, spec.height)
        if count < 1:
            raise UsageError(f"count {count} is invalid: must be at least 1")
        if not 0 <= spec.seed or spec.seed + count - 1 > MAX_SEED:
            raise UsageError(f"seed {spec.seed} is invalid: must be between 0 and {MAX_SEED}")
        if spec.steps < 1:
            raise UsageError(f"steps {spec.steps} is invalid: must be at least 1")
        loaded = loaded or self.load(
            spec.model,
            spec.device,
            dtype=getattr(spec, "dtype", "auto"),
            vae=getattr(spec, "vae", "full"),
            verbose=verbose,
        )
        pipe = loaded.pipe
        _memory_mode(loaded, spec.width, spec.height)
        params = inspect.signature(pipe.__call__).parameters
        gen_device = "cpu" if loaded.device == "mps" else loaded.device

        def step_end(_pipe, step, _timestep, callback_kwargs):
            if on_step is not None:
                on_step(step + 1, int(getattr(_pipe, "num_timesteps", 0) or spec.steps))
            if cancel is not None and cancel():
                raise RenderCancelled("render cancelled")
            return callback_kwargs

        results = []
        for i in range(count):
            seed = spec.seed + i
            kwargs: dict[str, Any] = {
                "prompt": spec.prompt,
                "num_inference_steps": spec.steps,
                "guidance_scale": spec.guidance,
                "width": spec.width,
                "height": spec.height,
                "generator": torch.Generator(gen_device).manual_seed(seed),
                "output_type": "pil",
            }
            if spec.negative_prompt and spec.guidance > 1:
                kwargs["negative_prompt"] = spec.negative_prompt
            if "callback_on_step_end" in params:
                kwargs["callback_on_step_end"] = step_end
            if cancel is not None and cancel():
                raise RenderCancelled("render cancelled")
            with torch.inference_mode():
                out = pipe(**kwargs)
            results.append((out.images[0], seed))
        return results


def is_black(image: Any) -> bool:
    """True for an image whose every pixel is 0: what NaNs in the decoder turn into."""
    extrema = image.getextrema()
    if extrema and not isinstance(extrema[0], tuple):
        extrema = (extrema,)
    return all(high == 0 for _low, high in extrema)
