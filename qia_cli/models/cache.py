"""The Hugging Face cache as qia sees it: pulled GGUFs, diffusers pipelines, and removal.

Read through huggingface_hub (`scan_cache_dir`, `try_to_load_from_cache`, `get_cached_repo_tree`) and
never over the network. The folder is HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub,
read from the environment on every call (huggingface_hub reads it once, at import).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from qia_cli.errors import UsageError
from qia_cli.models import catalog, pipeline
from qia_cli.textsafe import printable


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps models: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def repo_folder(repo: str) -> Path:
    return hub_cache_dir() / ("models--" + repo.replace("/", "--"))


def cached_file(repo: str, file: str) -> Path | None:
    """`file` of `repo` as refs/main has it, else from the newest snapshot that holds it; None if not cached.

    A download in progress or cut off is never returned: huggingface_hub links a file into a snapshot
    only once its blob is complete.
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo, file, cache_dir=hub_cache_dir())
    except ValueError:  # a file name huggingface_hub refuses (.., absolute)
        return None
    if isinstance(hit, str):
        return Path(hit)
    snapshots = repo_folder(repo) / "snapshots"
    found = [s / file for s in snapshots.iterdir() if (s / file).is_file()] if snapshots.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def repo_tree(repo: str, revision: str) -> list[str] | None:
    """The repository's file list at `revision` as the last download cached it, or None."""
    from huggingface_hub import get_cached_repo_tree

    try:
        return [f.path for f in get_cached_repo_tree(repo, revision=revision, cache_dir=hub_cache_dir())]
    except Exception:  # noqa: BLE001 - no listing cached (or an older cache layout): the caller falls back
        return None


@dataclass
class PulledGGUF:
    spec: str  # ORG/REPO/FILE.gguf
    repo: str
    file: str
    path: str
    size: int
    revision: str
    name: str | None = None  # the catalog name, when it is a catalog model


@dataclass
class CachedPipeline:
    id: str
    path: str
    size: int
    snapshot: str
    revisions: list[str] = field(default_factory=list)
    pipeline: str | None = None
    components: list[str] = field(default_factory=list)
    complete: bool = True
    missing: list[str] = field(default_factory=list)
    variant: str | None = None


def pipeline_missing(repo: str, snapshot: Path, skip_weights: tuple[str, ...] = ()) -> list[str]:
    """What loading the cached pipeline lacks (empty when it loads offline); `skip_weights`: components
    whose weights come from elsewhere (a GGUF transformer)."""
    return pipeline.missing(snapshot, repo_tree(repo, snapshot.name), skip_weights)


def _repos():
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    root = hub_cache_dir()
    if not root.is_dir():
        return []
    try:
        info = scan_cache_dir(root)
    except CacheNotFound:
        return []
    return sorted((r for r in info.repos if r.repo_type == "model"), key=lambda r: r.repo_id.lower())


def _ordered(repo) -> list:
    """Revisions, the one refs/main names first, then newest first."""
    return sorted(repo.revisions, key=lambda r: ("main" not in r.refs, -r.last_modified))


def scan() -> tuple[list[PulledGGUF], list[CachedPipeline]]:
    """Every GGUF and every diffusers pipeline in the cache."""
    ggufs: list[PulledGGUF] = []
    pipes: list[CachedPipeline] = []
    for repo in _repos():
        revisions = _ordered(repo)
        seen: set[str] = set()
        for rev in revisions:
            for f in sorted(rev.files, key=lambda f: str(f.file_path)):
                rel = f.file_path.relative_to(rev.snapshot_path).as_posix()
                if rel.lower().endswith(".gguf") and rel not in seen:
                    seen.add(rel)
                    spec = f"{repo.repo_id}/{rel}"
                    entry = catalog.find(spec)
                    ggufs.append(
                        PulledGGUF(
                            spec,
                            repo.repo_id,
                            rel,
                            str(f.file_path),
                            f.size_on_disk,
                            rev.commit_hash,
                            entry.name if entry else None,
                        )
                    )
        with_index = [r for r in revisions if (r.snapshot_path / "model_index.json").is_file()]
        if with_index:
            best = with_index[0]
            index = pipeline.read_index(best.snapshot_path)
            lacking = pipeline_missing(repo.repo_id, best.snapshot_path)
            pipes.append(
                CachedPipeline(
                    id=repo.repo_id,
                    path=str(repo.repo_path),
                    size=repo.size_on_disk,
                    snapshot=str(best.snapshot_path),
                    revisions=sorted(r.commit_hash for r in with_index),
                    pipeline=index.get("_class_name"),
                    components=sorted(k for k in index if not k.startswith("_")),
                    complete=not lacking,
                    missing=lacking,
                    variant=pipeline.local_variant(best.snapshot_path),
                )
            )
    return ggufs, pipes


def pipeline_snapshot(repo: str) -> Path | None:
    """The cached snapshot of pipeline `repo` (refs/main first) holding model_index.json, or None."""
    folder = repo_folder(repo)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    main = ""
    try:
        main = (folder / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        pass
    found = [s for s in snapshots.iterdir() if (s / "model_index.json").is_file()]
    return next((s for s in found if s.name == main), max(found, key=lambda s: s.stat().st_mtime, default=None))


# -- removal -------------------------------------------------------------------------------------------
def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _blob(path: Path) -> Path:
    return _real(path) if path.is_symlink() else path


def _inside_cache(repo: str, file: str) -> Path:
    """The repository folder, after checking that `repo` and `file` name nothing outside it: a UsageError
    for '..', '.', empty parts, absolute paths and backslashes, whatever the caller checked before."""
    from qia_cli.models.spec import is_repo_id, name_problem

    problem = None if is_repo_id(repo) else "not an ORG/REPO id"
    problem = problem or (name_problem(file) if file else "no file named")
    if problem:
        raise UsageError(f"'{printable(repo)}/{printable(file)}' is not a file in the cache: {problem}")
    folder = repo_folder(repo)
    if not _real(folder).is_relative_to(_real(hub_cache_dir())):
        raise UsageError(f"{printable(repo)}: its cache folder is outside {hub_cache_dir()}")
    return folder


def remove_file(repo: str, file: str) -> int | None:
    """Delete `file` from every snapshot of `repo`, with the blobs no other snapshot file uses; the whole
    repository folder goes when nothing else is left in it. Returns the bytes freed, None when not cached.

    Nothing outside the repository folder is touched: a name that would lead out is a UsageError, and a
    snapshot link whose target lies outside the folder's blobs loses only the link.
    """
    folder = _inside_cache(repo, file)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    targets = []
    for snap in snapshots.iterdir():
        target = snap / file
        if not (target.is_file() or target.is_symlink()):
            continue
        if not _real(target.parent).is_relative_to(_real(snapshots)):  # a linked folder (or snapshot) leading out
            raise UsageError(f"{printable(repo)}/{printable(file)} leads outside the cache; nothing was removed")
        targets.append(target)
    if not targets:
        return None
    doomed = {_blob(t) for t in targets}
    keep = {_blob(p) for p in snapshots.rglob("*") if (p.is_file() or p.is_symlink()) and p not in targets}
    freed = 0
    inside = (_real(folder / "blobs"), _real(snapshots))
    for blob in doomed - keep:
        if not any(_real(blob).is_relative_to(root) for root in inside):
            continue  # a link to something outside the repository folder: only the link goes
        try:
            freed += blob.stat().st_size
            blob.unlink()
        except OSError:
            pass
    for target in targets:
        target.unlink(missing_ok=True)
    if not any(p.is_file() for p in snapshots.rglob("*")):
        freed += _tree_size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(hub_cache_dir() / ".locks" / folder.name, ignore_errors=True)
    return freed


def remove_repo(repo: str) -> int | None:
    """Delete every cached revision of `repo` through huggingface_hub; the bytes freed, None when not cached."""
    from qia_cli.models.spec import is_repo_id

    if not is_repo_id(repo):
        raise UsageError(f"'{printable(repo)}' is not an ORG/REPO id; nothing was removed")
    for cached in _repos():
        if cached.repo_id == repo:
            from huggingface_hub import scan_cache_dir

            strategy = scan_cache_dir(hub_cache_dir()).delete_revisions(*(r.commit_hash for r in cached.revisions))
            freed = strategy.expected_freed_size
            strategy.execute()
            if cached.repo_path.exists():  # a repository without revisions (only refs, or a cut-off pull)
                shutil.rmtree(cached.repo_path, ignore_errors=True)
            shutil.rmtree(hub_cache_dir() / ".locks" / cached.repo_path.name, ignore_errors=True)
            return freed
    folder = repo_folder(repo)  # a folder scan_cache_dir skips as corrupted: no snapshots (a pull cut off early)
    if not folder.is_dir():
        return None
    freed = _tree_size(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return freed


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
