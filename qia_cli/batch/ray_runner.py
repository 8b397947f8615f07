"""`qia batch --ray ADDRESS`: the lines of a batch done by a pool of Ray actors, on one machine or a cluster.

Each actor (`LineWorker`, one per GPU, or one per node on a CPU-only cluster, or `--workers N`) loads the
pipeline once, keeps it warm, and plans (`runner.plan_line`) and renders (`runner.finish_line`) the lines the driver sends it, two at a time
(one rendering, one waiting). With an LLM server the lines are planned in parallel Ray tasks and the
actors only render; with a local GGUF each actor loads the planner once and plans its own lines.

The driver alone writes: workers render into a temporary folder of their own and send the PNG and the
sidecar back as bytes, which the driver saves under OUTDIR with the usual names (with `shared_outdir`,
workers write straight into OUTDIR, a folder every node mounts at the same path). Memory is read-only in
workers: they get a snapshot of the entries when the batch starts and report which ones a plan used; the
driver records that use. Search runs in the worker, with that node's cache.

Faults: an actor that dies (OOM, a lost node, kill -9) is restarted by Ray, and the lines it had in flight
are sent again, each at most MAX_ATTEMPTS times in all; the driver records a line once, when its result
arrives, so every line ends `ok` (or `error`) exactly once. A line that fails by itself (a bad size) is an
ordinary error record and is not sent again. Ctrl-C kills the actors and leaves `results.jsonl` whole.

`import ray` happens only here, and only when a batch runs with `--ray`.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qia_cli.batch.lines import Line
from qia_cli.batch.results import LineRecord
from qia_cli.batch.runner import (
    BatchOptions,
    Outcome,
    Saved,
    Summary,
    finish_line,
    plan_line,
    renderer_of,
)
from qia_cli.errors import QiaError, UsageError, first_line
from qia_cli.llm.registry import capabilities

INSTALL = 'pip install "qia-cli[ray]"'
ADDRESSES = "local, auto or ray://HOST:PORT"
MAX_ATTEMPTS = 3  # sends of one line whose worker died each time; then it is recorded as an error
PER_WORKER = 2  # lines queued on an actor: one rendering, the next one waiting
START_TIMEOUT_S = 600.0  # no actor started in this time: the cluster cannot place them
LOCAL_OBJECT_STORE = 512 * 2**20


def installed_version() -> str | None:
    """Ray's version from the package metadata, without importing it."""
    from importlib import metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def check_address(address: str) -> str:
    address = (address or "").strip()
    if address in ("local", "auto") or (address.startswith("ray://") and len(address) > len("ray://")):
        return address
    raise UsageError(f"unknown Ray address '{address}'", hint=f"use {ADDRESSES}")


def require_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, which is not installed", hint=INSTALL) from None
    return ray


class Cluster:
    """A connection to Ray for the length of a `with` block; a `local` instance this started is shut down."""

    def __init__(self, address: str, *, verbose: bool = False, num_cpus: int | None = None) -> None:
        self.address = check_address(address)
        self.verbose = verbose
        self.num_cpus = num_cpus
        self.owned = False
        self.ray: Any = None  # the ray module, once connected
        self._restore: Callable[[], None] = lambda: None

    def __enter__(self) -> Cluster:
        ray = self.ray = require_ray()
        self._restore = _raylet_messages_to_stderr(self.verbose)
        if ray.is_initialized():  # a program (or a test) that already holds a connection lends it
            return self
        kwargs: dict[str, Any] = {
            "log_to_driver": self.verbose,
            "logging_level": logging.INFO if self.verbose else logging.ERROR,
        }
        if self.address == "local":
            kwargs.update(
                address="local", include_dashboard=False, num_cpus=self.num_cpus, object_store_memory=LOCAL_OBJECT_STORE
            )
        else:
            kwargs.update(address=self.address)
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean "not connected"
            self._restore()
            text = first_line(exc)
            where = "start a local Ray instance" if self.address == "local" else f"connect to Ray at {self.address}"
            raise QiaError(
                f"cannot {where}: {text}", hint="start a cluster with `ray start --head`, or use --ray local"
            ) from None
        self.owned = True
        if self.address != "local":
            try:
                self._check_qia()
            except BaseException:
                self.__exit__()
                raise
        return self

    def _check_qia(self) -> None:
        """The cluster's nodes import qia_cli to run the lines: the same version must be installed there."""
        from importlib import metadata

        from qia_cli import __version__

        ray = self.ray
        probe = ray.remote(num_cpus=0)(metadata.version).remote("qia-cli")  # a stdlib function: no qia needed
        try:
            theirs = ray.get(probe, timeout=120)
        except ray.exceptions.GetTimeoutError:
            return  # a busy cluster: the workers will say so if qia is missing
        except ray.exceptions.RayError:
            theirs = None
        if theirs != __version__:
            found = f"qia {theirs}" if theirs else "no qia"
            raise QiaError(
                f"the Ray cluster at {self.address} has {found}; this machine has qia {__version__}",
                hint=f'install the same version on every node: pip install "qia-cli[ray]=={__version__}"',
            )

    def __exit__(self, *exc) -> None:
        if self.owned and self.ray is not None:
            try:
                self.ray.shutdown()
            except Exception:  # noqa: BLE001 - shutting down; nothing left to save
                pass
        self._restore()

    def resources(self) -> dict[str, Any]:
        """CPUs, GPUs and live nodes of the cluster, for `qia info` and pool sizing."""
        ray = self.ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        total = ray.cluster_resources()
        return {
            "nodes": len(nodes),
            "cpus": total.get("CPU", 0.0),
            "gpus": total.get("GPU", 0.0),
            "node_cpus": [n.get("Resources", {}).get("CPU", 0.0) for n in nodes],
        }


def _raylet_messages_to_stderr(verbose: bool) -> Callable[[], None]:
    """Ray prints the raylet's messages ("a worker died ...") on stdout, which must stay one document
    with --json: send them to stderr with -v, drop them otherwise (the batch reports what it did about
    them). Returns the undo. A Ray without this private hook is left as it is."""
    try:
        from ray._private import worker as ray_worker

        original = ray_worker.print_to_stdstream
    except (ImportError, AttributeError):
        return lambda: None

    def print_to_stderr(data, ignore_prefix: bool):
        if data.get("pid") == "raylet" and not data.get("is_err"):
            if not verbose:
                return None
            data = {**data, "is_err": True}
        return original(data, ignore_prefix)

    ray_worker.print_to_stdstream = print_to_stderr

    def restore() -> None:
        ray_worker.print_to_stdstream = original

    return restore


@dataclass
class RayOptions:
    workers: int | None = None  # actors; default: one per GPU, or one per node on a CPU-only cluster
    shared_outdir: bool = False  # OUTDIR is mounted on every node: workers write images there
    on_workers: Callable[[int, int], None] = lambda _live, _total: None  # (live, asked) as it changes
    on_ready: Callable[[dict], None] = lambda _info: None  # an actor started: {"pid", "host", "node"}
    worker_class: type | None = None  # LineWorker or a subclass (tests inject faults with one)


def pool_shape(
    resources: dict[str, Any], workers: int | None, device: str | None, needs_gpu: bool = True
) -> tuple[int, dict[str, Any]]:
    """How many actors, and the resources each asks for."""
    if needs_gpu and resources["gpus"] >= 1 and device not in ("cpu", "mps"):
        return workers or int(resources["gpus"]), {"num_gpus": 1, "num_cpus": 1}
    count = workers or max(1, resources["nodes"])
    largest = max(resources["node_cpus"] or [1.0])
    share = min(largest, resources["cpus"] / count) if resources["cpus"] else 1.0
    cpus = float(int(share)) if share >= 1 else max(0.01, round(share, 2))
    return count, {"num_cpus": cpus, "scheduling_strategy": "SPREAD"}


# -- what runs in the cluster ---------------------------------------------------------------------
class MemoryView:
    """The driver's memory entries, read-only: recall works as at home, use is noted for the driver."""

    def __init__(self, entries: list[dict]) -> None:
        from qia_cli.memory.recall import Index
        from qia_cli.memory.store import Entry

        self._index = Index([Entry.model_validate(e) for e in entries])
        self.used: list[str] = []

    def recall(self, request: str, limit: int = 8):
        return self._index.recall(request, limit=limit)

    def find_session(self, request: str) -> None:
        """The driver's sessions stay with the driver: "like the one I made yesterday" finds none here."""
        return None

    def add_session(self, record: dict[str, Any]) -> None:
        """Nor is a session recorded here (a batch records none)."""
        return None

    def touch(self, ids: list[str]) -> None:
        self.used.extend(i for i in ids if i not in self.used)

    def take(self) -> list[str]:
        used, self.used = self.used, []
        return used


@dataclass
class Context:
    """What every worker needs to do a line as the driver would (sent once, shared by reference)."""

    settings: Any
    options: BatchOptions
    search: Any
    memory: list[dict] | None
    verbose: bool = False
    log: bool = False  # the driver keeps a call log: workers send their calls back with each line
    token: str = field(default_factory=lambda: os.urandom(8).hex())  # one batch, for caching per process

    def agent(self):
        from qia_cli.agent.run import Agent
        from qia_cli.calllog.record import Buffer

        memory = MemoryView(self.memory) if self.memory is not None else None
        calllog = Buffer() if self.log else None
        return Agent(settings=self.settings, verbose=self.verbose, memory=memory, search=self.search, calllog=calllog)


def _logged(agent) -> list:
    """The call-log writes a worker's agent buffered since the last line (for the driver to make)."""
    calllog = agent.calllog
    return calllog.take() if calllog is not None and hasattr(calllog, "take") else []


class LineWorker:
    """A Ray actor: one pipeline (and with a local GGUF one planner), kept warm for every line it gets."""

    def __init__(self, context: Context, shared_outdir: bool) -> None:
        self.context = context
        self.agent = context.agent()
        self.renderer = renderer_of(self.agent)
        self.outdir = None
        if not shared_outdir:
            scratch = _scratch()
            _sweep(scratch)
            self.outdir = Path(tempfile.mkdtemp(prefix=f"qia-ray-{os.getpid()}-", dir=scratch))

    def info(self) -> dict:
        node = None
        try:
            import ray

            node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - only for display
            pass
        return {"pid": os.getpid(), "host": socket.gethostname(), "node": node}

    def close(self) -> None:
        """Remove the scratch folder, and those of dead workers on this node (the driver calls this before
        it kills the actor)."""
        if self.outdir is not None:
            import shutil

            shutil.rmtree(self.outdir, ignore_errors=True)
            _sweep(str(self.outdir.parent))

    def run(self, line: Line, saved: dict | None) -> Outcome:
        """Plan and render one line."""
        return self.finish(line, plan_line(self.agent, line, saved, self.context.options))

    def finish(self, line: Line, planned: Any) -> Outcome:
        """Render one line planned elsewhere (or the plan's error): its record, and its files as bytes."""
        outcome = finish_line(self.renderer, line, planned, self.context.options, self.outdir)
        memory = self.agent.memory
        outcome.touched = memory.take() if memory is not None else []
        outcome.calls = _logged(self.agent)
        if self.outdir is not None:
            outcome.files = _collect(outcome.record, self.outdir)
        return outcome


def _scratch() -> str | None:
    """Where a worker renders before sending the files back: memory (/dev/shm) when the node has it."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _sweep(scratch: str | None) -> None:
    """Remove the folders of workers on this node that are gone (killed actors leave theirs behind)."""
    import shutil

    for folder in Path(scratch or tempfile.gettempdir()).glob("qia-ray-*-*"):
        try:
            pid = int(folder.name.split("-")[2])
        except (ValueError, IndexError):
            continue
        if not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:  # a killed worker stays a zombie until the raylet reaps it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


_TASK_AGENTS: dict[str, Any] = {}


def plan_task(context: Context, line: Line, saved: dict | None) -> tuple[Any, list[str], list]:
    """A Ray task: plan one line through the LLM server; (Plan or the exception, memory ids it used, the
    call-log writes it buffered)."""
    key = context.token  # one agent (one HTTP client) per worker process and batch
    agent = _TASK_AGENTS.get(key)
    if agent is None:
        _TASK_AGENTS.clear()
        agent = _TASK_AGENTS[key] = context.agent()
    planned = plan_line(agent, line, saved, context.options)
    return planned, agent.memory.take() if agent.memory is not None else [], _logged(agent)


def _collect(record: LineRecord, folder: Path) -> list[dict]:
    """The files a rendered line left in the worker's folder, as bytes; the folder is emptied."""
    import json

    files = []
    try:
        for output in record.outputs:
            png, side = Path(output.path), Path(output.sidecar)
            files.append(
                {
                    "name": png.stem,
                    "png": png.read_bytes(),
                    "sidecar": json.loads(side.read_text("utf-8")),
                    "path": str(png),
                    "sidecar_path": str(side),
                }
            )
    finally:
        for leftover in folder.iterdir():
            leftover.unlink(missing_ok=True)
    return files


# -- the driver's side ------------------------------------------------------------------------------
@dataclass
class _Slot:
    handle: Any
    ready: bool = False
    dead: bool = False
    queue: deque = field(default_factory=deque)  # its jobs in flight, in the order it runs them
    ping: Any = None
    deaths: int = 0  # deaths noticed: a job sent before the last one only waited behind the line that killed it


@dataclass
class _Job:
    line: Line
    kind: str  # "plan" (a task), "run" (plan and render in an actor), "finish" (render in an actor)
    slot: _Slot | None = None
    payload: Any = None  # the saved plan (run) or the plan (finish)
    touched: list[str] = field(default_factory=list)
    calls: list = field(default_factory=list)  # call-log writes of its planning task
    epoch: int = 0  # its slot's `deaths` when it was sent


class RayRunner:
    """`run_batch`'s runner for a Ray cluster (see the module docstring)."""

    def __init__(self, cluster: Cluster, options: RayOptions | None = None) -> None:
        self.cluster = cluster
        self.options = options or RayOptions()

    def __call__(
        self, agent, lines: Iterable[Line], stored: Saved, options: BatchOptions, summary: Summary
    ) -> Iterator[Outcome]:
        pending = iter(lines)
        first = next(pending, None)
        if first is None:  # nothing to do: start nothing
            return
        run = _Run(self, agent, itertools.chain([first], pending), stored, options, summary)
        try:
            yield from run.outcomes()
        finally:
            run.stop()


class _Run:
    """One batch on the cluster: the actors, the planning tasks and the lines in flight."""

    def __init__(
        self, runner: RayRunner, agent, pending: Iterator[Line], stored: Saved, options: BatchOptions, summary: Summary
    ) -> None:
        ray = self.ray = runner.cluster.ray
        assert ray is not None  # the Cluster is connected (inside its `with` block)
        self.hooks, self.pending, self.stored, self.options, self.summary = (
            runner.options,
            pending,
            stored,
            options,
            summary,
        )
        self.lost_worker = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.NodeDiedError,
        )
        memory = [e.model_dump(mode="json") for e in agent.memory.list()] if agent.memory is not None else None
        context = Context(
            agent.settings, options, agent.search, memory, agent.verbose, log=agent.call_sink() is not None
        )
        self.slots: list[_Slot] = []
        self.shape: dict[str, Any] = {}
        plan_in_tasks = capabilities(agent.llm).parallel  # an LLM server: plan in tasks, render in actors
        if not (options.plan_only and plan_in_tasks):
            device = options.render.device or agent.settings.device
            count, self.shape = pool_shape(
                runner.cluster.resources(), runner.options.workers, device, needs_gpu=not options.plan_only
            )
            actor = ray.remote(runner.options.worker_class or LineWorker).options(
                max_restarts=-1, max_task_retries=0, **self.shape
            )
            for _ in range(count):  # each gets its own copy of the context: Ray restarts need one
                handle = actor.remote(context, runner.options.shared_outdir)
                self.slots.append(_Slot(handle, ping=handle.info.remote()))
        summary.workers = len(self.slots)
        self.planner: Any = None  # a Ray remote function
        if plan_in_tasks:
            self.planner = ray.remote(plan_task).options(num_cpus=0, max_retries=MAX_ATTEMPTS - 1)
            self.shared = ray.put(context)
        self.plan_window = max(summary.jobs, PER_WORKER * len(self.slots), 1)
        self.exhausted = False
        self.retry: deque[_Job] = deque()  # lines whose worker died, sent again first
        self.planned: deque[_Job] = deque()  # plans from tasks, waiting for an actor
        self.inflight: dict[Any, _Job] = {}
        self.attempts: dict[int, int] = {}
        self.started = time.monotonic()
        self.live = -1

    def outcomes(self) -> Iterator[Outcome]:
        while True:
            self._feed()
            live = sum(s.ready for s in self.slots)
            if live != self.live:
                self.live = live
                self.hooks.on_workers(live, len(self.slots))
            if not self.inflight and not self.retry and not self.planned and self.exhausted:
                return
            if self._hopeless():
                return
            pings = {s.ping: s for s in self.slots if s.ping is not None}
            done, _ = self.ray.wait([*self.inflight, *pings], num_returns=1, timeout=1.0)
            for ref in done:
                if ref in pings:
                    self._pinged(pings[ref], ref)
                else:
                    yield from self._finished(ref)

    def _next_line(self) -> Line | None:
        line = None if self.exhausted else next(self.pending, None)
        self.exhausted = line is None
        return line

    def _feed(self) -> None:
        """Planning tasks a window ahead of the actors (LLM server), then up to PER_WORKER lines per actor."""
        while (
            self.planner is not None
            and sum(j.kind == "plan" for j in self.inflight.values()) + len(self.planned) < self.plan_window
        ):
            line = self._next_line()
            if line is None:
                break
            saved = self.stored.get((line.line, line.key))
            self.inflight[self.planner.remote(self.shared, line, saved)] = _Job(line, "plan")
        for slot in self.slots:
            while slot.ready and len(slot.queue) < PER_WORKER:
                if self.retry:
                    job = self.retry.popleft()
                elif self.planner is not None:
                    if not self.planned:
                        break
                    job = self.planned.popleft()
                else:
                    line = self._next_line()
                    if line is None:
                        break
                    job = _Job(line, "run", payload=self.stored.get((line.line, line.key)))
                job.slot, job.epoch = slot, slot.deaths
                slot.queue.append(job)
                method = slot.handle.run if job.kind == "run" else slot.handle.finish
                self.inflight[method.remote(job.line, job.payload)] = job

    def _hopeless(self) -> bool:
        """Every actor is gone, or none could start: stop, and say why (the records so far stay)."""
        if not self.slots:
            return False
        if all(s.dead for s in self.slots):
            self.summary.aborted = QiaError("every Ray worker died", hint="see `ray status`; rerun to resume")
            return True
        if not self.live and time.monotonic() - self.started > START_TIMEOUT_S:
            self.summary.aborted = QiaError(
                f"no Ray worker started within {START_TIMEOUT_S:.0f} s",
                hint=f"the cluster cannot place {len(self.slots)} worker(s) asking for {self.shape}; "
                "see `ray status`, or pass --workers",
            )
            return True
        return False

    def _pinged(self, slot: _Slot, ref) -> None:
        slot.ping = None
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.ActorUnavailableError:
            slot.ping = slot.handle.info.remote()  # restarting: ask again
            time.sleep(0.2)
            return
        except self.ray.exceptions.RayError:
            slot.dead = True  # it cannot be built (or restarted) any more
            return
        slot.ready = True
        self.hooks.on_ready(info)

    def _finished(self, ref) -> Iterator[Outcome]:
        job = self.inflight.pop(ref)
        slot, running = job.slot, False
        if slot is not None:
            # The first job in the queue runs; the others wait behind it. One that waited behind a line that
            # killed the worker is first by the time its own error arrives, but it never ran.
            running = bool(slot.queue) and slot.queue[0] is job and job.epoch == slot.deaths
            slot.queue.remove(job)
        try:
            value = self.ray.get(ref)
        except self.lost_worker as exc:
            yield from self._lost(job, slot, running, exc)
            return
        except self.ray.exceptions.RayError as exc:  # our own code failed outside the line's error handling
            yield self._error(job, f"unexpected error in Ray: {first_line(exc, limit=200)}")
            return
        if job.kind != "plan":
            value.touched = list(dict.fromkeys([*job.touched, *value.touched]))
            value.calls = [*job.calls, *value.calls]
            yield value
            return
        plan, touched, logged = value
        if self.options.plan_only or isinstance(plan, BaseException):
            outcome = finish_line(None, job.line, plan, self.options)
            outcome.touched, outcome.calls = touched, logged
            yield outcome
        else:
            self.planned.append(_Job(job.line, "finish", payload=plan, touched=touched, calls=logged))

    def _lost(self, job: _Job, slot: _Slot | None, running: bool, exc: BaseException) -> Iterator[Outcome]:
        """The worker died under `job`: send it again (a line it was rendering, MAX_ATTEMPTS times at most)."""
        if slot is not None and slot.ready:
            slot.ready = False  # back when Ray has restarted it
            slot.ping = slot.handle.info.remote()
        if running and slot is not None:
            slot.deaths += 1
        sends = self.attempts.get(job.line.line, 1)
        if job.kind == "plan":  # Ray already retried the task MAX_ATTEMPTS times
            yield self._error(job, f"the Ray planning task failed ({first_line(exc, limit=200)})")
            return
        if running and sends >= MAX_ATTEMPTS:
            yield self._error(job, f"the Ray worker died {sends} times on this line ({first_line(exc, limit=200)})")
            return
        if running:
            self.attempts[job.line.line] = sends + 1
        job.slot = None
        self.retry.append(job)
        self.summary.retried += 1

    def _error(self, job: _Job, message: str) -> Outcome:
        return finish_line(None, job.line, QiaError(message), self.options)

    def stop(self) -> None:
        """Cancel the planning tasks, let idle actors clear their scratch folders, kill every actor."""
        ray = self.ray
        for ref, job in list(self.inflight.items()):
            if job.kind == "plan":
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort while stopping
                    pass
        closing = [slot.handle.close.remote() for slot in self.slots if slot.ready and not slot.queue]
        try:
            ray.wait(closing, num_returns=len(closing), timeout=5)
        except Exception:  # noqa: BLE001 - best effort: the next batch on the node sweeps what is left
            pass
        for slot in self.slots:
            try:
                ray.kill(slot.handle, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
