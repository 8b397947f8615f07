"""`qia info`: versions, devices, paths and active models, for bug reports.

Every probe is wrapped: a missing or broken torch (or diffusers, or llama.cpp) is reported, never fatal.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import warnings
from typing import Any

import typer

from qia_cli import __version__
from qia_cli.cli.root import app
from qia_cli.textsafe import json_printable, printable


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _installed(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a broken install must not break the report
        return None


def _torch() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - missing or broken: say so
        return {"ok": False, "installed": _installed("torch"), "error": _error(exc)}
    data: dict[str, Any] = {"ok": True, "version": getattr(torch, "__version__", None), "error": None}
    try:
        data["cuda"] = bool(torch.cuda.is_available())
        data["cuda_version"] = getattr(torch.version, "cuda", None)
        if data["cuda"]:
            data["gpu"] = torch.cuda.get_device_name(0)
            data["gpu_count"] = torch.cuda.device_count()
            free, total = torch.cuda.mem_get_info(0)
            data["gpu_memory"], data["gpu_memory_free"] = int(total), int(free)  # bytes, device 0
    except Exception as exc:  # noqa: BLE001
        data["cuda"], data["cuda_error"] = False, _error(exc)
    try:
        mps = getattr(torch.backends, "mps", None)
        data["mps"] = bool(mps and mps.is_available())
    except Exception as exc:  # noqa: BLE001
        data["mps"], data["mps_error"] = False, _error(exc)
    return data


def _module(name: str, dist: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = __import__(name)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "installed": _installed(dist), "error": _error(exc)}
    return {"ok": True, "version": getattr(module, "__version__", None) or _installed(dist), "error": None}


def _llama_cpp() -> dict[str, Any]:
    data = _module("llama_cpp", "llama-cpp-python")
    if not data["ok"]:
        return data
    import llama_cpp

    for key, func in (("gpu_offload", "llama_supports_gpu_offload"), ("mmap", "llama_supports_mmap")):
        try:
            data[key] = bool(getattr(llama_cpp, func)()) if hasattr(llama_cpp, func) else None
        except Exception as exc:  # noqa: BLE001
            data[key], data[f"{key}_error"] = None, _error(exc)
    try:
        raw = llama_cpp.llama_print_system_info()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        data["system_info"] = " ".join(text.split()).strip(" |")
    except Exception as exc:  # noqa: BLE001
        data["system_info_error"] = _error(exc)
    return data


def _cpu() -> dict[str, Any]:
    """AMX (llama.cpp's repacking crashes there) and what the planner does about it; no llama_cpp import."""
    from qia_cli import cpu
    from qia_cli.config import load_settings
    from qia_cli.errors import QiaError
    from qia_cli.imaging.device import BF16_FLAGS
    from qia_cli.llm.llama import repack_enabled

    try:
        s = load_settings().settings
        repack, threads = s.llm_repack, s.llm_threads
    except QiaError:
        repack, threads = "auto", None
    return {
        "amx": cpu.has_amx(),
        "bf16_renders": bool(BF16_FLAGS & cpu.flags()),  # --dtype auto renders in bf16 on the CPU
        "physical_cores": cpu.physical_cores(),
        "llm_repack": {"setting": repack, "effective": "on" if repack_enabled(repack) else "off"},
        "llm_threads": threads or cpu.default_llm_threads(),
    }


def _active() -> dict[str, Any]:
    from qia_cli.config import load_settings
    from qia_cli.errors import QiaError
    from qia_cli.models.cache import hub_cache_dir
    from qia_cli.models.describe import describe_image, describe_llm

    try:
        loaded = load_settings()
    except QiaError as exc:
        return {"config_error": exc.message}
    s = loaded.settings
    llm = describe_llm(s.llm)
    image = describe_image(s.image_model)
    return {
        "config_error": None,
        "llm": {
            "value": s.llm,
            "source": loaded.sources.get("llm", "default"),
            "path": llm.get("path"),
            "available": llm.get("available"),
            "error": llm.get("error"),
            "profile": _in_use(llm.get("profile"), s),
        },
        "image_model": {
            "value": s.image_model,
            "source": loaded.sources.get("image_model", "default"),
            "available": image.get("available"),
            "error": image.get("error"),
            "family": image.get("family"),
        },
        "device": s.device,
        "search": s.search,
        "ray": s.ray,
        "hub_cache": str(hub_cache_dir()),
    }


def _ray(address: str | None) -> dict[str, Any]:
    """Ray's version (from the package metadata: no import), and with an address the cluster's resources."""
    data: dict[str, Any] = {"version": _installed("ray"), "address": address}
    if address in (None, "off", "local") or data["version"] is None:
        return data
    try:
        from qia_cli.agent.batch_ray import Cluster

        with Cluster(address) as cluster:
            data["resources"] = cluster.resources()
    except Exception as exc:  # noqa: BLE001 - a cluster that is down is reported, never fatal
        data["error"] = getattr(exc, "message", None) or _error(exc)
    return data


def _in_use(profile: dict[str, Any] | None, settings) -> dict[str, Any] | None:
    """The GGUF's profile plus what qia does with it under these settings: n_ctx and llm_gaps."""
    if not profile:
        return None
    gaps = settings.llm_gaps
    return {
        **profile,
        "n_ctx": settings.llm_ctx or profile.get("auto_ctx"),
        "llm_gaps_in_use": gaps == "on" or (gaps == "auto" and settings.llm != "bundled" and profile.get("llm_gaps")),
    }


def collect(ray: str | None = None) -> dict[str, Any]:
    from qia_cli import paths

    return {
        "qia": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu(),
        "torch": _torch(),
        "diffusers": _module("diffusers", "diffusers"),
        "transformers": _module("transformers", "transformers"),
        "llama_cpp": _llama_cpp(),
        "paths": paths.all_paths(),
        "settings": (active := _active()),
        "ray": _ray(ray or active.get("ray")),
    }


def _package_line(data: dict[str, Any]) -> str:
    if not data.get("ok"):
        installed = f" (installed: {data['installed']})" if data.get("installed") else ""
        return f"not usable{installed}: {data['error']}"
    return str(data.get("version"))


def _print_text(data: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("qia", data["qia"]),
        ("python", f"{data['python']} ({data['executable']})"),
        ("platform", f"{data['platform']} ({data['machine']}, {data['cpu_count']} CPUs)"),
    ]
    c = data["cpu"]
    rows.append(
        (
            "cpu",
            f"{c['physical_cores']} physical cores; Intel AMX: {'yes' if c['amx'] else 'no'}; "
            f"renders with --dtype auto in {'bf16' if c.get('bf16_renders') else 'fp32'}; "
            f"llm threads {c['llm_threads']}; llm repack {c['llm_repack']['effective']} "
            f"(setting {c['llm_repack']['setting']})",
        )
    )
    rows.append(("torch", _package_line(data["torch"])))
    torch = data["torch"]
    if torch.get("ok"):
        cuda = f"yes, {torch.get('gpu')} (CUDA {torch.get('cuda_version')})" if torch.get("cuda") else "no"
        if torch.get("gpu_memory"):
            cuda += f", {torch['gpu_memory'] / 1e9:.1f} GB memory ({torch['gpu_memory_free'] / 1e9:.1f} GB free)"
        rows += [("cuda", cuda), ("mps", "yes" if torch.get("mps") else "no")]
    rows += [("diffusers", _package_line(data["diffusers"])), ("transformers", _package_line(data["transformers"]))]
    llama = data["llama_cpp"]
    line = _package_line(llama)
    if llama.get("ok"):
        line += f" (GPU offload: {'yes' if llama.get('gpu_offload') else 'no'})"
    rows.append(("llama-cpp-python", line))
    if llama.get("system_info"):
        rows.append(("llama.cpp build", llama["system_info"]))
    rows.append(("ray", _ray_line(data["ray"])))
    rows += [(key.replace("_", " "), value) for key, value in data["paths"].items()]
    active = data["settings"]
    if active.get("config_error"):
        rows.append(("config", f"error: {active['config_error']}"))
    else:
        for key in ("llm", "image_model"):
            entry = active[key]
            state = "available" if entry["available"] else ("not checked" if entry["available"] is None else "missing")
            family = f"; family {entry['family']}" if entry.get("family") else ""
            rows.append((key.replace("_", " "), f"{entry['value']} ({entry['source']}; {state}{family})"))
            if key == "llm" and entry.get("profile"):
                p = entry["profile"]
                gaps = "on" if p["llm_gaps_in_use"] else "off"
                rows.append(("llm profile", f"{p['summary']}; n_ctx {p['n_ctx']}, llm gaps {gaps}"))
        rows += [("device", active["device"]), ("search", active["search"]), ("hf hub cache", active["hub_cache"])]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:  # GGUF metadata, paths, settings: escapes in them show, as in web text
        typer.echo(printable(f"{key + ':':<{width + 2}}{value}"))


def _ray_line(ray: dict[str, Any]) -> str:
    if ray["version"] is None:
        return 'not installed (pip install "qia-cli[ray]" for qia batch --ray)'
    line = str(ray["version"])
    if ray.get("resources"):
        r = ray["resources"]
        line += f" (cluster {ray['address']}: {r['nodes']} node(s), {r['cpus']:g} CPUs, {r['gpus']:g} GPUs)"
    elif ray.get("error"):
        line += f" (cluster {ray['address']}: {ray['error']})"
    elif ray.get("address") == "local":
        line += " (local: a Ray instance on this machine for each batch)"
    return line


@app.command("info")
def info_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ray: str | None = typer.Option(
        None,
        "--ray",
        help="Also show this Ray cluster's resources: auto or ray://HOST:PORT (default: the ray setting).",
        show_default=False,
    ),
) -> None:
    """Versions, devices, paths and active models: paste this into bug reports.

    Works without torch or with a broken one, and says what is wrong.
    """
    data = collect(ray)
    if as_json:
        typer.echo(json_printable(json.dumps(data, ensure_ascii=False, indent=2, default=str)))
        return
    _print_text(data)
