"""Saving images: safe names, PNG text metadata, a JSON sidecar, never a partial or clobbered file."""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from qia_cli.errors import UsageError
from qia_cli.fsutil import atomic_write
from qia_cli.paths import default_outdir, home_relative

SLUG_MAX = 40
MAX_SUFFIX = 10000


def slugify(text: str, max_len: int = SLUG_MAX) -> str:
    """Lowercase ASCII [a-z0-9-] only; no separators, no dots, so it can't leave a folder."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        slug = cut.rsplit("-", 1)[0] if "-" in cut[max_len // 2 :] else cut
        slug = slug.strip("-")
    return slug or "image"


def output_name(request: str, seed: int, when: datetime | None = None) -> str:
    """`20261128-141502_red-bicycle_s12345.png`."""
    when = when or datetime.now()
    return f"{when:%Y%m%d-%H%M%S}_{slugify(request)}_s{int(seed)}.png"


def parameters_line(spec: Any, seed: int) -> str:
    """The `parameters` text other tools (A1111-style readers) understand."""
    lines = [spec.prompt]
    if spec.negative_prompt:
        lines.append(f"Negative prompt: {spec.negative_prompt}")
    vae = getattr(spec, "vae", "full")
    family = getattr(spec, "family", "unknown")
    lines.append(
        f"Steps: {spec.steps}, CFG scale: {spec.guidance}, Seed: {seed}, "
        f"Size: {spec.width}x{spec.height}, Model: {spec.model}"
        + (f", Family: {family}" if family != "unknown" else "")
        + (f", VAE: {vae}" if vae != "full" else "")
    )
    return "\n".join(lines)


def build_metadata(request: str, spec: Any, seed: int, plan_json: str | None = None) -> dict[str, str]:
    """PNG text chunks for one image of a RenderSpec (`plan_json`: the Plan's JSON, if any)."""
    meta = {
        "qia:request": request,
        "qia:prompt": spec.prompt,
        "qia:negative_prompt": spec.negative_prompt or "",
        "qia:seed": str(seed),
        "qia:model": spec.model,
        "qia:steps": str(spec.steps),
        "qia:guidance": str(spec.guidance),
        "qia:size": f"{spec.width}x{spec.height}",
        "qia:dtype": str(getattr(spec, "dtype", "auto")),
        "qia:vae": str(getattr(spec, "vae", "full")),
        "qia:family": str(getattr(spec, "family", "unknown")),
        "parameters": parameters_line(spec, seed),
    }
    true_cfg = getattr(spec, "true_cfg_scale", None)
    if true_cfg is not None:
        meta["qia:true_cfg_scale"] = str(true_cfg)
    if plan_json is not None:
        meta["qia:plan"] = plan_json
    return meta


def _unwritable(folder: Path, exc: OSError) -> UsageError:
    reason = exc.strerror or str(exc)
    return UsageError(
        f"output folder {folder} is not writable: {reason}", hint="pass --outdir with a folder you can write to"
    )


def check_writable(outdir: Path) -> None:
    """Fail fast, before any model loads, if `outdir` can't hold images; leaves nothing behind."""
    folder = Path(outdir).expanduser()
    created: list[Path] = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".qia-probe-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    finally:
        for path in created:  # deepest first; only folders this check made
            try:
                path.rmdir()
            except OSError:
                break


def check_output_file(output: Path, *, overwrite: bool = False) -> Path:
    """Validate an `-o FILE` before rendering; returns the path that will be written."""
    path = Path(output).expanduser()
    if not str(output).strip() or path.name in {"", ".", ".."} or str(output).endswith(("/", os.sep)) or path.is_dir():
        raise UsageError(
            f"output file '{output}' is a folder, not a file name",
            hint="-o names one PNG file; use --outdir for a folder",
        )
    if path.suffix == "":
        path = path.with_suffix(".png")
    if path.suffix.lower() != ".png":
        raise UsageError(f"output file {path} must end in .png (qia writes PNG with metadata)")
    if path.is_dir():
        raise UsageError(f"output file {path} is a folder")
    if path.exists() and not overwrite:
        raise UsageError(f"output file {path} already exists", hint="choose another name or pass --overwrite")
    check_writable(path.parent)
    return path


def _claim(path: Path) -> bool:
    """Create `path` exclusively; False when it exists already."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _claim_pair(folder: Path, stem: str) -> tuple[Path, Path]:
    for i in range(MAX_SUFFIX):
        name = stem if i == 0 else f"{stem}-{i}"
        png, side = folder / f"{name}.png", folder / f"{name}.json"
        if side.exists() or not _claim(png):
            continue
        if not _claim(side):
            png.unlink(missing_ok=True)
            continue
        return png, side
    raise UsageError(f"too many files named {stem}-N.png in {folder}")


def _pnginfo(metadata: dict[str, str]):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in metadata.items():
        value = "" if value is None else home_relative(str(value))  # no user name in a shared image
        info.add_text(str(key), value, zip=len(value) > 1024)
    return info


def save_image(
    image,
    *,
    outdir: Path | None,
    output: Path | None,
    metadata: dict[str, str],
    sidecar: dict,
    name: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write `image` as PNG (+ `NAME.json` sidecar); returns (png, sidecar).

    `output` (an -o FILE) is used as given; else `name` (default: from metadata) goes in `outdir`
    with -1, -2, ... added on a collision. Ctrl-C or an error leaves neither file behind.
    """
    if output is not None:
        png = check_output_file(output, overwrite=overwrite)
        side = png.with_suffix(".json")
        png.parent.mkdir(parents=True, exist_ok=True)
        claimed: list[Path] = []
        if not overwrite:
            for path in (png, side):
                if not _claim(path):
                    for done in claimed:
                        done.unlink(missing_ok=True)
                    raise UsageError(
                        f"output file {path} already exists", hint="choose another name or pass --overwrite"
                    )
                claimed.append(path)
    else:
        folder = Path(outdir).expanduser() if outdir is not None else default_outdir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(folder, exc) from None
        if name is None:
            seed = int(metadata.get("qia:seed", "0") or 0)
            name = output_name(metadata.get("qia:request", ""), seed)
        stem = slugify_filename(name)
        try:
            png, side = _claim_pair(folder, stem)
        except OSError as exc:
            raise _unwritable(folder, exc) from None
        claimed = [png, side]
    written: list[Path] = []
    try:
        info = _pnginfo(metadata)
        atomic_write(png, lambda fh: image.save(fh, format="PNG", pnginfo=info))
        written.append(png)
        body = dict(sidecar)
        body.setdefault("image", png.name)
        data = (home_relative(json.dumps(body, indent=2, ensure_ascii=False, default=str)) + "\n").encode("utf-8")
        atomic_write(side, lambda fh: fh.write(data))
        written.append(side)
    except BaseException as exc:
        for path in {*claimed, *written}:
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(png.parent, exc) from None
        raise
    return png, side


def save_bytes(folder: Path, name: str, png: bytes, sidecar: dict) -> tuple[Path, Path]:
    """Write an image rendered elsewhere (a Ray worker) into `folder`: its PNG bytes and its sidecar, with
    the names and no-overwrite rules of `save_image`; the sidecar's "image" names the file it got."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        png_path, side = _claim_pair(folder, slugify_filename(name))
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    try:
        atomic_write(png_path, lambda fh: fh.write(png))
        body = {**sidecar, "image": png_path.name}
        data = (home_relative(json.dumps(body, indent=2, ensure_ascii=False, default=str)) + "\n").encode("utf-8")
        atomic_write(side, lambda fh: fh.write(data))
    except BaseException as exc:
        png_path.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(folder, exc) from None
        raise
    return png_path, side


def slugify_filename(name: str) -> str:
    """A file stem that is safe in a folder: keeps [A-Za-z0-9._-], drops '.png', no leading dots."""
    stem = name[:-4] if name.lower().endswith(".png") else name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).lstrip(".-")
    stem = re.sub(r"\.{2,}", ".", stem)
    return stem[:120] or "image"


def read_metadata(png_path: Path) -> dict[str, str]:
    """The text chunks of a PNG (qia:* keys and any others)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(png_path) as img:
            img.load()
            text = dict(getattr(img, "text", {}) or {})
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"cannot read image metadata from {png_path}: {exc}") from None
    return {str(k): str(v) for k, v in text.items()}
