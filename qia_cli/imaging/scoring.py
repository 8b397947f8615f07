"""Scoring an image against the plan's checklist, for the feedback loop.

`Scorer` is the interface: one score per checklist item, higher is better. `ClipScorer` implements it with a
transformers CLIP model (cosine of image and text embeddings), and `ClipScorers` loads one and keeps it warm. A VLM critic can replace it later (see the
README roadmap). Only transformers' PIL-based image processor is used: the "fast" one needs torchvision.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from qia_cli.errors import ModelError, first_line

# Where VRAM is tight the scorer runs on the CPU: ViT-B/32 scores an image there in about 0.1 s, while a
# CUDA out-of-memory error in the next render costs the whole run.
MIN_FREE_CUDA_BYTES = 1536 << 20  # load on CUDA only with this much free
KEEP_FREE_CUDA_BYTES = 1024 << 20  # after the loop, release a CUDA scorer when less than this is free


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, image: Any, items: list[str]) -> list[float]:
        """One score per item, in order (CLIP: cosine similarity, matching pairs typically 0.25-0.35)."""

    def close(self) -> None:
        """Release the model."""


@dataclass
class ClipScorer:
    model: Any
    tokenizer: Any
    processor: Any
    name: str
    device: str
    dtype: Any
    load_seconds: float = 0.0

    def score(self, image: Any, items: list[str]) -> list[float]:
        if not items:
            return []
        import torch

        with torch.inference_mode():
            pixels = self.processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
            text = self.tokenizer(list(items), padding=True, truncation=True, max_length=77, return_tensors="pt")
            out = self.model(
                input_ids=text["input_ids"].to(self.device),
                attention_mask=text["attention_mask"].to(self.device),
                pixel_values=pixels.to(self.device, self.dtype),
            )
            # Both embeddings come back L2-normalised: their dot product is the cosine.
            cosine = (out.text_embeds.float() @ out.image_embeds.float().T).squeeze(-1)
        return [round(float(v), 4) for v in cosine.reshape(-1).tolist()]

    def close(self) -> None:
        self.model = None


def _cuda_free(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    try:
        free, _total = torch.cuda.mem_get_info(torch.device(device))
    except (RuntimeError, AssertionError):
        return None
    return int(free)


def placement(device: str, dtype: Any) -> tuple[str, Any]:
    """Where the scorer goes: next to the pipeline, or on the CPU (fp32) when CUDA memory is tight."""
    import torch

    free = _cuda_free(device)
    if free is not None and free < MIN_FREE_CUDA_BYTES:
        return "cpu", torch.float32
    return device, dtype


def local_folder(source: str) -> Path | None:
    """The CLIP folder `source` names (resolved), None for a Hugging Face id; ModelError for a path that is
    not a transformers folder or does not exist."""
    from qia_cli.models.spec import is_repo_id

    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelError(
                f"scorer {source} is not a transformers CLIP folder (no config.json)",
                hint="pass a folder saved with save_pretrained, or a Hugging Face id",
            )
        return path.resolve()
    if not is_repo_id(source, owner_optional=True):
        raise ModelError(
            f"scorer folder {source} does not exist",
            hint="pass an existing folder or a Hugging Face id like openai/clip-vit-base-patch32",
        )
    return None


def check_available(source: str) -> None:
    """Fail fast (before any render) when `source` is neither a folder nor cached and the hub is unreachable."""
    if local_folder(source) is not None:
        return
    from huggingface_hub import try_to_load_from_cache

    from qia_cli.imaging.hub import go_offline, hub_reachable

    if isinstance(try_to_load_from_cache(source, "config.json"), str):
        return
    if not hub_reachable():
        go_offline()
        raise ModelError(
            f"scorer {source} is not in the Hugging Face cache and the hub cannot be reached",
            hint=f"on a connected machine run `hf download {source}`, pass --scorer /path/to/folder, "
            "or --rounds 0 to turn the feedback loop off",
        )


def _image_processor_class():
    try:  # transformers >= 5: the PIL backend is its own class; CLIPImageProcessor would want torchvision
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # transformers 4.x: CLIPImageProcessor is the PIL/numpy one
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


def _from_pretrained(source: str, dtype: Any, local_only: bool):
    import transformers
    from transformers import AutoTokenizer, CLIPModel

    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = CLIPModel.from_pretrained(source, local_files_only=local_only, **{dtype_kw: dtype})
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    processor = _image_processor_class().from_pretrained(source, local_files_only=local_only)
    return model, tokenizer, processor


class ClipScorers:
    """Loads CLIP scorers and keeps the last one warm in this object for the next feedback loop, one at a time
    (cached per source, device and dtype)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str], ClipScorer] = {}
        self.loads = 0  # real loads (cache hits don't count)

    def cached(self) -> list[ClipScorer]:
        return list(self._cache.values())

    def release(self) -> None:
        """Drop the warm scorer and free its memory."""
        devices = {s.device for s in self._cache.values()}
        for scorer in self._cache.values():
            scorer.close()
        self._cache.clear()
        gc.collect()
        if any(d.startswith("cuda") for d in devices):
            import torch

            torch.cuda.empty_cache()

    def release_if_tight(self) -> bool:
        """After a loop: free a CUDA scorer when less than KEEP_FREE_CUDA_BYTES remain; True if released."""
        for scorer in self._cache.values():
            free = _cuda_free(scorer.device)
            if free is not None and free < KEEP_FREE_CUDA_BYTES:
                self.release()
                return True
        return False

    def load(
        self,
        source: str,
        device: str = "cpu",
        dtype: Any = None,
        *,
        progress: Callable[[str], None] | None = None,
        verbose: bool = False,
    ) -> ClipScorer:
        """Load a CLIP scorer (hub id or folder) on `device`; the one already warm when it matches."""
        import torch

        from qia_cli.imaging.pipeline import set_verbose

        dtype = dtype or torch.float32
        folder = local_folder(source)
        key = (str(folder or source), device, str(dtype))
        if key in self._cache:
            return self._cache[key]
        self.release()
        check_available(source)
        set_verbose(verbose)
        if progress:
            progress(f"loading scorer {source} on {device}")
        start = time.perf_counter()
        try:
            model, tokenizer, processor = _from_pretrained(str(folder or source), dtype, local_only=True)
        except (OSError, ValueError) as cached_exc:
            if folder is not None:
                raise ModelError(f"cannot load scorer {source}: {first_line(cached_exc)}") from cached_exc
            try:  # not fully cached, but check_available found the hub reachable
                model, tokenizer, processor = _from_pretrained(source, dtype, local_only=False)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelError(
                    f"cannot load scorer {source}: {first_line(exc)}",
                    hint="check the id on huggingface.co, or pass --scorer /path/to/folder",
                ) from exc
        except (KeyError, TypeError, ImportError) as exc:
            raise ModelError(f"cannot load scorer {source}: {first_line(exc)}") from exc
        model = model.to(device).eval()
        self.loads += 1
        scorer = ClipScorer(
            model,
            tokenizer,
            processor,
            name=source,
            device=device,
            dtype=dtype,
            load_seconds=time.perf_counter() - start,
        )
        self._cache[key] = scorer
        return scorer
