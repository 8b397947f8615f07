"""`qia batch --ray`: on a local Ray instance (2 CPUs) with the tiny pipeline, every line is rendered and
recorded exactly once, the records are a plain batch's, a rerun resumes, and a killed worker costs only
the line it was doing. One Ray instance serves the module and is shut down at its end."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import ray

from qia_cli import paths
from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.batch.lines import read_lines
from qia_cli.batch.ray_runner import Cluster, LineWorker, RayOptions, RayRunner, _scratch
from qia_cli.batch.results import LineRecord, Results
from qia_cli.batch.runner import BatchOptions, run_batch
from qia_cli.calllog.store import CallLog, Filters
from qia_cli.config import Settings
from qia_cli.llm.fake import FakeLLM
from tests.conftest import start_qia
from tests.test_batch import records
from tests.test_batch import run_batch as cli_batch

ROOT = Path(__file__).resolve().parents[1]
EIGHT = [f"a red bicycle number {i}" for i in range(1, 9)]


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """One local Ray instance for the module; its workers get an isolated QIA_HOME and no network."""
    home = tmp_path_factory.mktemp("ray-home")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        object_store_memory=200 * 2**20,
        runtime_env={
            "env_vars": {
                "QIA_HOME": str(home),
                "QIA_SEARCH": "off",
                "HF_HUB_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            }
        },
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def eight(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(EIGHT) + "\n")
    return path


def referenced(found: list[dict]) -> list[Path]:
    return sorted(Path(o["path"]) for r in found for o in r["outputs"])


def test_eight_lines_render_once_with_the_records_of_a_plain_batch(ray_local, tmp_path, eight, tiny_pipeline_dir, qia):
    out = tmp_path / "ray"
    code, summary, _ = cli_batch(
        qia, eight, out, tiny_pipeline_dir, "--seed", "100", "--ray", "local", "--workers", "2"
    )
    assert code == 0
    assert (summary["ok"], summary["failed"], summary["workers"], summary["retried"]) == (8, 0, 2, 0)
    found = records(out)
    assert [r["line"] for r in found] == list(range(1, 9))
    assert all(r["status"] == "ok" and r["rendered"] for r in found)
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 8 and referenced(found) == pngs  # each line once, every image referenced
    for record in found:  # the files are in OUTDIR, not the worker's folder, and name each other
        side = Path(record["outputs"][0]["sidecar"])
        assert side.parent == out and json.loads(side.read_text())["image"] == Path(record["outputs"][0]["path"]).name
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".results.jsonl.lock"]
    # The workers' model calls came back with their lines: the driver's call log has every plan, linked to
    # the images in OUTDIR (not the workers' folders).
    logged = {p["id"]: p for p in CallLog(paths.calllog_file()).query(Filters(plans=0))}
    assert set(logged) == {r["plan"]["id"] for r in found}
    for record in found:
        plan = logged[record["plan"]["id"]]
        assert plan["calls"] and plan["images"] == [o["path"] for o in record["outputs"]]

    plain = tmp_path / "plain"
    assert cli_batch(qia, eight, plain, tiny_pipeline_dir, "--seed", "100")[0] == 0
    for mine, theirs in zip(found, records(plain), strict=True):
        assert mine.keys() == theirs.keys()
        same = ("line", "id", "request", "hash", "status", "rendered", "render", "error")
        assert {k: mine[k] for k in same} == {k: theirs[k] for k in same}
        assert mine["plan"]["prompt"] == theirs["plan"]["prompt"]
        assert [(o["seed"], o["width"], o["height"]) for o in mine["outputs"]] == [
            (o["seed"], o["width"], o["height"]) for o in theirs["outputs"]
        ]

    code, summary, _ = cli_batch(qia, eight, out, tiny_pipeline_dir, "--ray", "local")
    assert (code, summary["ok"], summary["skipped"]) == (0, 0, 8)  # a rerun resumes: nothing to do
    assert records(out) == found and sorted(out.glob("*.png")) == pngs


class DiesOnce(LineWorker):
    """kill -9 of its own process in the middle of line 5, the first time any worker gets it."""

    def run(self, line, saved):
        marker = Path(self.context.options.render.outdir).parent / f"killed-{line.line}"
        if line.line == 5:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return super().run(line, saved)


class DiesAlways(LineWorker):
    """A line that takes its worker down every time (think: an image too big for the GPU)."""

    def run(self, line, saved):
        if line.line == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(line, saved)


def library_batch(tmp_path: Path, file: Path, pipeline: Path, worker: type) -> tuple:
    out = tmp_path / "out"
    agent = Agent(settings=Settings(llm="fake", search="off", image_model=str(pipeline)), llm=FakeLLM())
    options = BatchOptions(render=RenderOptions(steps=1, outdir=out), seed=100)
    seen: list[LineRecord] = []
    with Cluster("local") as cluster:
        runner = RayRunner(cluster, RayOptions(workers=2, worker_class=worker))
        summary = run_batch(agent, read_lines(file), Results(out), options, on_result=seen.append, runner=runner)
    return out, summary, seen


def test_a_killed_worker_costs_only_its_line_which_ends_ok_once(ray_local, tmp_path, eight, tiny_pipeline_dir):
    out, summary, seen = library_batch(tmp_path, eight, tiny_pipeline_dir, DiesOnce)
    killed = (tmp_path / "killed-5").read_text()  # the kill happened, to this process
    assert summary.retried >= 1 and (summary.ok, summary.failed) == (8, 0)
    assert sorted(r.line for r in seen) == list(range(1, 9))  # recorded once each, retries included
    found = records(out)
    assert [r["line"] for r in found] == list(range(1, 9)) and all(r["status"] == "ok" for r in found)
    assert referenced(found) == sorted(out.glob("*.png")) and len(found) == 8
    scratch = Path(_scratch() or tempfile.gettempdir())
    assert not list(scratch.glob(f"qia-ray-{killed}-*"))  # the restarted worker removed the dead one's folder


def test_a_line_that_kills_every_worker_is_an_error_and_a_bad_line_is_not_retried(
    ray_local, tmp_path, tiny_pipeline_dir
):
    path = tmp_path / "requests.jsonl"
    rows = [{"request": f"a lighthouse number {i}"} for i in range(1, 6)]
    rows[4]["size"] = "500x500"  # fails by itself: not a multiple of 8
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, summary, seen = library_batch(tmp_path, path, tiny_pipeline_dir, DiesAlways)
    assert (summary.ok, summary.failed) == (3, 2), [(r["line"], r.get("error")) for r in records(out)]
    assert sorted(r.line for r in seen) == [1, 2, 3, 4, 5]
    by_line = {r["line"]: r for r in records(out)}
    assert "the Ray worker died 3 times on this line" in by_line[3]["error"]
    assert "multiples of 8" in by_line[5]["error"]
    assert summary.retried >= 2  # line 3 was sent three times, line 5 once


def test_shared_outdir_workers_write_the_images_themselves(ray_local, tmp_path, eight, tiny_pipeline_dir, qia):
    eight.write_text("\n".join(EIGHT[:3]) + "\n")
    out = tmp_path / "shared"
    code, summary, _ = cli_batch(qia, eight, out, tiny_pipeline_dir, "--ray", "local", "--shared-outdir")
    assert code == 0 and (summary["ok"], summary["workers"]) == (3, 1)  # one per node without GPUs
    found = records(out)
    assert referenced(found) == sorted(out.glob("*.png")) and len(found) == 3


class _Stub(BaseHTTPRequestHandler):
    """The least an OpenAI-compatible server says: one model, a short completion, an empty JSON answer."""

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._send({"data": [{"id": "stub"}]})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls += 1
        if self.path.endswith("/chat/completions"):
            self._send({"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}]})
        else:
            self._send({"choices": [{"text": "a bicycle", "finish_reason": "stop"}]})

    def log_message(self, *args):
        pass


def test_with_an_llm_server_lines_are_planned_in_ray_tasks(ray_local, tmp_path, eight, qia):
    _Stub.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    out = tmp_path / "out"
    try:
        code, text, err = qia(
            "batch",
            str(eight),
            "--llm",
            f"openai:{url}",
            "--plan-only",
            "--ray",
            "local",
            "--jobs",
            "4",
            "--outdir",
            str(out),
            "--json",
        )
    finally:
        server.shutdown()
    assert code == 0, err
    summary = json.loads(text)
    assert (summary["ok"], summary["workers"]) == (8, 0)  # planning only: tasks, no render actors
    found = records(out)
    assert [r["line"] for r in found] == list(range(1, 9))
    assert all(r["plan"]["model"]["backend"] == "openai" for r in found) and _Stub.calls >= 8
    logged = CallLog(paths.calllog_file()).query(Filters(plans=0))  # the tasks' calls came back too
    assert {p["id"] for p in logged} == {r["plan"]["id"] for r in found} and all(p["calls"] for p in logged)


def test_a_server_that_is_down_stops_a_ray_batch(ray_local, tmp_path, eight, qia):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    out = tmp_path / "out"
    code, _, err = qia(
        "batch",
        str(eight),
        "--llm",
        f"openai:{url}",
        "--plan-only",
        "--ray",
        "local",
        "--outdir",
        str(out),
    )
    assert code == 3 and f"cannot reach the LLM server at {url}" in err  # the batch stopped
    found = records(out)
    assert len(found) >= 1 and all(r["status"] == "error" for r in found) and len(found) < 8


def test_qia_info_shows_the_cluster_it_is_pointed_at(ray_local):
    from qia_cli.cli.info import _ray, _ray_line

    data = _ray("auto")  # the running instance
    assert data["version"] == ray.__version__
    assert data["resources"]["cpus"] == 2 and data["resources"]["nodes"] == 1
    assert "1 node(s), 2 CPUs, 0 GPUs" in _ray_line(data)


def test_without_ray_installed_the_flag_fails_at_once(tmp_path, eight):
    out = tmp_path / "out"
    code = (
        "import sys; sys.modules['ray'] = None; from qia_cli.cli.app import main; "
        f"sys.argv = ['qia', 'batch', {str(eight)!r}, '--llm', 'fake', '--ray', 'local', '--outdir', {str(out)!r}]; "
        "main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert "--ray needs Ray, which is not installed" in proc.stderr and 'pip install "qia-cli[ray]"' in proc.stderr
    assert not out.exists()  # nothing started


def test_ray_addresses_are_checked_before_any_work(tmp_path, eight, qia):
    code, _, err = qia("batch", str(eight), "--llm", "fake", "--ray", "cluster-1")
    assert code == 2 and "unknown Ray address 'cluster-1'" in err and "ray://HOST:PORT" in err
    code, _, err = qia("batch", str(eight), "--llm", "fake", "--workers", "2")
    assert code == 2 and "need --ray" in err


def test_workers_recall_the_drivers_memory_and_the_driver_records_its_use(ray_local, tmp_path, qia):
    from qia_cli.memory.store import MemoryStore

    store = MemoryStore()  # the test's own QIA_HOME: workers never read it, they get a snapshot
    entry = store.add("Biscuit is my dog, a three-legged corgi")
    path = tmp_path / "prompts.txt"
    path.write_text("a birthday poster for my dog Biscuit\na lighthouse at dusk\n")
    out = tmp_path / "out"
    code, text, err = qia(
        "batch",
        str(path),
        "--llm",
        "fake",
        "--plan-only",
        "--ray",
        "local",
        "--outdir",
        str(out),
        "--json",
    )
    assert code == 0, err
    by_line = {r["line"]: r for r in records(out)}
    assert "three-legged corgi" in by_line[1]["plan"]["prompt"]
    assert any(e["source"] == "memory" and e["detail"] == entry.id for e in by_line[1]["plan"]["evidence"])
    assert store.get(entry.id).uses == 1  # written by the driver, once


def test_ctrl_c_stops_a_local_ray_batch_and_leaves_the_results_whole(tmp_path, eight, tiny_pipeline_dir):
    """A terminal's Ctrl-C reaches the whole process group: qia, and the Ray instance it started."""
    import time

    out = tmp_path / "out"
    args = [
        "--quiet",
        "batch",
        str(eight),
        "--llm",
        "fake",
        "--model",
        str(tiny_pipeline_dir),
        "--steps",
        "20",
        "--outdir",
        str(out),
        "--ray",
        "local",
        "--workers",
        "1",
    ]
    proc = start_qia(
        *args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # A run started in the background inherits SIGINT ignored; a user's terminal never sends it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    results = out / "results.jsonl"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not (results.exists() and results.read_text()):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        os.killpg(proc.pid, signal.SIGINT)
        stderr = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    found = [json.loads(line) for line in results.read_text().splitlines()]  # whole records only
    assert 1 <= len(found) < 8 and all(r["status"] == "ok" for r in found)
    assert referenced(found) == sorted(out.glob("*.png"))
    left = sorted(p.name for p in (out / ".qia-claims").glob("*")) if (out / ".qia-claims").exists() else None
    assert left is None, (left, stderr)  # no claim file left behind
    for _ in range(60):  # the Ray instance it started is gone with it
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("processes of the interrupted batch are still running")
