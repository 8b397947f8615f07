"""A small curated catalog of planner GGUFs (instruct models under open licences, Q4_K_M), and which fits.

Sizes are the published file sizes, rounded; RAM is what llama.cpp needs at qia's auto context window
(the file, the KV cache at 2048 or 4096 tokens, compute buffers). The entries name well-known repositories
and files, but none of them was downloaded where this catalog was written (no network there): a pull of a
renamed file fails with a one-line 404 error, and `qia models pull ORG/REPO/FILE.gguf` takes any GGUF.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

GB = 1_000_000_000


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    repo: str
    file: str
    params: str
    size: int  # bytes on disk
    ram: int  # bytes of RAM to plan with
    license: str
    prompt_format: str
    note: str

    @property
    def spec(self) -> str:
        return f"{self.repo}/{self.file}"

    def as_dict(self) -> dict:
        return {**asdict(self), "spec": self.spec}


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "qwen2.5-0.5b",
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        "0.5B",
        int(0.49 * GB),
        1 * GB,
        "Apache-2.0",
        "ChatML",
        "the smallest step up from the bundled 135M; good at one-line answers",
    ),
    CatalogEntry(
        "qwen2.5-1.5b",
        "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        "qwen2.5-1.5b-instruct-q4_k_m.gguf",
        "1.5B",
        int(1.12 * GB),
        2 * GB,
        "Apache-2.0",
        "ChatML",
        "fast on a laptop CPU; proposes gaps (llm_gaps auto)",
    ),
    CatalogEntry(
        "smollm2-1.7b",
        "HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF",
        "smollm2-1.7b-instruct-q4_k_m.gguf",
        "1.7B",
        int(1.06 * GB),
        int(2.5 * GB),
        "Apache-2.0",
        "ChatML",
        "the bundled model's big sibling",
    ),
    CatalogEntry(
        "qwen3-4b",
        "unsloth/Qwen3-4B-Instruct-2507-GGUF",
        "Qwen3-4B-Instruct-2507-Q4_K_M.gguf",
        "4B",
        int(2.50 * GB),
        int(3.5 * GB),
        "Apache-2.0",
        "ChatML",
        "the best planner for its size here; non-thinking instruct",
    ),
    CatalogEntry(
        "phi-3.5-mini",
        "bartowski/Phi-3.5-mini-instruct-GGUF",
        "Phi-3.5-mini-instruct-Q4_K_M.gguf",
        "3.8B",
        int(2.39 * GB),
        int(4.5 * GB),
        "MIT",
        "Phi-3",
        "strong reasoning; a large KV cache (no grouped-query attention)",
    ),
    CatalogEntry(
        "qwen2.5-7b",
        "bartowski/Qwen2.5-7B-Instruct-GGUF",
        "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        "7.6B",
        int(4.68 * GB),
        int(5.5 * GB),
        "Apache-2.0",
        "ChatML",
        "best quality; wants a GPU (llm_gpu_layers) or 8+ CPU cores",
    ),
)


def find(name: str) -> CatalogEntry | None:
    """The entry named `name` (case-insensitive), or whose ORG/REPO/FILE spec it is."""
    key = (name or "").strip().lower()
    return next((e for e in CATALOG if key in (e.name, e.spec.lower())), None)


def total_ram() -> int | None:
    """Physical memory in bytes, or None when it cannot be read."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported: fall back to sysconf
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def fits(entry: CatalogEntry, ram: int | None) -> bool | None:
    """Whether the model fits next to the system: its RAM need within total RAM minus 2 GB."""
    return None if ram is None else entry.ram <= ram - 2 * GB


def recommend(ram: int | None, cpus: int | None = None) -> CatalogEntry | None:
    """The largest entry within half the RAM; on fewer than 8 cores at most the 3-4B class, on fewer
    than 4 at most 2B (a 7B plans at a few tokens per second there). Ties go to the first listed."""
    if ram is None:
        return None
    cpus = cpus or os.cpu_count() or 1
    cap = 1.5 * GB if cpus < 4 else (3 * GB if cpus < 8 else float("inf"))  # file sizes: 2B, 4B classes
    best = None
    for entry in CATALOG:
        if entry.ram <= ram / 2 and entry.size <= cap and (best is None or entry.size > best.size * 1.2):
            best = entry
    return best
