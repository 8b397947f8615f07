"""`qia models pull`: download a planner GGUF or a diffusers pipeline into the Hugging Face cache.

Everything goes through huggingface_hub: its cache (what `--llm` and `--model` read offline), its
resumption of a connection that drops mid-file (Range requests), its progress bars, HF_TOKEN for gated
models and HF_ENDPOINT for mirrors. A file appears in a snapshot only once its blob is complete, so a
cut-off pull never leaves a file that looks whole. What is cached already returns at once, offline.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qia_cli.errors import ModelError, QiaError, UsageError
from qia_cli.models import cache, pipeline
from qia_cli.models.spec import Spec, parse

API_TIMEOUT = 15.0  # seconds for a metadata call; the downloads themselves use huggingface_hub's timeouts
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass
class PullResult:
    spec: str
    kind: str  # gguf | pipeline | quant (a pipeline with a GGUF transformer)
    repo: str
    file: str | None
    path: str  # the GGUF, or the pipeline's snapshot folder
    size: int  # bytes of what was pulled (what loading reads)
    cached: bool  # it was there already: nothing was fetched
    seconds: float
    name: str | None = None  # the catalog name
    repo_size: int | None = None  # bytes of the whole repository (pipelines)
    files: list[str] = field(default_factory=list)
    variant: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    def on(name: str) -> bool:
        return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}

    if on("HF_HUB_OFFLINE") or on("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.is_offline_mode())
    except (ImportError, AttributeError):
        return False


def human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def pull(text: str, *, say: Callable[[str], None] = lambda _m: None, bars: bool = False) -> PullResult:
    """Pull what `text` names; what is cached already returns at once, without the network."""
    from qia_cli.imaging import quant
    from qia_cli.models import image_catalog

    entry = image_catalog.find(text)
    if entry is not None and entry.spec != text:
        text = entry.spec  # an image catalog name: its pipeline (and GGUF transformer)
    qspec = quant.split(text)
    if qspec is not None:
        return _pull_quant(qspec, text, say, bars)
    spec = parse(text)
    if spec is None:
        if Path(text).expanduser().exists():
            raise UsageError(
                f"{text} is a local path: there is nothing to pull",
                hint="use it as it is: --llm FILE.gguf or --model FOLDER",
            )
        raise UsageError(
            f"cannot pull '{text}': not a catalog name, ORG/REPO/FILE.gguf or ORG/REPO",
            hint="qia models pull --list shows the catalog",
        )
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if bars else disable_progress_bars)()
    start = time.perf_counter()
    result = _pull_gguf(spec, say) if spec.kind == "gguf" else _pull_pipeline(spec, say)
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _require_online(spec: Spec) -> None:
    if offline():
        raise ModelError(
            f"{spec.label} is not in the Hugging Face cache, and HF_HUB_OFFLINE is set",
            hint=f"pull it where the Hub can be reached (unset HF_HUB_OFFLINE), or copy the cache "
            f"folder {cache.hub_cache_dir()} from a machine that has it",
        )


def _pull_gguf(spec: Spec, say: Callable[[str], None]) -> PullResult:
    file = spec.file or ""
    hit = cache.cached_file(spec.repo, file)
    if hit is not None:
        return PullResult(
            spec.text, "gguf", spec.repo, file, str(hit), hit.stat().st_size, True, 0.0, name=spec.catalog, files=[file]
        )
    _require_online(spec)
    from huggingface_hub import HfApi, hf_hub_download

    ep = endpoint()
    try:
        info = HfApi(endpoint=ep).model_info(spec.repo, files_metadata=True, timeout=API_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        raise explain(exc, spec) from None
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    if file not in sizes:
        ggufs = sorted(f for f in sizes if f.lower().endswith(".gguf"))
        pick = next((f for f in ggufs if "q4_k_m" in f.lower()), ggufs[0] if ggufs else None)
        hint = (
            (
                f"GGUF files there: {', '.join(ggufs[:6])}{' ...' if len(ggufs) > 6 else ''}; "
                f"e.g. qia models pull {spec.repo}/{pick}"
            )
            if pick
            else f"{spec.repo} holds no GGUF file"
        )
        raise ModelError(f"{spec.repo} has no file {file}", hint=hint)
    say(f"pulling {spec.hub} ({human(sizes[file])}) from {ep}")
    try:
        path = Path(hf_hub_download(spec.repo, file, cache_dir=str(cache.hub_cache_dir()), endpoint=ep))
    except Exception as exc:  # noqa: BLE001
        raise explain(exc, spec) from None
    return PullResult(
        spec.text, "gguf", spec.repo, file, str(path), path.stat().st_size, False, 0.0, name=spec.catalog, files=[file]
    )


def _pull_quant(qspec, text: str, say: Callable[[str], None], bars: bool) -> PullResult:
    """BASE+TRANSFORMER.gguf: the base pipeline without its transformer's weights, and the GGUF file (each
    only when it is on the Hub: a local folder or file is used as it is)."""
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if bars else disable_progress_bars)()
    start = time.perf_counter()
    parts: list[PullResult] = []
    if not Path(qspec.base).expanduser().exists():
        base = parse(qspec.base)
        if base is None or base.kind != "pipeline":
            raise UsageError(f"cannot pull '{qspec.base}': not ORG/REPO or a local pipeline folder")
        parts.append(_pull_pipeline(base, say, skip_weights=("transformer",)))
    if not qspec.gguf_is_local:
        repo, file = qspec.hub_parts
        parts.append(_pull_gguf(Spec(qspec.gguf, "gguf", repo, file), say))
    if not parts:
        raise UsageError(
            f"{text} names a local folder and a local file: there is nothing to pull", hint=f"use it: --model {text}"
        )
    gguf = next((p for p in parts if p.kind == "gguf"), None)
    return PullResult(
        text,
        "quant",
        qspec.base,
        qspec.gguf,
        gguf.path if gguf else str(Path(qspec.gguf).expanduser()),
        sum(p.size for p in parts),
        all(p.cached for p in parts),
        round(time.perf_counter() - start, 3),
        files=[f for p in parts for f in p.files],
        variant=next((p.variant for p in parts if p.kind == "pipeline"), None),
    )


def _pull_pipeline(spec: Spec, say: Callable[[str], None], skip_weights: tuple[str, ...] = ()) -> PullResult:
    snapshot = cache.pipeline_snapshot(spec.repo)
    if snapshot is not None and not cache.pipeline_missing(spec.repo, snapshot, skip_weights):
        return PullResult(
            spec.text,
            "pipeline",
            spec.repo,
            None,
            str(snapshot),
            _snapshot_size(snapshot),
            True,
            0.0,
            variant=pipeline.local_variant(snapshot),
        )
    _require_online(spec)
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.hf_api import RepoFile

    ep, root = endpoint(), str(cache.hub_cache_dir())
    api = HfApi(endpoint=ep)
    try:
        sha = api.model_info(spec.repo, timeout=API_TIMEOUT).sha
        tree = {
            f.path: f.size
            for f in api.list_repo_tree(spec.repo, recursive=True, revision=sha)
            if isinstance(f, RepoFile)
        }
    except Exception as exc:  # noqa: BLE001
        raise explain(exc, spec) from None
    if "model_index.json" not in tree:
        ggufs = sorted(f for f in tree if f.lower().endswith(".gguf"))
        if ggufs:
            pick = next((f for f in ggufs if "q4_k_m" in f.lower()), ggufs[0])
            raise UsageError(
                f"{spec.repo} holds GGUF files, not a diffusers pipeline: name the file to pull",
                hint=f"qia models pull {spec.repo}/{pick}",
            )
        raise ModelError(
            f"{spec.repo} is not a diffusers pipeline (it has no model_index.json)",
            hint="qia pulls diffusers pipelines (ORG/REPO) and planner GGUFs (ORG/REPO/FILE.gguf)",
        )
    try:
        index_file = hf_hub_download(spec.repo, "model_index.json", revision=sha, cache_dir=root, endpoint=ep)
        index = json.loads(Path(index_file).read_text(encoding="utf-8"))
    except ValueError:
        raise ModelError(f"{spec.repo}: model_index.json is not valid JSON") from None
    except Exception as exc:  # noqa: BLE001
        raise explain(exc, spec) from None
    chosen = pipeline.select(list(tree), index if isinstance(index, dict) else {}, skip_weights)
    needed, total = sum(tree[f] or 0 for f in chosen.files), sum(v or 0 for v in tree.values())
    say(
        f"pulling {spec.repo}: {len(chosen.files)} of {len(tree)} files, {human(needed)} of the repository's "
        f"{human(total)} ({chosen.format}{', ' + chosen.variant if chosen.variant else ''})"
    )
    try:
        folder = Path(
            snapshot_download(spec.repo, revision=sha, allow_patterns=chosen.files, cache_dir=root, endpoint=ep)
        )
    except Exception as exc:  # noqa: BLE001
        raise explain(exc, spec) from None
    lacking = pipeline.missing(folder, list(tree), skip_weights)
    if lacking:
        raise QiaError(
            f"the pull of {spec.repo} is incomplete: {', '.join(lacking[:3])} missing",
            hint="run the same command again to fetch the rest",
        )
    refs = cache.repo_folder(spec.repo) / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    # what --model ORG/REPO loads offline; huggingface_hub types sha as optional, model_info always sets it
    (refs / "main").write_text(sha, encoding="utf-8")  # type: ignore[arg-type]
    return PullResult(
        spec.text,
        "pipeline",
        spec.repo,
        None,
        str(folder),
        needed,
        False,
        0.0,
        repo_size=total,
        files=chosen.files,
        variant=chosen.variant,
    )


def _snapshot_size(folder: Path) -> int:
    blobs = {os.path.realpath(p) for p in folder.rglob("*") if p.is_file()}
    return sum(os.path.getsize(b) for b in blobs)


# -- one line for every way a pull fails -----------------------------------------------------------------
def _chain(exc: BaseException) -> list[BaseException]:
    seen: set[int] = set()
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop(0)
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        out.append(err)
        todo += [err.__cause__, err.__context__]
    return out


def _network(err: BaseException) -> bool:
    names = {c.__name__ for c in type(err).__mro__}
    return bool(names & {"TransportError", "TimeoutException", "ConnectionError"}) and "HTTPError" not in names


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def explain(exc: BaseException, spec: Spec) -> QiaError:
    """The one-line error (and what to do) for a failed Hub call."""
    from huggingface_hub import errors as hf

    ep, what = endpoint(), spec.hub
    token = "set HF_TOKEN to a token that can read it (https://huggingface.co/settings/tokens)"
    for err in _chain(exc):
        if isinstance(err, hf.GatedRepoError):
            return ModelError(f"{spec.repo} is gated: accept its terms at {ep}/{spec.repo} first", hint=token)
        if isinstance(err, hf.RepositoryNotFoundError):
            return ModelError(
                f"no repository {spec.repo} at {ep} (or it is private)",
                hint=f"check the name; for a private repository {token}",
            )
        if isinstance(err, hf.RevisionNotFoundError):
            return ModelError(f"{spec.repo} has no main revision at {ep}")
        if isinstance(err, hf.RemoteEntryNotFoundError):
            return ModelError(f"{what} not found at {ep} (404)", hint=f"check the file name at {ep}/{spec.repo}")
        if isinstance(err, hf.HfHubHTTPError) and getattr(err, "response", None) is not None:
            status = err.response.status_code
            if status in (401, 403):
                return ModelError(f"the Hub refused access to {what} ({status})", hint=token)
            if status == 404:
                return ModelError(f"{what} not found at {ep} (404)", hint=f"check the name at {ep}/{spec.repo}")
            return QiaError(f"the Hub at {ep} failed on {what} (HTTP {status})", hint="try again later")
        if isinstance(err, hf.OfflineModeIsEnabled):
            return ModelError(
                f"{spec.label} is not in the Hugging Face cache, and HF_HUB_OFFLINE is set",
                hint="unset HF_HUB_OFFLINE where the Hub can be reached",
            )
        if _network(err):
            return QiaError(
                f"cannot reach the Hugging Face Hub at {ep}: {_first_line(err)}",
                hint="check the connection (HF_ENDPOINT for a mirror), or pull on a connected machine "
                "and copy its cache folder (HF_HOME)",
            )
    return QiaError(
        f"pulling {what} failed: {_first_line(exc)}", hint="run the same command again (files already fetched are kept)"
    )
