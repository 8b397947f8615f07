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
from qia_cli.imaging import quant
from qia_cli.imaging.device import dtype_name, gpu_memory, resolve_device
from qia_cli.imaging.families import CLIP_TOKENS, FamilyDefaults, defaults_for, negative_applies
from qia_cli.imaging.hub import go_offline, hub_reachable
from qia_cli.seeds import MAX_SEED

MAX_SIDE = 4096
# 8.4 MP (e.g. 4096x2048): SD-class models are trained at 0.26-1 MP; far beyond that the output
# degrades into repeats while UNet attention memory grows with the square of the latent area.
MAX_AREA = MAX_SIDE * MAX_SIDE // 2
GIB = 1024**3
# What a render needs on the GPU beside the weights (latents, attention, the VAE decode at 1024 px): a pipeline
# whose weights plus this do not fit the GPU's free memory runs with enable_model_cpu_offload.
WORKING_MEMORY = int(1.5 * GIB)


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
    weights: int = 0  # bytes of weights the pipeline holds
    offload: bool = False  # enable_model_cpu_offload: each part moves to the GPU only while it runs
    note: str | None = None  # what the user should know about how it loaded (offload)

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
    whose components are all there; a hub id must be cached or the hub reachable; a GGUF transformer
    (BASE+TRANSFORMER.gguf) must be a file or pulled. ModelError if not."""
    spec = quant.split(model)
    if spec is not None:
        quant.gguf_path(spec, model)
    base = spec.base if spec else model
    folder = _local_folder(base)
    if folder is None:  # a hub id: its cached snapshot is checked the same way
        from qia_cli.models.cache import pipeline_snapshot

        folder = pipeline_snapshot(base)
        if folder is None:
            if not hub_reachable():
                go_offline()
                raise _not_cached(model)
            return  # it downloads when it loads
    if spec is not None:
        quant.transformer_class(folder)
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


def _from_pretrained(source: str, dtype: Any, local_only: bool, variant: str | None = None, **parts: Any) -> Any:
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline

    kwargs = {"torch_dtype": dtype, "local_files_only": local_only, **parts}
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


def _load(model: str, folder: Path | None, dtype: Any, **parts: Any) -> Any:
    """The pipeline `model` (a hub id, or `folder`), with `parts` (a transformer) in place of its own."""
    variant = _variant(model, folder)
    if folder is not None:
        try:
            return _from_pretrained(str(folder), dtype, local_only=True, variant=variant, **parts)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            raise ModelError(f"cannot load model {model}: {first_line(exc)}") from exc
    try:
        return _from_pretrained(model, dtype, local_only=True, variant=variant, **parts)
    except (OSError, ValueError) as cached_exc:
        if not hub_reachable():
            go_offline()
            raise _not_cached(model) from cached_exc
    try:
        return _from_pretrained(model, dtype, local_only=False, **parts)
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
        # 2-D convolutions only: a video-style VAE (Qwen-Image's, 3-D convolutions) has no channels-last form
        if isinstance(module, torch.nn.Module) and all(p.dim() <= 4 for p in module.parameters()):
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
        self._cache: dict[tuple[str, ...], LoadedPipeline] = {}
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
        qspec = quant.split(model)
        base = qspec.base if qspec else model
        folder = _local_folder(base)
        family = defaults_for(str(folder or base))
        vae_from = vae_source(vae, family.family, model)  # an unknown family fails here, before the big load
        gguf = quant.gguf_path(qspec, model) if qspec else None
        key = (str(folder) if folder else base, dev, str(torch_dtype), vae_from or "full", str(gguf or ""))
        if key in self._cache:
            return self._cache[key]
        self.release()  # one pipeline at a time
        set_verbose(verbose)
        if progress:
            progress(f"loading {model} on {dev} ({dtype_name(torch_dtype)})")
        start = time.perf_counter()
        parts = {}
        if gguf is not None:
            parts["transformer"] = quant.load_transformer(_config_source(model, base, folder), gguf, torch_dtype)
        pipe = _load(base, folder, torch_dtype, **parts)
        if vae_from is not None:
            swap_vae(pipe, load_vae(vae_from, torch_dtype), vae_from)
        weights = weight_bytes(pipe)
        offload = needs_offload(weights, gpu_memory(dev))
        note = None
        if offload:
            free = gpu_memory(dev)
            note = (
                f"{model} needs about {_gb(weights + WORKING_MEMORY)} of GPU memory and {dev} has "
                f"{_gb(free[0] if free else 0)} free: rendering with model CPU offload (each part moves to the GPU "
                "only while it runs; slower)"
            )
            if progress:
                progress(note)
            pipe.enable_model_cpu_offload(device=dev)
        else:
            pipe = pipe.to(dev)
        if uses_channels_last(dev, torch_dtype):
            channels_last(pipe)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=not verbose)
        self.loads += 1
        loaded = LoadedPipeline(
            pipe,
            model,
            dev,
            torch_dtype,
            family,
            time.perf_counter() - start,
            vae=vae_from or "full",
            weights=weights,
            offload=offload,
            note=note,
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
            kwargs = call_kwargs(pipe, loaded.family, spec, params)
            kwargs["generator"] = torch.Generator(gen_device).manual_seed(seed)
            if "callback_on_step_end" in params:
                kwargs["callback_on_step_end"] = step_end
            if cancel is not None and cancel():
                raise RenderCancelled("render cancelled")
            with torch.inference_mode():
                out = pipe(**kwargs)
            results.append((out.images[0], seed))
        return results


def call_kwargs(pipe: Any, family: FamilyDefaults, spec: Any, params: Any) -> dict[str, Any]:
    """The pipeline call's arguments for `spec`, as the family uses them (`params`: what its __call__ takes).

    - guidance goes to guidance_scale, or to true_cfg_scale where the family's CFG runs through it (Qwen-Image);
    - a negative prompt only where it has an effect (negative_applies), " " for true CFG without one (as the
      Qwen-Image card does: without a negative the pipeline skips CFG);
    - the long text encoder's token budget as max_sequence_length;
    - dual-encoder families (FLUX.1: CLIP + T5; SD3: two CLIPs + T5): the long encoder reads the whole prompt,
      and the CLIP encoders its head: the leading comma-separated parts that fit their 77 tokens (the request
      comes first, then what the planner ranked highest).
    """
    kwargs: dict[str, Any] = {
        "prompt": spec.prompt,
        "num_inference_steps": spec.steps,
        "width": spec.width,
        "height": spec.height,
        "output_type": "pil",
    }
    true_cfg = getattr(spec, "true_cfg_scale", None)
    if family.true_cfg_scale is not None and "true_cfg_scale" in params:
        true_cfg = true_cfg if true_cfg is not None else spec.guidance
        kwargs["true_cfg_scale"] = true_cfg
    elif "guidance_scale" in params:
        kwargs["guidance_scale"] = spec.guidance
    if negative_applies(family, spec.guidance, true_cfg) and "negative_prompt" in params:
        negative = spec.negative_prompt or (" " if family.negative == "true_cfg" else "")
        if negative:
            kwargs["negative_prompt"] = negative
    if family.max_tokens > CLIP_TOKENS and "max_sequence_length" in params:
        kwargs["max_sequence_length"] = family.max_tokens
    long_arg = family.long_prompt_arg
    if long_arg and long_arg in params and getattr(pipe, f"tokenizer_{long_arg[-1]}", None) is not None:
        head = clip_head(getattr(pipe, "tokenizer", None), spec.prompt)
        kwargs["prompt"] = head
        if long_arg == "prompt_3":
            kwargs["prompt_2"] = head  # SD3's second CLIP (G) reads what the first one does
        kwargs[long_arg] = spec.prompt
    return kwargs


def clip_head(tokenizer: Any, prompt: str, limit: int = CLIP_TOKENS) -> str:
    """The leading comma-separated parts of `prompt` that fit a CLIP tokenizer's `limit` tokens (at least the
    first part, which the encoder then cuts itself)."""
    if tokenizer is None:
        return prompt
    parts = [p.strip() for p in prompt.split(",") if p.strip()]
    if not parts:
        return prompt
    head = parts[0]
    for part in parts[1:]:
        longer = f"{head}, {part}"
        try:
            if len(tokenizer(longer, truncation=False).input_ids) > limit:
                break
        except Exception:  # noqa: BLE001 - a tokenizer that fails here: give CLIP the whole prompt to cut
            return prompt
        head = longer
    return head


def weight_bytes(pipe: Any) -> int:
    """Bytes of the weights the pipeline's modules hold (quantized ones at their packed size)."""
    total = 0
    components = getattr(pipe, "components", None) or {}
    for module in components.values():
        for tensors in (getattr(module, "parameters", None), getattr(module, "buffers", None)):
            if callable(tensors):
                total += sum(t.numel() * t.element_size() for t in tensors())
    return int(total)


def needs_offload(weights: int, memory: tuple[int, int] | None) -> bool:
    """Whether a pipeline of `weights` bytes must run with model CPU offload on a GPU with (free, total)
    bytes of memory (None: not a CUDA GPU, nothing to decide)."""
    if memory is None:
        return False
    free, _total = memory
    return weights + WORKING_MEMORY > free


def disk_weights(model: str) -> int:
    """Bytes of weights `model` (a folder, a cached hub id, either with a GGUF transformer) loads from disk;
    0 when that cannot be told without the network."""
    from qia_cli.models.cache import pipeline_snapshot
    from qia_cli.models.pipeline import weights_size
    from qia_cli.models.spec import is_repo_id

    try:
        spec = quant.split(model)
        base = spec.base if spec else model
        path = Path(base).expanduser()
        folder = path if path.is_dir() else pipeline_snapshot(base) if is_repo_id(base, owner_optional=True) else None
        size = weights_size(folder, skip=("transformer",) if spec else ()) if folder is not None else 0
        if spec is not None:
            size += quant.gguf_path(spec, model).stat().st_size
    except (UsageError, ModelError, OSError):
        return 0
    return size


def _gb(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


def _config_source(model: str, base: str, folder: Path | None) -> Path:
    """Where the base pipeline of `model` (BASE+TRANSFORMER.gguf) keeps its transformer config: its folder,
    or its cached snapshot (a GGUF pipeline loads from the cache only: `qia models pull MODEL` fetches it)."""
    if folder is not None:
        return folder
    from qia_cli.models.cache import pipeline_snapshot

    snapshot = pipeline_snapshot(base)
    if snapshot is None:
        raise _not_cached(model)
    return snapshot


def is_black(image: Any) -> bool:
    """True for an image whose every pixel is 0: what NaNs in the decoder turn into."""
    extrema = image.getextrema()
    if extrema and not isinstance(extrema[0], tuple):
        extrema = (extrema,)
    return all(high == 0 for _low, high in extrema)
