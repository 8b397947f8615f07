"""A stand-in for the Hugging Face Hub on 127.0.0.1, enough for huggingface_hub's downloads.

It answers what `hf_hub_download`, `snapshot_download` and `HfApi.model_info` ask:
- HEAD/GET /{org}/{repo}/resolve/{revision}/{path}: X-Repo-Commit, ETag and X-Linked-Etag (the sha256),
  X-Linked-Size and Content-Length, Accept-Ranges, and a Range request answered with 206;
- GET /api/models/{org}/{repo}[/revision/{rev}]: id, sha and siblings (with sizes);
- GET /api/models/{org}/{repo}/tree/{rev}?recursive=true: the file listing.
Unknown repositories and files get the Hub's 404s (X-Error-Code RepoNotFound / EntryNotFound).
Faults for tests: `drop_once` cuts a file's first GET off half-way; `status` answers a path with a code
(`fail_get`: its GETs only).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    sha: str
    files: dict[str, bytes]


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    drop_once: set[str] = field(default_factory=set)  # "org/repo/path": the first GET stops half-way
    status: dict[str, int] = field(default_factory=dict)  # "org/repo/path" -> HTTP status for GET and HEAD
    fail_get: dict[str, int] = field(default_factory=dict)  # "org/repo/path" -> HTTP status for GET only
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)
    url: str = ""

    def add(self, repo: str, files: dict[str, bytes]) -> Repo:
        sha = hashlib.sha1(repo.encode() + "".join(sorted(files)).encode()).hexdigest()
        self.repos[repo] = Repo(sha, dict(files))
        return self.repos[repo]

    def add_folder(self, repo: str, folder: Path) -> Repo:
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()
        }
        return self.add(repo, files)

    def gets(self, suffix: str = "") -> list[tuple[str, str, str | None]]:
        return [
            entry for entry in self.log if entry[0] == "GET" and "/resolve/" in entry[1] and entry[1].endswith(suffix)
        ]


RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, str(value))
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, data, status: int = 200) -> None:
            self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _error(self, code: str, status: int = 404, head: bool = False, extra: dict | None = None) -> None:
            body = json.dumps({"error": code}).encode()
            self._send(
                status,
                b"" if head else body,
                {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json", **(extra or {})},
                head=head,
            )

        def _repo(self, name: str, rev: str | None) -> Repo | None:
            repo = hub.repos.get(name)
            if repo is None or (rev not in (None, "main", repo.sha)):
                return None
            return repo

        def do_HEAD(self) -> None:
            self._resolve(head=True)

        def do_GET(self) -> None:
            path = unquote(urlparse(self.path).path)
            if path.startswith("/api/"):
                hub.log.append(("GET", path, None))
                self._api(path)
            else:
                self._resolve(head=False)

        def _api(self, path: str) -> None:
            match = TREE.match(path)
            if match:
                repo = self._repo(match["repo"], match["rev"])
                if repo is None:
                    return self._error("RepoNotFound")
                entries, dirs = [], set()
                for name, data in sorted(repo.files.items()):
                    parts = name.split("/")
                    dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
                    entries.append(
                        {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    )
                entries += [
                    {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
                    for d in sorted(dirs)
                ]
                return self._json(entries)
            match = API.match(path)
            if match:
                repo = self._repo(match["repo"], match["rev"])
                if repo is None:
                    return self._error("RepoNotFound")
                siblings = [
                    {"rfilename": n, "size": len(d), "blobId": hashlib.sha1(d).hexdigest()}
                    for n, d in sorted(repo.files.items())
                ]
                return self._json({"id": match["repo"], "sha": repo.sha, "siblings": siblings, "private": False})
            self._error("NotFound")

        def _resolve(self, head: bool) -> None:
            path = unquote(urlparse(self.path).path)
            match = RESOLVE.match(path)
            rng = self.headers.get("Range")
            hub.log.append(("HEAD" if head else "GET", path, rng))
            if not match:
                return self._error("NotFound", head=head)
            key = f"{match['repo']}/{match['path']}"
            if key in hub.status:
                return self._send(hub.status[key], b"", head=head)
            repo = self._repo(match["repo"], match["rev"])
            if repo is None:
                return self._error("RepoNotFound", head=head)
            data = repo.files.get(match["path"])
            if data is None:
                return self._error("EntryNotFound", head=head, extra={"X-Repo-Commit": repo.sha})
            digest = hashlib.sha256(data).hexdigest()
            headers = {
                "X-Repo-Commit": repo.sha,
                "ETag": f'"{digest}"',
                "X-Linked-Etag": f'"{digest}"',
                "X-Linked-Size": len(data),
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            start, status = 0, 200
            found = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if found and not head:
                start, status = int(found.group(1)), 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            headers["Content-Length"] = len(body) if not head else len(data)
            if head:
                return self._send(200, b"", headers, head=True)
            if key in hub.fail_get:
                return self._send(hub.fail_get[key], b"", {"Content-Type": "text/plain"})
            if key in hub.drop_once and start == 0:
                hub.drop_once.discard(key)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the connection drops mid-file
                return
            self._send(status, body, headers)

    return Handler


class HubServer:
    """Runs a FakeHub on 127.0.0.1 in a thread: `with HubServer(hub) as url: ...`."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        self.server.daemon_threads = True
        hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.hub.url

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
