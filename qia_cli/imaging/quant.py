"""A pipeline with a GGUF-quantized transformer: `BASE+TRANSFORMER.gguf`.

BASE is the pipeline the rest comes from (text encoders, VAE, scheduler, and the transformer's config): a Hugging
Face id or a local folder. TRANSFORMER.gguf is the quantized transformer: a local .gguf file or a file on the
Hub named ORG/REPO/FILE.gguf, e.g.

    black-forest-labs/FLUX.1-schnell+city96/FLUX.1-schnell-gguf/flux1-schnell-Q4_K_S.gguf

`+` never appears in a Hub id, so the split is unambiguous; a path that exists as typed is always a path.
The transformer loads with diffusers' `GGUFQuantizationConfig` (its weights stay quantized in memory and are
dequantized layer by layer in the compute dtype); everything else loads from BASE as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qia_cli.errors import ModelError, UsageError, first_line

SEPARATOR = "+"


@dataclass(frozen=True)
class QuantSpec:
    base: str  # hub id or folder
    gguf: str  # local .gguf path or ORG/REPO/FILE.gguf

    @property
    def gguf_is_local(self) -> bool:
        return Path(self.gguf).expanduser().is_file() or self.gguf.startswith(("/", ".", "~"))

    @property
    def hub_parts(self) -> tuple[str, str]:
        """(ORG/REPO, FILE.gguf) of a Hub GGUF."""
        parts = self.gguf.split("/")
        return "/".join(parts[:2]), "/".join(parts[2:])


def split(model: str) -> QuantSpec | None:
    """The parts of 'BASE+TRANSFORMER.gguf', None for a plain model; UsageError for a malformed one."""
    text = str(model or "").strip()
    if SEPARATOR not in text or Path(text).expanduser().exists():
        return None
    base, _, gguf = text.partition(SEPARATOR)
    base, gguf = base.strip(), gguf.strip()
    if not base or not gguf.lower().endswith(".gguf") or SEPARATOR in gguf:
        raise UsageError(
            f"model '{text}' is not BASE+TRANSFORMER.gguf",
            hint="e.g. black-forest-labs/FLUX.1-schnell+city96/FLUX.1-schnell-gguf/flux1-schnell-Q4_K_S.gguf",
        )
    spec = QuantSpec(base, gguf)
    if not spec.gguf_is_local and (gguf.count("/") < 2 or not all(gguf.split("/"))):
        raise UsageError(
            f"transformer '{gguf}' is neither a .gguf file nor ORG/REPO/FILE.gguf on the Hub",
            hint="pass the path of a .gguf file, or the Hub repository and file name",
        )
    return spec


def gguf_path(spec: QuantSpec, model: str) -> Path:
    """The GGUF file on disk: the local file, or the pulled Hub file; ModelError when it is neither."""
    if spec.gguf_is_local:
        path = Path(spec.gguf).expanduser()
        if not path.is_file():
            raise ModelError(f"transformer file {spec.gguf} does not exist")
        return path.resolve()
    from qia_cli.models.cache import cached_file

    repo, file = spec.hub_parts
    found = cached_file(repo, file)
    if found is None:
        raise ModelError(
            f"transformer {spec.gguf} is not in the Hugging Face cache",
            hint=f"on a connected machine run `qia models pull {model}`",
        )
    return found


def transformer_class(base_folder: Path) -> str:
    """The transformer class the base pipeline's model_index.json names ('FluxTransformer2DModel')."""
    from qia_cli.models.pipeline import read_index

    entry = read_index(base_folder).get("transformer")
    if not (isinstance(entry, list) and len(entry) == 2 and entry[1]):
        raise ModelError(f"model {base_folder} has no transformer to replace with a GGUF (it is not a DiT pipeline)")
    return str(entry[1])


def load_transformer(base_folder: Path, gguf: Path, dtype: Any) -> Any:
    """The base pipeline's transformer class, loaded from `gguf` with GGUFQuantizationConfig."""
    try:
        import gguf as _gguf  # noqa: F401  (diffusers reads GGUF files with it)
    except ImportError:
        raise ModelError(
            "loading a GGUF transformer needs the gguf package",
            hint='pip install "qia-cli[gguf]" (or pip install gguf)',
        ) from None
    import diffusers

    name = transformer_class(base_folder)
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_single_file"):
        raise ModelError(f"diffusers {diffusers.__version__} cannot load a {name} from a single GGUF file")
    try:
        return cls.from_single_file(
            str(gguf),
            quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype),
            config=str(base_folder),
            subfolder="transformer",
            torch_dtype=dtype,
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(f"cannot load transformer {gguf.name} into {name}: {first_line(exc)}") from exc
