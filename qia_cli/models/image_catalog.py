"""A curated catalog of image models (diffusers pipelines), what each needs, and which fits this machine.

Disk is what `qia models pull` fetches (one precision, no duplicate checkpoints), GPU memory what holding the
whole pipeline on the GPU takes (bf16/fp16 weights plus working memory at the family's default size), both
rounded from the published file sizes and model cards. None of these was downloaded or run where this
catalog was written (no network and no GPU there). A pipeline that does not fit the GPU still runs with model
CPU offload (qia switches it on and says so) when the machine's RAM holds it, only slower.

Licences as the model cards state them: "non-commercial" ones (FLUX.1 dev, FLUX.2 klein 9B, Sana) may not
be used for commercial work without another licence; the Stability AI Community License is free for
organisations under USD 1M yearly revenue. Check the card before use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GB = 1_000_000_000


@dataclass(frozen=True)
class ImageEntry:
    name: str
    spec: str  # what --model and qia models pull take
    family: str  # imaging/families.py
    disk: int  # bytes pulled
    gpu: int  # bytes of GPU memory to hold the whole pipeline
    license: str
    commercial: bool  # whether the licence allows commercial use (within its terms)
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


_STABILITY = "Stability AI Community"
IMAGE_CATALOG: tuple[ImageEntry, ...] = (
    ImageEntry(
        "sd-turbo",
        "stabilityai/sd-turbo",
        "sd-turbo",
        int(2.6 * GB),
        int(3.5 * GB),
        _STABILITY,
        True,
        "the default: 1 step at 512 px; renders on a CPU too",
    ),
    ImageEntry(
        "sdxl-turbo",
        "stabilityai/sdxl-turbo",
        "sdxl-turbo",
        int(7.0 * GB),
        int(8 * GB),
        _STABILITY,
        True,
        "1 step at 512 px, more detail than sd-turbo",
    ),
    ImageEntry(
        "sana-1.6b",
        "Efficient-Large-Model/Sana_1600M_1024px_BF16_diffusers",
        "sana",
        int(9.0 * GB),
        int(12 * GB),
        "NVIDIA NSCL v2",
        False,
        "20 steps at 1024 px; Gemma-2 reads 300 tokens",
    ),
    ImageEntry(
        "flux.2-klein-4b",
        "black-forest-labs/FLUX.2-klein-4B",
        "flux.2-klein",
        int(16 * GB),
        int(13 * GB),
        "Apache-2.0",
        True,
        "4 steps at 1024 px; Qwen3 reads 512 tokens",
    ),
    ImageEntry(
        "z-image-turbo",
        "Tongyi-MAI/Z-Image-Turbo",
        "z-image-turbo",
        int(20.5 * GB),
        int(16 * GB),
        "Apache-2.0",
        True,
        "9 steps at 1024 px, photoreal, English and Chinese text; Qwen3 reads 512 tokens",
    ),
    ImageEntry(
        "sd3.5-medium",
        "stabilityai/stable-diffusion-3.5-medium",
        "sd3.5-medium",
        int(16 * GB),
        int(18 * GB),
        _STABILITY,
        True,
        "40 steps at 1024 px; gated (accept the terms on the Hub)",
    ),
    ImageEntry(
        "flux.1-schnell-q4",
        "black-forest-labs/FLUX.1-schnell+city96/FLUX.1-schnell-gguf/flux1-schnell-Q4_K_S.gguf",
        "flux.1-schnell",
        int(16.7 * GB),
        int(18 * GB),
        "Apache-2.0",
        True,
        "FLUX.1 schnell with a Q4_K_S GGUF transformer (6.8 GB instead of 23.8 GB)",
    ),
    ImageEntry(
        "flux.1-dev-q4",
        "black-forest-labs/FLUX.1-dev+city96/FLUX.1-dev-gguf/flux1-dev-Q4_K_S.gguf",
        "flux.1-dev",
        int(16.7 * GB),
        int(18 * GB),
        "FLUX.1 [dev] Non-Commercial",
        False,
        "FLUX.1 dev with a Q4_K_S GGUF transformer; gated",
    ),
    ImageEntry(
        "sd3.5-large-turbo",
        "stabilityai/stable-diffusion-3.5-large-turbo",
        "sd3.5-large-turbo",
        int(27 * GB),
        int(30 * GB),
        _STABILITY,
        True,
        "4 steps at 1024 px; gated",
    ),
    ImageEntry(
        "sd3.5-large",
        "stabilityai/stable-diffusion-3.5-large",
        "sd3.5-large",
        int(27 * GB),
        int(30 * GB),
        _STABILITY,
        True,
        "28 steps at 1024 px; gated",
    ),
    ImageEntry(
        "flux.2-klein-9b",
        "black-forest-labs/FLUX.2-klein-9B",
        "flux.2-klein",
        int(35 * GB),
        int(29 * GB),
        "FLUX Non-Commercial",
        False,
        "4 steps at 1024 px; Qwen3 8B reads 512 tokens; gated",
    ),
    ImageEntry(
        "flux.1-schnell",
        "black-forest-labs/FLUX.1-schnell",
        "flux.1-schnell",
        int(33.7 * GB),
        int(35 * GB),
        "Apache-2.0",
        True,
        "1-4 steps at 1024 px; T5 reads 256 tokens",
    ),
    ImageEntry(
        "flux.1-dev",
        "black-forest-labs/FLUX.1-dev",
        "flux.1-dev",
        int(33.7 * GB),
        int(35 * GB),
        "FLUX.1 [dev] Non-Commercial",
        False,
        "28 steps at 1024 px; T5 reads 512 tokens; gated",
    ),
    ImageEntry(
        "qwen-image",
        "Qwen/Qwen-Image",
        "qwen-image",
        int(57.7 * GB),
        int(60 * GB),
        "Apache-2.0",
        True,
        "50 steps at 1328 px, the best text rendering here; the image model of the paper qia implements",
    ),
)

# What to recommend, weakest first: the last one whose GPU memory fits is recommended (all allow commercial
# use). Below 8 GB, or on a CPU, sd-turbo.
LADDER = ("sd-turbo", "sdxl-turbo", "flux.2-klein-4b", "z-image-turbo", "qwen-image")


def find(name: str) -> ImageEntry | None:
    key = (name or "").strip().lower()
    return next((e for e in IMAGE_CATALOG if key in (e.name, e.spec.lower())), None)


def gpu_total() -> int | None:
    """Memory of the GPU images render on: CUDA device 0's, or on Apple silicon (MPS) three quarters of the
    unified RAM (what macOS lets the GPU take); 0 with no GPU, None when torch cannot tell."""
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).total_memory)
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            from qia_cli.models.catalog import total_ram

            ram = total_ram()
            return int(ram * 0.75) if ram else None
    except Exception:  # noqa: BLE001 - a broken torch: unknown, never fatal
        return None
    return 0


CPU_PRACTICAL = 8 * GB  # the 1-step turbo models render on a CPU in seconds to a minute; the rest take hours


def placement(entry: ImageEntry, gpu: int | None, ram: int | None) -> str | None:
    """How `entry` runs here: "gpu" (fits its memory), "offload" (a GPU too small, with RAM enough for model
    CPU offload), "no" (too big for both), and without a GPU "cpu" (the 1-step turbo models) or "needs-gpu";
    None when the GPU's memory is unknown."""
    if gpu is None:
        return None
    if gpu == 0:
        fits_ram = ram is None or entry.disk <= ram - 4 * GB
        return "cpu" if entry.disk <= CPU_PRACTICAL and entry.family.endswith("turbo") and fits_ram else "needs-gpu"
    if entry.gpu <= gpu:
        return "gpu"
    return "offload" if ram is not None and entry.disk <= ram - 4 * GB else "no"


def recommend(gpu: int | None) -> ImageEntry:
    """By GPU memory: the strongest of LADDER that fits; sd-turbo without a GPU (or when unknown)."""
    best = IMAGE_CATALOG[0]
    for name in LADDER:
        entry = find(name)
        if entry is not None and gpu and entry.gpu <= gpu:
            best = entry
    return best
