"""Hardening, round 3 (issue 23): names that lead out of the model cache, private image metadata, terminal
escapes from model files and LLM servers, memory that gives orders, bounded LLM servers, config checks
and the help text."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from qia_cli.cli.app import main
from qia_cli.errors import UsageError
from tests.imaging_fixtures import tiny_pipeline_dir  # noqa: F401


@pytest.fixture
def qia(monkeypatch, capsys):
    """`qia ARGS` in-process through main(): (exit code, stdout, stderr)."""

    def run(*args: str, stdin: bytes = b""):
        monkeypatch.setattr(sys, "argv", ["qia", *args])
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        with pytest.raises(SystemExit) as exc:
            main()
        captured = capsys.readouterr()
        assert "error: unexpected" not in captured.err and "Traceback" not in captured.err, captured.err
        return exc.value.code or 0, captured.out, captured.err

    return run


# -- 1. names that lead out of the cache ------------------------------------------------------------------
@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A cache four folders deep holding an empty repository folder `models--a--b`, and a victim file
    `x.gguf` four levels above that repository's snapshot."""
    cache = tmp_path / "w" / "x" / "y" / "hub"
    (cache / "models--a--b" / "snapshots" / "abc").mkdir(parents=True)
    (cache.parent / "x.gguf").write_bytes(b"precious")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


LEADING_OUT = [
    "a/b/../../../../x.gguf",  # the reproduction
    "a/b/%2e%2e/%2e%2e/%2e%2e/%2e%2e/x.gguf",  # %-encoded
    "a/b/..%2f..%2f..%2f..%2fx.gguf",  # an encoded slash
    "a/b//x.gguf",
    "a//b",
    "a/b/./x.gguf",
    "a/..",
    "a/b/sub\x1b]0;t\x07/x.gguf",
]


@pytest.mark.parametrize("name", LEADING_OUT + ["/abs/x.gguf", "a\\b\\x.gguf", "a/b\\..\\..\\x.gguf", "../x.gguf"])
def test_models_rm_refuses_a_name_that_leads_out_of_the_cache(qia, hub_cache, name):
    rc, _, err = qia("models", "rm", name)
    assert rc == 2, err
    assert (hub_cache.parent / "x.gguf").read_bytes() == b"precious"
    assert (hub_cache / "models--a--b" / "snapshots").is_dir()  # the repository folder stays too
    assert "freed" not in err and "\x1b" not in err


@pytest.mark.parametrize("name", LEADING_OUT)
@pytest.mark.parametrize("command", [("models", "info"), ("models", "pull"), ("plan", "a cat", "--llm")])
def test_every_command_that_takes_a_hub_name_refuses_the_same_names(qia, hub_cache, command, name):
    rc, _, err = qia(*command, name)
    assert rc == 2 and "is not a model name" in err, err


def test_cache_removal_checks_names_itself(hub_cache):
    from qia_cli.models import cache

    for repo, file in [("a/b", "../../../../x.gguf"), ("a/b", "/abs/x.gguf"), ("a/..", "x.gguf"), ("a/b", "")]:
        with pytest.raises(UsageError):
            cache.remove_file(repo, file)
    with pytest.raises(UsageError):
        cache.remove_repo("a/../..")
    assert (hub_cache.parent / "x.gguf").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_a_snapshot_link_that_points_outside_loses_only_the_link(hub_cache):
    from qia_cli.models import cache

    victim = hub_cache.parent / "x.gguf"
    snapshot = hub_cache / "models--a--b" / "snapshots" / "abc"
    (snapshot / "m.gguf").symlink_to(victim)
    (snapshot / "sub").symlink_to(hub_cache.parent, target_is_directory=True)
    with pytest.raises(UsageError):
        cache.remove_file("a/b", "sub/x.gguf")  # a linked folder leading out
    assert victim.exists()
    (snapshot / "sub").unlink()
    assert cache.remove_file("a/b", "m.gguf") == 0
    assert victim.read_bytes() == b"precious" and not (snapshot / "m.gguf").exists()


def test_models_rm_still_removes_a_pulled_file_and_its_blob(qia, hub_cache):
    folder = hub_cache / "models--a--b"
    (folder / "blobs").mkdir()
    (folder / "blobs" / "f00d").write_bytes(b"12345")
    os.symlink("../../blobs/f00d", folder / "snapshots" / "abc" / "m.gguf")
    rc, _, err = qia("models", "rm", "a/b/m.gguf")
    assert rc == 0 and "5 B freed" in err, err
    assert not folder.exists() and (hub_cache.parent / "x.gguf").exists()


# -- 2. images carry no home folder ----------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_images_write_paths_under_home_as_tilde(qia, tiny_pipeline_dir, tmp_path, monkeypatch):
    import shutil

    from qia_cli.imaging.output import read_metadata
    from qia_cli.llm.bundled import bundled_path

    home = tmp_path / "home" / "alice"
    shutil.copytree(tiny_pipeline_dir, home / "models" / "sd")
    planner = bundled_path()
    llm = ["--llm", "fake"]
    if planner is not None:
        (home / "planner.gguf").symlink_to(planner)
        llm = ["--llm", str(home / "planner.gguf")]
    monkeypatch.setenv("HOME", str(home))
    out = tmp_path / "out"
    rc, _, err = qia(
        "generate", "a red bicycle", "--model", str(home / "models" / "sd"), *llm, "--steps", "1", "--outdir", str(out)
    )
    assert rc == 0, err
    (png,) = out.glob("*.png")
    meta = read_metadata(png)
    sidecar = png.with_suffix(".json").read_text(encoding="utf-8")
    for text in [*meta.values(), sidecar]:
        assert str(home) not in text and "alice" not in text
    assert meta["qia:model"] == "~/models/sd" and "Model: ~/models/sd" in meta["parameters"]
    assert json.loads(sidecar)["render"]["model"] == "~/models/sd"
    if planner is not None:
        assert json.loads(meta["qia:plan"])["model"]["path"] == "~/planner.gguf"


def test_home_relative_keeps_hub_ids_and_other_folders(monkeypatch):
    from qia_cli.paths import home_relative

    monkeypatch.setenv("HOME", "/home/bob")
    text = '"/home/bob/m" stabilityai/sd-turbo /home/bobby/x /srv/home/bob/y /home/bob'
    assert home_relative(text) == '"~/m" stabilityai/sd-turbo /home/bobby/x /srv/home/bob/y ~'
    monkeypatch.setenv("HOME", "/")
    assert home_relative("/etc/x") == "/etc/x"
