"""The OpenAI-compatible backend against a real server (llama-cpp-python's), and its failure modes.

The real server runs the bundled GGUF on a free loopback port. The unreachable case uses a closed port;
the slow and unknown-model cases use a tiny local http.server. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qia_cli.config import Settings
from qia_cli.errors import ModelError, UsageError
from qia_cli.llm import registry
from qia_cli.llm.base import parse_json
from qia_cli.llm.openai import LLMServerError, OpenAILLM
from tests.conftest import run_qia

KEY = "sk-test-5ecret-key"
START_LIMIT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_extra_missing() -> str | None:
    for module in ("llama_cpp.server", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ImportError:
            return module
    return None


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server with the bundled GGUF and an API key; its /v1 URL."""
    missing = server_extra_missing()
    if missing:
        pytest.skip(f"llama-cpp-python[server] is not installed ({missing} missing): pip install -e '.[dev]'")
    import httpx

    from qia_cli.llm.bundled import bundled_path

    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "qia_cli.llm.serve",
        "--model",
        str(bundled_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--api_key",
        KEY,
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_LIMIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the llama.cpp server exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not start within {START_LIMIT_S} s:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class Stub:
    """A tiny HTTP server on 127.0.0.1: path -> (status, body, delay seconds)."""

    def __init__(self, routes: dict[str, tuple[int, dict, float]]) -> None:
        self.routes = routes
        self.hits: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                stub.hits.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body, delay = stub.routes.get(self.path, (404, {"error": {"message": "no such path"}}, 0))
                time.sleep(delay)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (the slow case)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    servers = []

    def make(routes):
        servers.append(Stub(routes))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def chat_answer(content: str) -> dict:
    return {
        "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"completion_tokens": 3},
    }


# -- against the real server ------------------------------------------------------------------------
@pytest.mark.slow  # the bundled GGUF behind a real llama.cpp server (one for the session)
def test_qia_plan_through_the_server(llama_server):
    result = run_qia(
        "plan",
        "a poster of the national flower of Japan",
        "--llm",
        f"openai:{llama_server}",
        "--json",
        "--search",
        "off",
        "--no-ask",
        env={"QIA_LLM_API_KEY": KEY},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["request"] == "a poster of the national flower of Japan"
    assert plan["prompt"].strip()
    assert plan["model"]["backend"] == "openai"
    assert plan["model"]["path"] == llama_server
    assert any(g["kind"] == "knowledge" for g in plan["gaps"])
    assert KEY not in result.stdout + result.stderr


@pytest.mark.slow  # the bundled GGUF behind a real llama.cpp server (one for the session)
def test_protocol_calls_and_json_fallback_on_the_real_server(llama_server):
    llm = OpenAILLM(llama_server, api_key=KEY, timeout=120)
    try:
        done = llm.complete("Q: What colour is the sky on a clear day?\nA:", max_tokens=12)
        assert done.text and "\n" not in done.text
        assert llm.use_completions is True
        schema = {
            "type": "object",
            "properties": {"colour": {"type": "string", "maxLength": 20}},
            "required": ["colour"],
        }
        answer = llm.json([{"role": "user", "content": "Name the colour of grass as JSON."}], schema, max_tokens=40)
        doc = parse_json(answer)
        assert isinstance(doc, dict) and isinstance(doc["colour"], str)
        # llama-cpp-python has no json_schema response format: the backend fell back to json_object
        assert llm.json_mode == "json_object"
        assert llm.info.backend == "openai" and llm.info.name.endswith(".gguf")
    finally:
        llm.close()
    assert llm.complete("Q: Is water wet?\nA:", max_tokens=4).finish_reason in ("stop", "length")  # reopens


@pytest.mark.slow  # the bundled GGUF behind a real llama.cpp server (one for the session)
def test_wrong_api_key_is_a_clear_error_that_never_shows_the_key(llama_server):
    wrong = "sk-wrong-key-123"
    result = run_qia(
        "plan",
        "a poster of the national flower of Japan",
        "--llm",
        f"openai:{llama_server}",
        "--json",
        "--no-ask",
        env={"QIA_LLM_API_KEY": wrong},
        timeout=120,
    )
    assert result.returncode == 2
    assert f"the LLM server at {llama_server} rejected the API key (401)" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in repr(OpenAILLM(llama_server, api_key=wrong))


@pytest.mark.slow  # the bundled GGUF behind a real llama.cpp server (one for the session)
def test_batch_plans_lines_concurrently_with_a_server(llama_server, tmp_path):
    requests = tmp_path / "requests.txt"
    requests.write_text("a red bicycle\nthe national flower of Japan\na lighthouse in a storm\n")
    result = run_qia(
        "batch",
        str(requests),
        "--plan-only",
        "--jobs",
        "2",
        "--llm",
        f"openai:{llama_server}",
        "--outdir",
        str(tmp_path / "out"),
        "--json",
        env={"QIA_LLM_API_KEY": KEY},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["failed"], summary["jobs"]) == (3, 0, 2)
    found = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["line"] for r in found] == [1, 2, 3]
    assert all(r["plan"]["model"]["backend"] == "openai" and r["plan"]["prompt"] for r in found)


# -- failures, fast ---------------------------------------------------------------------------------
def test_unreachable_server_fails_fast_with_a_clear_message():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    llm = OpenAILLM(url, timeout=5)
    start = time.monotonic()
    with pytest.raises(LLMServerError) as exc:
        llm.complete("Q: hi\nA:")
    assert time.monotonic() - start < 15  # 3 tries, 0.5 s and 1 s apart
    assert exc.value.message == f"cannot reach the LLM server at {url}: connection refused"
    assert exc.value.unreachable


def test_unreachable_server_through_the_cli():
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_qia("plan", "the national flower of Japan", "--llm", f"openai:{url}", "--json", "--no-ask", timeout=60)
    assert result.returncode == 1
    assert f"cannot reach the LLM server at {url}: connection refused" in result.stderr
    assert result.stdout == ""


def test_slow_server_times_out_within_the_limit(stub):
    slow = stub({"/v1/completions": (200, {"choices": [{"text": "late"}]}, 8.0)})
    llm = OpenAILLM(slow.url, model="m", timeout=1)
    start = time.monotonic()
    with pytest.raises(LLMServerError) as exc:
        llm.complete("Q: hi\nA:")
    assert time.monotonic() - start < 5
    assert exc.value.message == f"no answer from {slow.url} within 1 s"
    assert slow.hits == ["/v1/completions"]  # a timeout is not retried


def test_unknown_model_names_the_model_and_what_the_server_has(stub):
    server = stub(
        {
            "/v1/chat/completions": (404, {"error": {"message": 'model "nope" not found, try pulling it first'}}, 0),
            "/v1/models": (200, {"data": [{"id": "qwen2.5:3b"}]}, 0),
        }
    )
    llm = OpenAILLM(server.url, model="nope")
    with pytest.raises(ModelError) as exc:
        llm.json([{"role": "user", "content": "hi"}], {"type": "object"})
    assert exc.value.message == f"the LLM server at {server.url} has no model 'nope' (404)"
    assert "qwen2.5:3b" in exc.value.hint


def test_chat_only_server(stub):
    server = stub(
        {
            "/v1/completions": (
                404,
                {"error": {"message": "This is a chat model, not supported on v1/completions"}},
                0,
            ),
            "/v1/chat/completions": (200, chat_answer("Cherry blossom.\nIt is pink."), 0),
        }
    )
    llm = OpenAILLM(server.url, model="chat-model")
    done = llm.complete("Q: What is the national flower of Japan?\nA:")
    assert done.text == "Cherry blossom."  # the first line of the chat answer
    assert llm.use_completions is False
    llm.complete("Q: again\nA:")
    assert server.hits == ["/v1/completions", "/v1/chat/completions", "/v1/chat/completions"]  # remembered


def test_json_in_a_code_fence_is_read(stub):
    server = stub({"/v1/chat/completions": (200, chat_answer('```json\n{"missing": []}\n```'), 0)})
    answer = OpenAILLM(server.url, model="m").json([{"role": "user", "content": "hi"}], {"type": "object"})
    assert parse_json(answer) == {"missing": []}


def test_retries_5xx_then_gives_up_with_the_status(stub):
    server = stub({"/v1/completions": (503, {"error": {"message": "loading model"}}, 0)})
    llm = OpenAILLM(server.url, model="m", backoff=(0.05, 0.05))
    with pytest.raises(LLMServerError) as exc:
        llm.complete("Q: hi\nA:")
    assert server.hits.count("/v1/completions") == 3
    assert "HTTP 503: loading model" in exc.value.message


@pytest.mark.parametrize(
    "spec, url, model",
    [
        ("openai:http://127.0.0.1:8080/v1#qwen", "http://127.0.0.1:8080/v1", "qwen"),
        ("openai:http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1", None),
        ("openai", "http://127.0.0.1:11434/v1", "llama3.2"),  # from llm_url
    ],
)
def test_from_spec(spec, url, model):
    settings = Settings(llm=spec, llm_url="http://127.0.0.1:11434/v1#llama3.2", llm_api_key=KEY, llm_timeout=7)
    llm = registry.build(registry.parse(spec), settings)
    assert isinstance(llm, OpenAILLM)
    assert (llm.base_url, llm.model, llm.timeout) == (url, model, 7)
    assert KEY not in repr(llm) and "***" in repr(llm)


@pytest.mark.parametrize("spec", ["openai:", "openai:127.0.0.1:8080", "openai:ftp://host/v1", "openai:http:///v1"])
def test_bad_specs_are_usage_errors(spec):
    with pytest.raises(UsageError):
        registry.build(registry.parse(spec), Settings())


def test_settings_select_the_backend(monkeypatch):
    from qia_cli.config import load_settings
    from qia_cli.llm.factory import make_llm

    monkeypatch.setenv("QIA_LLM", "openai")
    monkeypatch.setenv("QIA_LLM_URL", "http://127.0.0.1:9/v1#m")
    monkeypatch.setenv("QIA_LLM_API_KEY", KEY)
    llm = make_llm(load_settings().settings)
    assert isinstance(llm, OpenAILLM) and llm.model == "m"
    assert KEY not in repr(llm)
