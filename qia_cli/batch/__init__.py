"""`qia batch`: a file of requests planned and rendered headless, resumable, on this machine or on Ray.

- lines.py: the batch file, read as a stream of `Line`s (JSONL or plain text), checked before any work;
- results.py: `results.jsonl`, one `LineRecord` per line, appended under a lock and compacted at the end;
- claims.py: per-line locks in the output folder, so that two runs on one folder share the work;
- runner.py: the driver (`run_batch`) and the local runner;
- ray_runner.py: the Ray runner (`--ray`), a pool of actors that keep the pipeline warm.

Nothing here imports Typer or Rich; the CLI (qia_cli/cli/batch.py) shows the progress.
"""
