"""One parser reads every `--llm` value, and callers ask the backend what it can do instead of testing its name:
a pulled GGUF whose repository starts with "openai" is a local model that holds VRAM like any other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.config import Settings
from qia_cli.llm import registry
from qia_cli.llm.base import FAKE, LLAMA, NONE, SERVER
from qia_cli.llm.fake import FakeLLM
from qia_cli.llm.openai import OpenAILLM

ROOT = Path(__file__).resolve().parents[1] / "qia_cli"
OPENAI_NAMED_GGUF = "openai-community/gpt2-gguf/gpt2.Q4_K_M.gguf"  # a pulled model, not a server


@pytest.mark.parametrize(
    "text, kind",
    [
        (None, "bundled"),
        ("", "bundled"),
        (" bundled ", "bundled"),
        ("fake", "fake"),
        ("openai:http://127.0.0.1:8080/v1#qwen", "server"),
        ("openai", "server"),  # the URL from llm_url
        (OPENAI_NAMED_GGUF, "pulled"),
        ("openai/gpt-oss-20b-GGUF/gpt-oss-20b-Q4_K_M.gguf", "pulled"),
        ("qwen2.5-1.5b", "pulled"),  # a catalog name
        ("org/../x.gguf", "pulled"),  # not a name: resolving it says why
        ("./planner.gguf", "gguf"),
        ("/models/planner.gguf", "gguf"),
        ("planner.gguf", "gguf"),
    ],
)
def test_every_llm_value_has_one_kind(text, kind):
    assert registry.parse(text).kind == kind


def test_a_local_file_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "repo").mkdir(parents=True)
    (tmp_path / "org" / "repo" / "x.gguf").write_bytes(b"GGUF")
    assert registry.parse("org/repo/x.gguf").kind == "gguf"
    assert registry.gguf("org/repo/y.gguf").kind == "pulled"
    assert registry.gguf("fake").kind == "gguf"  # the knowledge model is always a GGUF: here a missing file


def test_capabilities_by_kind_and_by_built_model():
    assert registry.parse("bundled").capabilities.llm_gaps is False  # the 135M proposes no gap worth a call
    assert registry.parse("x.gguf").capabilities == LLAMA and LLAMA.llm_gaps is None  # as its profile says
    assert registry.parse("openai:http://h:1/v1").capabilities == SERVER
    assert SERVER.parallel and not SERVER.gpu_memory and LLAMA.gpu_memory and not LLAMA.parallel
    assert registry.capabilities(FakeLLM()) == FAKE
    assert registry.capabilities(OpenAILLM("http://127.0.0.1:9/v1")) == SERVER
    assert registry.capabilities(object()) == NONE and registry.capabilities(None) == NONE


def test_a_pulled_gguf_named_openai_is_freed_before_a_gpu_render():
    # was kept in VRAM beside the pipeline: settings.llm.startswith("openai") took it for a server
    auto = RenderOptions(release_llm=None)
    pulled = Agent(settings=Settings(llm=OPENAI_NAMED_GGUF, llm_gpu_layers=-1))
    assert pulled.should_release_llm(auto, "cuda") is True
    server = Agent(settings=Settings(llm="openai:http://127.0.0.1:9/v1", llm_gpu_layers=-1))
    assert server.should_release_llm(auto, "cuda") is False  # a server's model is in another process


def test_server_addresses():
    spec = registry.parse("openai:http://h:1/v1#m")
    assert spec.server_address() == ("http://h:1/v1", "m")
    assert registry.parse("openai").server_address("http://h:2/v1") == ("http://h:2/v1", None)


def _tests_a_backend_name(node: ast.AST) -> bool:
    """`x == "openai..."`, `x in {"openai:..."}` or `x.startswith("openai...")`."""
    strings: list[ast.AST] = []
    if isinstance(node, ast.Compare):
        strings = [node.left, *node.comparators]
        strings += [e for c in node.comparators if isinstance(c, (ast.Set, ast.Tuple, ast.List)) for e in c.elts]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
        strings = list(node.args)
        strings += [e for a in node.args if isinstance(a, ast.Tuple) for e in a.elts]
    return any(isinstance(s, ast.Constant) and str(s.value).startswith("openai") for s in strings)


def test_no_backend_name_is_tested_outside_the_registry():
    found = [
        f"{path.relative_to(ROOT.parent)}:{node.lineno}"
        for path in ROOT.rglob("*.py")
        if path.name != "registry.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if _tests_a_backend_name(node)
    ]
    assert not found, f"ask qia_cli.llm.registry instead: {found}"
