"""`qia batch`: every line planned and rendered, failures kept per line, resume without duplicates or losses."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qia_cli.batch.lines import read_lines
from qia_cli.batch.results import Results
from qia_cli.errors import UsageError
from tests.conftest import start_qia

LINES = [
    "a red bicycle",
    "",
    "# a comment",
    '{"request": "a cat in a hat", "seed": 3, "id": "cat"}',
    "a blue house at dusk",
    '{"request": "a tree on a hill", "count": 2}',
    "a lighthouse",
]
REQUEST_LINES = [1, 4, 5, 6, 7]


@pytest.fixture
def batch_file(tmp_path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def run_batch(qia, file: Path, outdir: Path, pipeline: Path, *extra: str):
    code, out, err = qia(
        "batch",
        str(file),
        "--llm",
        "fake",
        "--search",
        "off",
        "--model",
        str(pipeline),
        "--steps",
        "1",
        "--outdir",
        str(outdir),
        "--json",
        *extra,
    )
    return code, json.loads(out), err


def records(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / "results.jsonl").read_text().splitlines()]


def test_all_lines_rendered_then_a_rerun_skips_them(tmp_path, batch_file, tiny_pipeline_dir, qia):
    out = tmp_path / "out"
    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir, "--seed", "100")
    assert code == 0
    assert (summary["total"], summary["ok"], summary["failed"], summary["skipped"]) == (5, 5, 0, 0)
    found = records(out)
    assert [r["line"] for r in found] == REQUEST_LINES
    assert all(r["status"] == "ok" and r["rendered"] and r["error"] is None for r in found)
    by_line = {r["line"]: r for r in found}
    assert by_line[4]["id"] == "cat" and by_line[4]["request"] == "a cat in a hat"
    assert by_line[1]["plan"]["request"] == "a red bicycle" and by_line[1]["plan"]["prompt"]
    # --seed is a base: line N gets SEED+N-1, unless the line sets its own
    assert [o["seed"] for o in by_line[1]["outputs"]] == [100]
    assert [o["seed"] for o in by_line[4]["outputs"]] == [3]
    assert [o["seed"] for o in by_line[6]["outputs"]] == [105, 106]
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 6
    assert all(Path(o["path"]).is_file() for r in found for o in r["outputs"])

    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir, "--seed", "100")
    assert code == 0
    assert (summary["ok"], summary["skipped"]) == (0, 5)
    assert sorted(out.glob("*.png")) == pngs
    assert records(out) == found


def test_a_failing_line_does_not_stop_the_others(tmp_path, batch_file, tiny_pipeline_dir, qia):
    lines = list(LINES)
    lines[4] = '{"request": "a blue house", "size": "500x500"}'
    batch_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, summary, err = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 1
    assert (summary["ok"], summary["failed"]) == (4, 1)
    failed = [r for r in records(out) if r["status"] == "error"]
    assert [r["line"] for r in failed] == [5]
    assert "500x500" in failed[0]["error"] and "multiples of 8" in failed[0]["error"]
    assert failed[0]["outputs"] == []
    assert "line 5: error" in err

    # a rerun retries only the failure, and the file keeps one record per line
    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 1
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (0, 1, 4)
    assert [r["line"] for r in records(out)] == REQUEST_LINES


def test_resume_after_a_crash_mid_file(tmp_path, batch_file, tiny_pipeline_dir, qia):
    out = tmp_path / "out"
    assert run_batch(qia, batch_file, out, tiny_pipeline_dir)[0] == 0
    full = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # the state a crash leaves: two complete records and half of the third, then no newline
    (out / "results.jsonl").write_text(full[0] + full[1] + full[2][: len(full[2]) // 2])
    kept = [json.loads(full[0]), json.loads(full[1])]

    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 0
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (3, 2, 0)
    found = records(out)
    assert [r["line"] for r in found] == REQUEST_LINES  # no duplicates, no losses
    assert found[:2] == kept  # the lines done before the crash were not redone
    assert all(r["status"] == "ok" for r in found)


def test_killed_process_resumes(tmp_path, batch_file, tiny_pipeline_dir, qia):
    out = tmp_path / "out"
    args = [
        "--quiet",
        "batch",
        str(batch_file),
        "--llm",
        "fake",
        "--model",
        str(tiny_pipeline_dir),
        "--steps",
        "2",
        "--outdir",
        str(out),
    ]
    proc = start_qia(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = out / "results.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and results.read_text().count("\n") >= 2:
                break
            time.sleep(0.02)
        assert results.exists(), f"the batch wrote no result in time (exit {proc.poll()})"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        stderr = proc.communicate(timeout=30)[1]
    assert proc.returncode == -signal.SIGKILL or proc.returncode == 0, stderr
    before = [json.loads(line) for line in results.read_text().splitlines()]  # every record is whole
    assert len(before) >= 2

    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 0
    found = records(out)
    assert [r["line"] for r in found] == REQUEST_LINES
    assert summary["skipped"] == len(before) and summary["ok"] == 5 - len(before)
    assert found[: len(before)] == before


def test_plan_only_then_render_uses_the_saved_plans(tmp_path, batch_file, tiny_pipeline_dir, qia):
    out = tmp_path / "out"
    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir, "--plan-only")
    assert code == 0 and summary["ok"] == 5
    planned = records(out)
    assert all(
        r["status"] == "ok" and not r["rendered"] and r["outputs"] == [] and r["plan"]["prompt"] for r in planned
    )
    assert not list(out.glob("*.png"))

    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 0 and (summary["ok"], summary["skipped"]) == (5, 0)
    rendered = records(out)
    assert [r["line"] for r in rendered] == REQUEST_LINES
    assert all(r["rendered"] and r["outputs"] for r in rendered)
    assert [r["plan"] for r in rendered] == [r["plan"] for r in planned]


def test_shard_keeps_file_line_numbers(tmp_path, batch_file, qia):
    out = tmp_path / "out"
    code, out_text, _ = qia(
        "batch",
        str(batch_file),
        "--llm",
        "fake",
        "--plan-only",
        "--shard",
        "2/2",
        "--outdir",
        str(out),
        "--json",
    )
    assert code == 0 and json.loads(out_text)["total"] == 2
    assert [r["line"] for r in records(out)] == [4, 6]
    code, _, err = qia("batch", str(batch_file), "--llm", "fake", "--shard", "3/2")
    assert code == 2 and "invalid shard" in err


@pytest.mark.parametrize(
    "content, message",
    [
        ('a cat\n{"request": "a dog",\n', "requests.jsonl:2 is not valid JSON"),
        ('{"prompt": "a dog"}\n', "unknown field 'prompt'"),
        ('{"seed": 3}\n', 'no "request"'),
        ('{"request": "a dog", "count": "two"}\n', '"count" must be int'),
        ("\n# only a comment\n", "has no requests"),
    ],
)
def test_bad_file_exits_2_before_any_work(tmp_path, content, message, qia):
    path = tmp_path / "requests.jsonl"
    path.write_text(content)
    code, out, err = qia("batch", str(path), "--llm", "fake", "--outdir", str(tmp_path / "out"))
    assert code == 2
    assert message in err and out == ""
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_missing_file(tmp_path, qia):
    code, _, err = qia("batch", str(tmp_path / "nope.txt"), "--llm", "fake")
    assert code == 2 and "batch file not found" in err


def test_read_lines_text_and_json(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text('# header\n  a red bicycle  \n\n{"request": "a cat", "id": 7}\n')
    lines = read_lines(path)
    assert [(x.line, x.request, x.id) for x in lines] == [(2, "a red bicycle", None), (4, "a cat", "7")]
    assert lines[0].key != lines[1].key
    with pytest.raises(UsageError):
        read_lines(tmp_path)


def _append_many(folder: str, tag: int) -> None:
    results = Results(Path(folder))
    for i in range(150):
        results.append({"line": i, "hash": f"h{tag}", "status": "ok", "pad": str(tag) * 9000})


def test_appends_from_two_processes_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), tag)) for tag in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 300
    assert all(json.loads(line)["pad"] in ("1" * 9000, "2" * 9000) for line in lines)


def test_a_server_that_is_down_stops_the_batch(tmp_path, batch_file, qia):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # closed once the block ends
    out = tmp_path / "out"
    code, _, err = qia("batch", str(batch_file), "--llm", f"openai:{url}", "--plan-only", "--outdir", str(out))
    assert code == 3  # the batch stopped: not the 1 of lines that failed
    assert f"cannot reach the LLM server at {url}: connection refused" in err
    found = records(out)
    assert [(r["line"], r["status"]) for r in found] == [(1, "error")]  # the rest were not tried


# -- a byte-order mark, and text lines that start with "{" ---------------------------------------------
def test_a_bom_does_not_turn_the_first_json_line_into_text(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"request": "a cat in a hat", "seed": 3}\n{"request": "a dog"}\n')
    lines = read_lines(path)
    assert [(x.line, x.request, x.seed) for x in lines] == [(1, "a cat in a hat", 3), (2, "a dog", None)]
    text = tmp_path / "prompts.txt"
    text.write_bytes("\ufeffa red bicycle\n".encode("utf-8"))
    assert [x.request for x in read_lines(text)] == ["a red bicycle"]


def test_a_text_line_that_starts_with_a_brace_is_a_request(tmp_path, qia):
    path = tmp_path / "prompts.txt"
    path.write_text("{red} balloons over a city\na lighthouse\n{ a stylised logo }\n")
    assert [x.request for x in read_lines(path)] == [
        "{red} balloons over a city",
        "a lighthouse",
        "{ a stylised logo }",
    ]
    out = tmp_path / "out"
    code, out_text, _ = qia("batch", str(path), "--llm", "fake", "--plan-only", "--outdir", str(out), "--json")
    assert code == 0 and json.loads(out_text)["ok"] == 3
    assert records(out)[0]["request"] == "{red} balloons over a city"


@pytest.mark.parametrize(
    "name, content",
    [
        ("requests.jsonl", "{red} balloons\n"),  # a JSONL file: every "{" line is JSON
        ("prompts.txt", '{"request": "a dog"}\n{red} balloons\n'),  # a JSON record makes the file JSONL
        ("prompts.txt", 'a cat\n{"request": "a dog",\n'),  # starts like JSON: a broken record, not a request
    ],
)
def test_a_broken_json_line_is_still_refused_where_json_is_meant(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UsageError, match="is not valid JSON"):
        read_lines(path)


# -- two runs on one output folder -----------------------------------------------------------------
def test_lines_claimed_by_another_run_are_left_to_it(tmp_path, batch_file, tiny_pipeline_dir, qia):
    from qia_cli.batch.claims import Claims

    out = tmp_path / "out"
    other = Claims(out)  # another run (here: another Claims, as a second process would hold) is on lines 1 and 5
    assert other.take(1) and other.take(5)
    code, summary, err = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 0
    assert (summary["ok"], summary["elsewhere"]) == (3, 2)
    assert [r["line"] for r in records(out)] == [4, 6, 7]
    assert "line 1: taken by another qia batch" in err
    other.release_all()
    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert (code, summary["ok"], summary["skipped"], summary["elsewhere"]) == (0, 2, 3, 0)
    found = records(out)
    assert [r["line"] for r in found] == REQUEST_LINES
    assert sorted(out.glob("*.png")) == sorted(Path(o["path"]) for r in found for o in r["outputs"])
    assert not (out / ".qia-claims").exists()  # nothing left behind


def test_a_line_done_by_another_run_after_this_one_started_is_not_redone(tmp_path, batch_file, monkeypatch, qia):
    from qia_cli.batch.results import Results

    out = tmp_path / "out"
    seen = []

    def finish_line_4_elsewhere(record):  # when line 1 is recorded, another run records line 4
        seen.append(record.line)
        if record.line == 1:
            other = record.model_copy(update={"line": 4, "hash": read_lines(batch_file)[1].key, "request": "x"})
            Results(out).append(other)

    from qia_cli.batch import runner as batch_mod

    real = batch_mod.run_batch
    monkeypatch.setattr(batch_mod, "run_batch", lambda *a, **k: real(*a, **{**k, "on_result": finish_line_4_elsewhere}))
    code, out_text, _ = qia("batch", str(batch_file), "--llm", "fake", "--plan-only", "--outdir", str(out), "--json")
    summary = json.loads(out_text)
    assert code == 0 and (summary["ok"], summary["elsewhere"]) == (4, 1)
    assert seen == [1, 5, 6, 7]
    assert [r["line"] for r in records(out)] == REQUEST_LINES


def hold_line_3(outdir: Path) -> subprocess.Popen:
    """Another process that claims line 3 in `outdir` and holds it until it is killed."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from qia_cli.batch.claims import Claims; "
            "assert Claims(sys.argv[1]).take(3); print('held', flush=True); time.sleep(600)",
            str(outdir),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_claim_dies_with_its_process(tmp_path):
    from qia_cli.batch.claims import Claims

    holder = hold_line_3(tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = Claims(tmp_path)
        assert not mine.take(3) and mine.take(4)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert mine.take(3)  # kill -9 released it
    mine.release_all()
    assert not (tmp_path / ".qia-claims").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX claim files")
def test_the_end_of_a_run_removes_claim_files_nobody_holds_and_keeps_the_held_ones(tmp_path):
    """A run killed with -9 (or interrupted between creating a claim file and locking it) leaves an empty
    file behind; the next run to finish removes it, but never a claim another live run holds."""
    from qia_cli.batch.claims import Claims

    holder = hold_line_3(tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        folder = tmp_path / ".qia-claims"
        (folder / "7.lock").write_text("")  # left by a dead run
        mine = Claims(tmp_path)
        assert mine.take(4)
        mine.release_all()
        assert sorted(p.name for p in folder.iterdir()) == ["3.lock"]
        assert not Claims(tmp_path).take(3)  # still the live holder's
    finally:
        holder.kill()
        holder.wait(timeout=30)
    last = Claims(tmp_path)
    last.release_all()
    assert not folder.exists()


def test_two_batches_on_one_folder_render_each_line_once(tmp_path, tiny_pipeline_dir):
    path = tmp_path / "prompts.txt"
    path.write_text("".join(f"a red bicycle number {i}\n" for i in range(1, 7)))
    out = tmp_path / "out"
    args = [
        "--quiet",
        "batch",
        str(path),
        "--llm",
        "fake",
        "--model",
        str(tiny_pipeline_dir),
        "--steps",
        "2",
        "--outdir",
        str(out),
        "--json",
    ]
    procs = [start_qia(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    summaries = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        summaries.append(json.loads(stdout))
    assert sum(s["ok"] for s in summaries) == 6  # every line rendered by exactly one of them
    found = records(out)
    assert [r["line"] for r in found] == [1, 2, 3, 4, 5, 6] and all(r["status"] == "ok" for r in found)
    assert sorted(out.glob("*.png")) == sorted(Path(o["path"]) for r in found for o in r["outputs"])


# -- render inputs are checked before any line is planned ---------------------------------------------
@pytest.mark.parametrize(
    "content, flags, message",
    [
        ("a red bicycle\na lighthouse\n", ["--model", "./nope"], "model folder ./nope does not exist"),
        ("a red bicycle\n", ["--model", "nobody/not-cached"], "model nobody/not-cached is not in the Hugging Face"),
        ("a red bicycle\n", [], "is not in the Hugging Face cache"),  # the default model, not pulled (offline)
        ('{"request": "a cat", "model": "./gone"}\n', ["--model", "./nope"], "requests.jsonl:1: model folder ./gone"),
        ("a red bicycle\n", ["--size", "500x500"], "multiples of 8"),
    ],
)
def test_bad_render_inputs_exit_2_before_any_line_is_planned(
    tmp_path, monkeypatch, tiny_pipeline_dir, content, flags, message, qia
):
    from qia_cli.agent.run import Agent

    path = tmp_path / "requests.jsonl"
    path.write_text(content)
    planned = []
    monkeypatch.setattr(Agent, "plan", lambda self, request, options=None: planned.append(request))
    out = tmp_path / "out"
    code, stdout, err = qia("batch", str(path), "--llm", "fake", "--outdir", str(out), *flags)
    assert code == 2 and message in err and stdout == ""
    assert planned == [] and not out.exists()  # nothing planned, no results.jsonl, not even the folder


def test_lines_with_their_own_model_do_not_need_the_default_one(tmp_path, tiny_pipeline_dir, qia):
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps({"request": "a cat", "model": str(tiny_pipeline_dir)}) + "\n")
    out = tmp_path / "out"
    code, _, err = qia("batch", str(path), "--llm", "fake", "--steps", "1", "--outdir", str(out))
    assert code == 0, err  # the default model (not pulled here) is never used, so never checked
    assert [r["status"] for r in records(out)] == ["ok"]


# -- memory stays flat in the number of lines -------------------------------------------------------------
def _resume_peak(tmp_path: Path, n: int) -> int:
    """Peak traced memory of a rerun over N lines that are all done, each record with a 20 KB plan: the file
    is read, every record read back, the results compacted. Nothing is planned."""
    import tracemalloc

    from qia_cli.agent.run import Agent, RenderOptions
    from qia_cli.batch.lines import BatchFile
    from qia_cli.batch.runner import BatchOptions
    from qia_cli.batch.runner import run_batch as run
    from qia_cli.config import Settings
    from qia_cli.llm.fake import FakeLLM

    path = tmp_path / f"requests-{n}.txt"
    path.write_text("".join(f"a red bicycle number {i} leaning on a wall\n" for i in range(1, n + 1)))
    folder = tmp_path / f"out-{n}"
    folder.mkdir()
    with open(folder / "results.jsonl", "w") as fh:
        for line in BatchFile(path):
            plan = {"request": line.request, "prompt": "x" * 20_000}
            fh.write(json.dumps({"line": line.line, "hash": line.key, "status": "ok", "plan": plan}) + "\n")
    before = (folder / "results.jsonl").read_bytes()
    agent = Agent(settings=Settings(llm="fake", search="off"), llm=FakeLLM())
    options = BatchOptions(render=RenderOptions(outdir=folder), plan_only=True)
    tracemalloc.start()
    try:
        summary = run(agent, BatchFile(path), Results(folder), options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (summary.total, summary.skipped, summary.ok) == (n, n, 0)
    assert (folder / "results.jsonl").read_bytes() == before  # compacted: one record per line, all kept
    return peak


def test_a_rerun_streams_the_file_and_the_records(tmp_path):
    small, large = _resume_peak(tmp_path, 100), _resume_peak(tmp_path, 1500)
    # 1,400 more lines hold 28 MB more of records; a streamed run holds a few bytes a line of them
    assert large - small < 1_000_000, (small, large)


# -- a kill between saving a line's images and recording it ------------------------------------------------
KILLED_RUN = """
import os, signal, sys
from qia_cli.batch import results
from qia_cli.imaging import output

if sys.argv[1] == "before-record":  # line 5's image is saved, its record not yet written
    append = results.Results.append
    def killing_append(self, record):
        if record.line == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        append(self, record)
    results.Results.append = killing_append
else:  # "mid-line": line 6 asks for two images; the kill comes before the second is saved
    save, calls = output.save_image, []
    def killing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return save(*args, **kwargs)
    output.save_image = killing_save
from qia_cli.cli.app import main
sys.argv = ["qia", "--quiet", "batch", *sys.argv[2:]]
main()
"""


def _killed_run(when: str, file: Path, out: Path, pipeline: Path) -> None:
    args = [str(file), "--llm", "fake", "--model", str(pipeline), "--steps", "1", "--outdir", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, when, *args],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def referenced(found: list[dict]) -> list[Path]:
    return sorted(Path(o["path"]) for r in found for o in r["outputs"])


def test_images_a_killed_run_saved_without_a_record_are_adopted(tmp_path, batch_file, tiny_pipeline_dir, qia):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.png").write_bytes(b"not qia's")  # a file of the user's, and a sidecar without a batch tag
    (out / "mine.json").write_text('{"image": "mine.png", "line": 5}')
    _killed_run("before-record", batch_file, out, tiny_pipeline_dir)
    assert [r["line"] for r in records(out)] == [1, 4]
    (left,) = set(out.glob("*.png")) - set(referenced(records(out))) - {out / "mine.png"}  # line 5's image
    stamp = left.stat().st_mtime_ns

    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 0 and (summary["ok"], summary["skipped"]) == (3, 2)
    found = records(out)
    assert [r["line"] for r in found] == REQUEST_LINES and all(r["status"] == "ok" for r in found)
    line_5 = found[2]
    assert [o["path"] for o in line_5["outputs"]] == [str(left)] and left.stat().st_mtime_ns == stamp  # not redone
    assert line_5["plan"]["request"] == "a blue house at dusk" and line_5["render"]["steps"] == 1
    assert sorted(out.glob("*.png")) == sorted([*referenced(found), out / "mine.png"])  # no image without a record
    assert (out / "mine.json").exists()


def test_a_line_killed_between_its_images_renders_again_and_leaves_no_orphan(
    tmp_path, batch_file, tiny_pipeline_dir, qia
):
    out = tmp_path / "out"
    _killed_run("mid-line", batch_file, out, tiny_pipeline_dir)
    assert [r["line"] for r in records(out)] == [1, 4, 5]
    assert len(list(out.glob("*.png"))) == 4  # line 6 got one of its two images

    code, summary, _ = run_batch(qia, batch_file, out, tiny_pipeline_dir)
    assert code == 0 and (summary["ok"], summary["skipped"]) == (2, 3)
    found = records(out)
    assert [len(r["outputs"]) for r in found] == [1, 1, 1, 2, 1]
    assert sorted(out.glob("*.png")) == referenced(found)
    assert sorted(out.glob("*.json")) == sorted(Path(o["sidecar"]) for r in found for o in r["outputs"])


def test_ctrl_c_says_how_far_the_batch_got_and_that_a_rerun_resumes(tmp_path, batch_file, monkeypatch, qia):
    from qia_cli.cli import console

    out = tmp_path / "out"
    append, calls = Results.append, []

    def interrupted_at_the_third_record(self, record):
        calls.append(record.line)
        if len(calls) == 3:
            raise KeyboardInterrupt
        append(self, record)

    monkeypatch.setattr(Results, "append", interrupted_at_the_third_record)
    monkeypatch.setattr(console.state, "quiet", False)  # --quiet sets it for the process: put it back after
    code, stdout, err = qia("--quiet", "batch", str(batch_file), "--llm", "fake", "--plan-only", "--outdir", str(out))
    assert code == 130 and stdout == ""
    assert f"interrupted: 2 of 5 lines done (2 in this run); records in {out / 'results.jsonl'}" in err
    assert "run the same command again to resume" in err
    assert [r["line"] for r in records(out)] == [1, 4]


def test_a_record_is_one_json_line_with_its_fields_in_order(tmp_path, batch_file, qia):
    out = tmp_path / "out"
    code, _, err = qia("batch", str(batch_file), "--llm", "fake", "--plan-only", "--outdir", str(out))
    assert code == 0, err
    first, *_ = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(first)
    fields = ["line", "id", "request", "hash", "status", "rendered", "outputs", "plan", "render", "error", "seconds"]
    assert list(record) == fields and first.startswith('{"line": 1, "id": null, "request": "a red bicycle", "hash": "')
    assert (record["status"], record["rendered"], record["outputs"], record["render"]) == ("ok", False, [], None)
