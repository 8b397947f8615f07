"""Noting model calls: `LoggedLLM` wraps any LLM (the protocol of qia_cli/llm/base.py) and notes each call
with the stage the caller marked (`qia_cli.llm.calls.stage`), the model, the prompt, the answer, its
log-probability, tokens and time.

A call made inside `recording(...)` (one plan, one render's feedback) joins that recording; the Agent links
the recording to the finished plan (which answers were used) and writes it in one transaction. A call made
outside any recording goes to the wrapper's own log at once, or nowhere when it has none. The stage and
the recording are context variables: parallel plans (threads, batch workers) each keep their own.
"""

from __future__ import annotations

import contextvars
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from qia_cli.calllog.redact import Redactor
from qia_cli.llm import calls

OTHER = "other"  # the stage of a call made with none marked
MAX_QUESTION_CHARS = 500


@dataclass
class Call:
    """One model call, as the log keeps it."""

    time: str  # ISO 8601, UTC
    stage: str
    kind: str  # "complete" (one bounded line) or "json" (chat messages in, a JSON document out)
    prompt: str  # what was sent (for json: the messages, one per paragraph)
    question: str  # the question it asked (the last "Q:" of a few-shot prompt, or the user message)
    answer: str | None  # None: the call failed (see `error`)
    gap_id: str | None = None
    detail: str | None = None
    plan_id: str | None = None
    request: str | None = None
    model: str | None = None
    backend: str | None = None
    model_path: str | None = None  # the GGUF file, or the server's URL (without credentials)
    model_sha256: str | None = None  # a 12-character prefix, where known
    logprob: float | None = None
    min_logprob: float | None = None
    tokens: int = 0
    seconds: float = 0.0
    finish_reason: str | None = None
    error: str | None = None
    # After the plan: whether the answer reached the final prompt, and if not, why.
    used: bool | None = None
    outcome: str | None = None  # used | withheld | confirmation | not used | failed
    why: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sink(Protocol):
    """Where recorded calls go: the SQLite log (store.CallLog) or a buffer a batch worker sends back."""

    def write(self, plan: dict[str, Any] | None, calls: list[Call]) -> None: ...

    def add_images(self, plan_id: str, paths: list[str]) -> None: ...


def new_plan_id() -> str:
    return "p" + secrets.token_hex(4)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Recording:
    """The calls made while one plan (or one render's feedback loop) ran."""

    plan_id: str | None
    request: str | None
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, call: Call) -> None:
        call.plan_id, call.request = self.plan_id, self.request
        with self._lock:
            self.calls.append(call)


_recording: contextvars.ContextVar[Recording | None] = contextvars.ContextVar("qia_call_recording", default=None)


@contextmanager
def recording(plan_id: str | None, request: str | None) -> Iterator[Recording]:
    """Collect the calls made inside the block (in this thread and in contexts copied from it)."""
    rec = Recording(plan_id, request)
    token = _recording.set(rec)
    try:
        yield rec
    finally:
        _recording.reset(token)


def question_of(prompt: str) -> str:
    """The question a few-shot prompt ends with ('Q: What is ...?\\nA:'), else its last line."""
    head, sep, tail = prompt.rpartition("Q:")
    text = tail.split("\nA:")[0] if sep else (prompt.strip().splitlines() or [""])[-1]
    return " ".join(text.split())[:MAX_QUESTION_CHARS]


class LoggedLLM:
    """An LLM whose calls are noted. Everything else (info, close, backend attributes) is the model's own."""

    def __init__(
        self,
        inner: Any,
        calllog: Sink | None = None,
        *,
        default_stage: str = OTHER,
        secrets: Iterable[str | None] = (),
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.inner = inner
        self.calllog = calllog
        self.default_stage = default_stage
        self._redact = Redactor(secrets)
        self._model: tuple[str | None, str | None, str | None] | None = None
        self._on_error = on_error

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"LoggedLLM({self.inner!r})"

    @property
    def info(self):
        return self.inner.info

    def complete(self, prompt: str, *, max_tokens: int = 24, stop: list[str] | None = None):
        return self._call(
            "complete",
            prompt,
            question_of(prompt),
            lambda: self.inner.complete(prompt, max_tokens=max_tokens, stop=stop),
        )

    def json(self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int = 256):
        prompt = "\n\n".join(f"[{m.get('role', 'user')}] {m.get('content', '')}" for m in messages)
        users = [m.get("content", "") for m in messages if m.get("role", "user") == "user"]
        question = " ".join((users[-1] if users else prompt).split())[:MAX_QUESTION_CHARS]
        return self._call("json", prompt, question, lambda: self.inner.json(messages, schema, max_tokens=max_tokens))

    def close(self) -> None:
        self.inner.close()

    # -- noting ---------------------------------------------------------------------------------
    def _call(self, kind: str, prompt: str, question: str, run: Callable[[], Any]):
        rec = _recording.get()
        if rec is None and self.calllog is None:
            return run()  # nobody records: no cost
        marked = calls.current()
        started, start = now(), time.perf_counter()
        try:
            completion = run()
        except Exception as exc:
            self._note(rec, marked, kind, prompt, question, started, start, None, exc)
            raise
        self._note(rec, marked, kind, prompt, question, started, start, completion, None)
        return completion

    def _model_fields(self, failed: bool) -> tuple[str | None, str | None, str | None]:
        if self._model is not None:
            return self._model
        inner = self.inner
        if failed:  # a server that failed may fail again: no info call (it can ask the server for its model)
            return (getattr(inner, "model", None), getattr(inner, "backend", None), getattr(inner, "url", None))
        try:
            info = inner.info
            self._model = (info.name, info.backend, info.path)
        except Exception:  # noqa: BLE001 - a description only
            self._model = (type(inner).__name__, getattr(inner, "backend", None), None)
        return self._model

    def _note(self, rec, marked, kind, prompt, question, started, start, completion, error) -> None:
        try:
            redact = self._redact
            name, backend, path = self._model_fields(error is not None)
            call = Call(
                time=started,
                stage=marked.name if marked is not None else self.default_stage,
                gap_id=marked.gap_id if marked is not None else None,
                detail=marked.detail if marked is not None else None,
                kind=kind,
                prompt=redact(prompt) or "",
                question=redact(question) or "",
                answer=redact(completion.text) if completion is not None else None,
                model=redact(name),
                backend=backend,
                model_path=redact(str(path)) if path else None,
                logprob=getattr(completion, "logprob", None),
                min_logprob=getattr(completion, "min_logprob", None),
                tokens=int(getattr(completion, "tokens", 0) or 0),
                seconds=round(time.perf_counter() - start, 4),
                finish_reason=getattr(completion, "finish_reason", None),
                error=redact(f"{type(error).__name__}: {getattr(error, 'message', None) or error}") if error else None,
            )
            if error is not None:
                call.used, call.outcome, call.why = False, "failed", "the call failed"
            if rec is not None:
                rec.add(call)
            elif self.calllog is not None:
                self.calllog.write(None, [call])
        except Exception as exc:  # noqa: BLE001 - noting a call never fails the call
            if self._on_error is not None:
                self._on_error(exc)


def wrap(llm: Any, calllog: Sink | None = None, *, secrets: Iterable[str | None] = ()) -> Any:
    """`llm` with its calls noted (an LLM that is noted already stays as it is); None stays None."""
    if llm is None or isinstance(llm, LoggedLLM):
        return llm
    return LoggedLLM(llm, calllog, secrets=secrets)


def unwrap(llm: Any) -> Any:
    return llm.inner if isinstance(llm, LoggedLLM) else llm


class Buffer:
    """A sink that keeps what it is given, for a batch worker to send back to the driver, which writes it."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
        self.images: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()

    def write(self, plan: dict[str, Any] | None, calls: list[Call]) -> None:
        with self._lock:
            self.items.append((plan, [c.as_dict() for c in calls]))

    def add_images(self, plan_id: str, paths: list[str]) -> None:
        with self._lock:
            self.images.append((plan_id, list(paths)))

    def take(self) -> list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
        with self._lock:
            items, self.items = self.items, []
        return items
