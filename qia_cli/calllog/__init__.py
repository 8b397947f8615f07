"""The call log: every model call a plan, a render's feedback or a benchmark makes, in one SQLite file.

- `record.py`: the wrapper around an LLM that notes each call, and the recording of one plan's calls;
- `link.py`: after a plan, which call's answer reached the prompt, and why the others did not;
- `store.py`: the SQLite database (`qia logs`), safe with parallel qia processes;
- `redact.py`: what never enters it (API keys, credentials in URLs, Authorization headers).

Nothing here imports sqlite3 until a log is read or written.
"""
