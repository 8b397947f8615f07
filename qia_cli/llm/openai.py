"""An OpenAI-compatible HTTP backend: llama.cpp's server, llama-cpp-python's server, vLLM, Ollama, ...

Selected with `--llm openai:BASE_URL[#MODEL]`, or `llm = "openai"` plus `llm_url`. It speaks plain JSON
over httpx (already a dependency: small, sync, real timeouts), so no vendor SDK is needed.

What servers differ in is found out on the first call and remembered:
- `complete` uses `/completions` (llama.cpp, vLLM, Ollama) with the one-line grammar where the server
  takes one, and falls back to `/chat/completions` with the prompt as a user message;
- `json` asks for `response_format: json_schema` (strict), then `json_object` (with the schema, which
  llama.cpp servers turn into a grammar), then no format at all; the answer is checked either way.

Connect errors, 5xx and 429 are retried (3 tries, 0.5 s then 1 s apart); a timeout is not, so a slow
server fails once, after `llm_timeout` seconds. The API key is sent as a bearer token and never shown.

A server is not trusted to be reasonable: `llm_timeout` bounds each whole request (connecting, sending and
every byte of the answer, however slowly it trickles in), at most 64 KB of an answer is read, its text is
cut to what `max_tokens` allows, and an answer that is not the JSON shape the API promises (a token count
that is not a number, JSON nested too deep to read) is one clear error.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from qia_cli.errors import ModelError, QiaError, UsageError
from qia_cli.llm.base import LINE_GRAMMAR, Completion, cleaned, parse_json
from qia_cli.llm.types import ModelInfo
from qia_cli.textsafe import clean_model_text, printable

MAX_ANSWER_BYTES = 64 * 1024  # one answer of a few hundred tokens is a few KB; JSON with logprobs, tens
TRIES = 3
BACKOFF = (0.5, 1.0, 2.0)  # seconds before the 2nd, 3rd (and 4th) try
JSON_MODES = ("json_schema", "json_object", "none")
REJECTED = {400, 422}


class LLMServerError(QiaError):
    """The server failed: unreachable, too slow, a 5xx after retries, or an answer qia cannot read."""

    def __init__(self, message: str, *, hint: str | None = None, unreachable: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.unreachable = unreachable  # no later request can succeed either: a batch stops


class _Deadline(Exception):
    """The request's total time (llm_timeout) ran out."""


@dataclass
class Reply:
    """An HTTP answer as read: the status, at most MAX_ANSWER_BYTES of the body, and whether there was more."""

    status_code: int
    content: bytes
    path: str
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError for anything else, also for JSON nested too deep to read."""
        try:
            return json.loads(self.content)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None


def _display(url: str) -> str:
    """The URL without user:password@, for messages."""
    return re.sub(r"^(\w+://)[^/@]*@", r"\1", url)


def parse_url(text: str) -> str:
    import httpx

    url = text.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(
            f"invalid LLM server URL: {_display(url)!r}",
            hint="use openai:http://HOST:PORT/v1, e.g. --llm openai:http://127.0.0.1:8080/v1#qwen",
        )
    return url


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
        return "unknown host"
    return text


def _error_text(resp: Reply) -> str:
    """The server's own error message from a JSON or text body, short (and free of terminal escapes)."""
    return clean_model_text(_raw_error_text(resp)).strip()


def _raw_error_text(resp: Reply) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message", data)))
        if isinstance(err, dict):
            err = err.get("message", err)
        return (err if isinstance(err, str) else json.dumps(err))[:300]
    return json.dumps(data)[:300]


def _invalid_request(resp) -> bool:
    """Some servers (llama-cpp-python) answer a request they cannot validate with a 500."""
    return "validation error" in _error_text(resp).lower()


def _rejects(resp, field: str) -> bool:
    """The server refused a field of the request (an unknown response_format, a grammar)."""
    if resp.status_code in REJECTED:
        return True
    return resp.status_code >= 500 and _invalid_request(resp) and field in _error_text(resp)


def _strip_fence(text: str) -> str:
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.S)
    return match.group(1) if match else text


class OpenAILLM:
    """The LLM protocol over an OpenAI-compatible server. Thread-safe: batch plans in parallel with it."""

    backend = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        tries: int = TRIES,
        backoff: tuple[float, ...] = BACKOFF,
    ) -> None:
        self.base_url = parse_url(base_url)
        self.url = _display(self.base_url)
        self.model = model or None
        self._api_key = api_key or None
        self.timeout = float(timeout)
        self.tries = max(1, tries)
        self.backoff = backoff
        self._client = None
        self._lock = threading.Lock()
        self._info: ModelInfo | None = None
        self._resolved = False
        self.use_completions: bool | None = None  # None: not tried yet
        self.use_grammar = True
        self.json_mode = JSON_MODES[0]

    @classmethod
    def from_spec(cls, spec: str, settings) -> OpenAILLM:
        """`openai:URL[#MODEL]`, or `openai` with the URL (and optional #MODEL) from `llm_url`."""
        rest = spec[len("openai:") :] if spec.startswith("openai:") else ""
        rest = rest.strip() or (settings.llm_url or "").strip()
        if not rest:
            raise UsageError(
                "no LLM server URL given",
                hint="--llm openai:http://127.0.0.1:8080/v1, or set QIA_LLM_URL (or 'qia config set llm_url ...')",
            )
        url, _, model = rest.partition("#")
        return cls(url, model=model.strip() or None, api_key=settings.llm_api_key, timeout=settings.llm_timeout)

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return f"OpenAILLM(base_url={self.url!r}, model={self.model!r}, api_key={key}, timeout={self.timeout:g})"

    # -- the protocol ---------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            self._info = ModelInfo(name=self._model_name() or "server default", backend=self.backend, path=self.url)
        return self._info

    def complete(self, prompt: str, *, max_tokens: int = 24, stop: list[str] | None = None) -> Completion:
        stop = stop or ["\n"]
        base = {"max_tokens": max_tokens, "temperature": 0, "stop": stop}
        if self.use_completions is not False:
            body = {**base, "prompt": prompt}
            if self.use_grammar:
                body["grammar"] = LINE_GRAMMAR
            resp = self._post("/completions", body)
            if self.use_grammar and _rejects(resp, "grammar"):
                self.use_grammar = False
                resp = self._post("/completions", {**base, "prompt": prompt})
            if resp.status_code in (404, 405, 501) and not self._mentions_model(resp):
                self.use_completions = False  # a chat-only server (or model)
            else:
                data = self._ok(resp)
                self.use_completions = True
                choice = self._choice(data)
                return self._answer(_field(choice, "text"), choice, data, max_tokens)
        data = self._ok(self._post("/chat/completions", {**base, "messages": [{"role": "user", "content": prompt}]}))
        choice = self._choice(data)
        text = clean_model_text(self._content(choice)).strip()
        return self._answer(text.splitlines()[0] if text else "", choice, data, max_tokens)

    def json(self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int = 256) -> Completion:
        while True:
            mode = self.json_mode
            body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": 0}
            if mode == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "qia", "schema": schema, "strict": True},
                }
            elif mode == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
            resp = self._post("/chat/completions", body)
            if mode != JSON_MODES[-1] and _rejects(resp, "response_format") and not self._mentions_model(resp):
                self.json_mode = JSON_MODES[JSON_MODES.index(mode) + 1]
                continue
            data = self._ok(resp)
            break
        choice = self._choice(data)
        completion = self._answer(_strip_fence(self._content(choice)), choice, data, max_tokens, document=True)
        if mode != "json_schema" and not _fits(parse_json(completion), schema):
            completion.finish_reason = "invalid"  # parse_json gives None: the planner treats it as no answer
        return completion

    def close(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- reading an answer ----------------------------------------------------------------------
    def _answer(
        self, text: str, choice: dict[str, Any], data: dict[str, Any], max_tokens: int, *, document: bool = False
    ) -> Completion:
        """A Completion from a checked answer: clean text, cut to what `max_tokens` allows."""
        finish = choice.get("finish_reason")
        completion = Completion(
            text=text,
            finish_reason=finish if isinstance(finish, str) else None,
            tokens=self._tokens(data, max_tokens),
        )
        return cleaned(completion, document=document, max_tokens=max_tokens)

    def _unreadable(self, what: str) -> LLMServerError:
        return LLMServerError(
            f"the LLM server at {self.url} sent an answer qia cannot read: {what}",
            hint="is it an OpenAI-compatible API? (llama.cpp's server, vLLM, Ollama)",
        )

    def _content(self, choice: dict[str, Any]) -> str:
        message = choice.get("message")
        if message is None:
            return ""
        if not isinstance(message, dict):
            raise self._unreadable("choices[0].message is not an object")
        return _field(message, "content")

    def _tokens(self, data: dict[str, Any], max_tokens: int) -> int:
        """usage.completion_tokens (0 when absent), never more than was asked for; an error when it is not
        a count."""
        usage = data.get("usage")
        if usage is None:
            return 0
        if not isinstance(usage, dict):
            raise self._unreadable("usage is not an object")
        count = usage.get("completion_tokens")
        if count is None:
            return 0
        if isinstance(count, bool) or not isinstance(count, (int, float)) or count != count or count < 0:
            raise self._unreadable(f"usage.completion_tokens is {printable(repr(count)[:40])}, not a count")
        return min(int(count), max_tokens) if count != float("inf") else max_tokens

    # -- HTTP -----------------------------------------------------------------------------------
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                import httpx

                headers = {"Accept-Encoding": "identity"}  # what is read is what is counted: no zip bombs
                if self._api_key:
                    headers["Authorization"] = f"Bearer {self._api_key}"
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=headers)
            return self._client

    def _mask(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _post(self, path: str, body: dict[str, Any]) -> Reply:
        if self.model is None and not self._resolved:
            self._model_name()
        if self.model:
            body = {"model": self.model, **body}
        return self._send("POST", path, body)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Reply:
        """One request with bounded retries, all within `timeout` seconds; raises for what no caller can
        handle."""
        import httpx

        deadline = time.monotonic() + self.timeout
        last = ""
        for attempt in range(self.tries):
            if attempt:
                pause = self.backoff[min(attempt - 1, len(self.backoff) - 1)]
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            try:
                resp = self._exchange(method, self.base_url + path, body, deadline)
            except (_Deadline, httpx.TimeoutException):
                raise LLMServerError(
                    f"no answer from {self.url} within {self.timeout:g} s",
                    hint="the server may be busy or loading a model; raise llm_timeout (QIA_LLM_TIMEOUT) if it is just slow",
                ) from None
            except (httpx.TransportError, OSError) as exc:
                last = _reason(exc)
                continue
            if resp.status_code == 429 or (resp.status_code >= 500 and not _invalid_request(resp)):
                last = f"HTTP {resp.status_code}: {self._mask(_error_text(resp))}"
                continue
            if resp.status_code in (401, 403):
                what = "rejected the API key" if self._api_key else "needs an API key"
                raise ModelError(
                    f"the LLM server at {self.url} {what} ({resp.status_code})",
                    hint="set QIA_LLM_API_KEY, or 'qia config set llm_api_key KEY'",
                )
            return resp
        if last.startswith("HTTP "):
            raise LLMServerError(f"the LLM server at {self.url} failed {self.tries} times: {last}")
        if not last:
            raise LLMServerError(f"no answer from {self.url} within {self.timeout:g} s")
        raise LLMServerError(
            f"cannot reach the LLM server at {self.url}: {last}",
            hint="is the server running? e.g. python -m llama_cpp.server --model FILE.gguf",
            unreachable=True,
        )

    def _exchange(self, method: str, url: str, body: dict[str, Any] | None, deadline: float) -> Reply:
        """The request, run on a daemon thread so that the deadline holds whatever the server does (httpx's
        timeouts apply to each read: a byte every few seconds would never trip them). _Deadline when it
        passes; the thread stops reading at its next chunk."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["reply"] = self._read(method, url, body, deadline)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="qia-llm-request", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise _Deadline
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _read(self, method: str, url: str, body: dict[str, Any] | None, deadline: float) -> Reply:
        import httpx

        left = max(0.01, deadline - time.monotonic())
        with self.client.stream(method, url, json=body, timeout=httpx.Timeout(left)) as resp:
            data = bytearray()
            truncated = False
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    del data[MAX_ANSWER_BYTES:]
                    truncated = True
                    break
                if time.monotonic() > deadline:
                    raise _Deadline
            return Reply(resp.status_code, bytes(data), resp.request.url.path, truncated)

    def _mentions_model(self, resp: Reply) -> bool:
        """An error about the model named in the request (unknown, not pulled), not about the request."""
        if not self.model:
            return False  # the server picked its own default
        text = _error_text(resp).lower()
        return "model" in text and any(s in text for s in (self.model.lower(), "not found", "does not exist"))

    def _ok(self, resp: Reply) -> dict[str, Any]:
        """The JSON body of a 2xx answer, or a clear error for the rest."""
        if resp.status_code >= 400:
            message = self._mask(_error_text(resp))
            if resp.status_code == 404 or self._mentions_model(resp):
                if self._mentions_model(resp):
                    hint = f"models it serves: {', '.join(self._model_ids()) or 'none listed'}"
                    raise ModelError(
                        f"the LLM server at {self.url} has no model '{self.model}' ({resp.status_code})", hint=hint
                    )
                raise LLMServerError(
                    f"the LLM server at {self.url} has no {resp.path} endpoint (404)",
                    hint="the URL should be the API base, often ending in /v1",
                )
            raise LLMServerError(f"the LLM server at {self.url} refused the request ({resp.status_code}): {message}")
        if resp.truncated:
            raise LLMServerError(
                f"the LLM server at {self.url} sent more than {MAX_ANSWER_BYTES // 1024} KB for one answer",
                hint="qia asks for a few hundred tokens at most; is the server honouring max_tokens?",
            )
        try:
            data = resp.json()
        except ValueError as exc:
            what = "JSON nested too deep" if "deep" in str(exc) else "not JSON"
            raise LLMServerError(f"the LLM server at {self.url} sent an answer that is {what}") from None
        if not isinstance(data, dict):
            raise LLMServerError(f"the LLM server at {self.url} sent an answer that is not a JSON object")
        return data

    def _choice(self, data: dict[str, Any]) -> dict[str, Any]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMServerError(f"the LLM server at {self.url} sent an answer without choices")
        return choices[0]

    def _model_ids(self) -> list[str]:
        resp = self._send("GET", "/models")
        if resp.status_code >= 400 or resp.truncated:
            return []
        try:
            data = resp.json()
        except ValueError:
            return []
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list):
            return []
        return [clean_model_text(str(m["id"])) for m in models if isinstance(m, dict) and m.get("id")]

    def _model_name(self) -> str | None:
        """The model named in the spec, else the server's first `/models` entry (asked once)."""
        if self.model is None and not self._resolved:
            ids = self._model_ids()
            self.model = ids[0] if ids else None
            self._resolved = True
        return self.model


def _field(holder: dict[str, Any], key: str) -> str:
    """A text field of an answer: a string, or nothing; other JSON types are written out."""
    value = holder.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)[:MAX_ANSWER_BYTES]


def _fits(doc: Any, schema: dict[str, Any]) -> bool:
    """A light check of what a json_object answer must be: the type and the required keys at the top."""
    if doc is None:
        return False
    if schema.get("type") == "object":
        return isinstance(doc, dict) and all(k in doc for k in schema.get("required", []))
    if schema.get("type") == "array":
        return isinstance(doc, list)
    return True
