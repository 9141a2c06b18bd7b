"""A local stand-in for the Hugging Face Hub HTTP API, for end-to-end push/pull tests.

It speaks what the real `huggingface_hub` client (2.4) sends when `HF_ENDPOINT` points at it and
`HF_HUB_DISABLE_XET=1` (the plain git/LFS protocol, not Xet):

- `create_repo`:        POST /api/repos/create (the repo starts with the Hub's default `.gitattributes`)
- `upload_folder` / `create_commit`:
                        POST /api/validate-yaml (README front matter), POST /api/{type}s/{id}/preupload/{rev}
                        ("lfs" for paths the repo's `.gitattributes` sends to LFS, else "regular"),
                        POST /{id}.git/info/lfs/objects/batch, PUT of the bytes to the "CDN",
                        POST /{id}.git/info/lfs/objects/verify, POST /api/{type}s/{id}/commit/{rev} (NDJSON)
- `repo_info`, `list_repo_tree`: GET /api/{type}s/{id}[/revision/{rev}], GET /api/{type}s/{id}/tree/{rev}[/{path}]
- `hf_hub_download`:    HEAD/GET /{id}/resolve/{rev}/{path}; like the Hub, LFS files answer 302 to a second
                        port (the "CDN", a different origin) with X-Linked-Etag / X-Linked-Size.

Any other request gets a 404 and is listed in `HubServer.unhandled`, so a failing test says which
endpoint a newer client needs. Written by hand: no installed library serves the Hub API
(huggingface_hub ships only the client).

    with HubServer(tmp_path / "hub") as hub:
        subprocess.run([...], env=hub.client_env(tmp_path / "hf_home"), check=True)
        hub.files("user/tiny")        # {path: bytes} at main
        hub.endpoints()               # ["create_repo", "validate_yaml", "preupload", ...]
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# The `.gitattributes` the Hub puts in every new model repo (abridged to its LFS lines).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
        "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
        "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
    )
)
LFS_SIZE_LIMIT = 10 * 1024**2  # the Hub refuses regular (non-LFS) files above 10 MB
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}

API_RE = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+?)(?:/(preupload|commit|revision|tree)/([^/]+)(/.*)?)?$")
LFS_RE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/(batch|verify)$")
RESOLVE_RE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


@dataclass(frozen=True)
class Blob:
    """A file in a commit: its content's sha256 and size; `git_oid` as git would name it."""

    sha256: str
    size: int
    lfs: bool
    git_oid: str

    @classmethod
    def lfs_file(cls, sha256: str, size: int) -> Blob:
        # In git an LFS file is its pointer text, so its git oid is the pointer's.
        return cls(sha256, size, True, _git_sha1(_lfs_pointer(sha256, size)))

    @property
    def pointer(self) -> bytes:
        return _lfs_pointer(self.sha256, self.size)


@dataclass
class Commit:
    oid: str
    message: str
    parent: str | None
    tree: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


@dataclass(frozen=True)
class Request:
    """One request the server received: `endpoint` is None for requests it has no handler for;
    `authorized` tells whether it carried the server's token."""

    method: str
    path: str
    query: dict[str, list[str]]
    endpoint: str | None
    status: int
    authorized: bool


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 body: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.body = body or {}


class HubServer:
    """The local Hub: an API port (`url`) and a "CDN" port (`cdn_url`) for LFS bytes, files under `root`.

    Args:
        root: directory for the stored objects (content-addressed by sha256).
        token: the only token accepted for writes (sent by the client as `Authorization: Bearer ...`).
        user: the namespace of repos created without one.
    """

    def __init__(self, root: str | Path, *, token: str = "hf_test_local_hub_token", user: str = "user") -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[Request] = []
        self._lock = threading.RLock()
        self._servers = [_Server(("127.0.0.1", 0), _Handler, self, role) for role in ("hub", "cdn")]
        self._threads: list[threading.Thread] = []
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HubServer:
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, name=f"hub-{server.role}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client_env(self, hf_home: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess whose huggingface_hub should talk to this server only."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.startswith(("HF_", "HUGGING_FACE_"))}
        env.update(
            HF_ENDPOINT=self.url,
            HF_HOME=str(hf_home),
            HF_TOKEN=self.token,
            HF_HUB_DISABLE_XET="1",  # plain LFS: this server does not speak the Xet protocol
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return env

    # -- inspection --------------------------------------------------------------------------

    def endpoints(self) -> list[str | None]:
        with self._lock:
            return [r.endpoint for r in self.requests]

    @property
    def unhandled(self) -> list[str]:
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests if r.endpoint is None]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Every file of a repo at `revision`, with its bytes."""
        with self._lock:
            repo = self.repos[(repo_type, repo_id)]
            commit = repo.resolve(revision)
            if commit is None:
                raise KeyError(f"{repo_id}: no revision {revision!r}")
            return {path: self._read(blob.sha256) for path, blob in sorted(commit.tree.items())}

    # -- storage -----------------------------------------------------------------------------

    def _regular(self, data: bytes) -> Blob:
        return Blob(self._store(data), len(data), False, _git_sha1(data))

    def _store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self.objects / sha
        if not target.exists():
            tmp = target.with_name(f"{sha}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return sha

    def _read(self, sha256: str) -> bytes:
        return (self.objects / sha256).read_bytes()

    def _has_object(self, sha256: str, size: int) -> bool:
        path = self.objects / sha256
        return path.is_file() and path.stat().st_size == size

    def _commit(self, repo: Repo, branch: str, message: str, tree: dict[str, Blob]) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(json.dumps(
            [parent, message, len(repo.commits), sorted((p, b.sha256) for p, b in tree.items())]
        ).encode())
        commit = Commit(digest.hexdigest(), message, parent, tree)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, hub: HubServer, role: str) -> None:
        super().__init__(address, handler)
        self.hub, self.role = hub, role


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub; every answer carries Content-Length
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; requests are recorded
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.body = self._read_body()
        endpoint, handler = self._route(url.path)
        try:
            if handler is None:
                raise HubError(404, f"local test Hub (tests/hub_server.py): no handler for {self.command} {url.path}")
            status, headers, body = handler(*self.route_args)
        except Exception as err:  # noqa: BLE001 - any failure becomes an answer the client can report
            if not isinstance(err, HubError):  # a malformed payload: 400 (not 5xx, which the client retries)
                err = HubError(400, f"local test Hub: {type(err).__name__}: {err}")
            status, body = err.status, json.dumps({"error": err.message, **err.body}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": err.message.splitlines()[0], **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
        with self.hub._lock:
            self.hub.requests.append(Request(self.command, url.path, self.query, endpoint, status, self._authorized))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip(), 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, path: str) -> tuple[str | None, Any]:
        cmd, role = self.command, self.server.role
        self.route_args: tuple = ()
        if role == "cdn":
            if cmd == "PUT" and (m := re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)):
                self.route_args = (m[1],)
                return "lfs_upload", self.lfs_upload
            if cmd in ("GET", "HEAD") and (m := re.fullmatch(r"/lfs-objects/([0-9a-f]{64})", path)):
                self.route_args = (m[1],)
                return "lfs_download", self.lfs_download
            return None, None
        if cmd == "POST" and path == "/api/repos/create":
            return "create_repo", self.create_repo
        if cmd == "POST" and path == "/api/validate-yaml":
            return "validate_yaml", self.validate_yaml
        if m := API_RE.match(path):
            repo_key = (REPO_TYPES[m[1]], m[2])
            action, rev, sub = m[3], unquote(m[4] or "main"), unquote((m[5] or "/")[1:])
            self.route_args = (repo_key, rev, sub)
            routes = {("POST", "preupload"): "preupload", ("POST", "commit"): "commit",
                      ("GET", None): "repo_info", ("GET", "revision"): "repo_info", ("GET", "tree"): "tree"}
            if name := routes.get((cmd, action)):
                return name, getattr(self, name)
            return None, None
        if cmd == "POST" and (m := LFS_RE.match(path)):
            self.route_args = ((REPO_TYPES.get(m[1] or "models", "model"), m[2]),)
            return f"lfs_{m[3]}", getattr(self, f"lfs_{m[3]}")
        if cmd in ("GET", "HEAD") and (m := RESOLVE_RE.match(path)):
            self.route_args = ((REPO_TYPES.get(m[1] or "models", "model"), m[2]), unquote(m[3]), unquote(m[4]))
            return "resolve", self.resolve
        return None, None

    def _json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except json.JSONDecodeError as err:
            raise HubError(400, f"request body is not JSON: {err}") from err

    @property
    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _check_token(self) -> None:
        if not self._authorized:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, key: tuple[str, str], *, write: bool = False) -> Repo:
        if write:
            self._check_token()
        repo = self.hub.repos.get(key)
        if repo is None or (repo.private and not self._authorized):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _ok(payload: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    # -- repo creation and commits -------------------------------------------------------------

    def create_repo(self) -> tuple[int, dict[str, str], bytes]:
        self._check_token()
        payload = self._json()
        name, namespace = payload.get("name"), payload.get("organization") or self.hub.user
        repo_type = payload.get("type") or "model"
        if not name or repo_type not in URL_PREFIXES:
            raise HubError(400, f"bad create request: name={name!r}, type={repo_type!r}")
        key = (repo_type, f"{namespace}/{name}")
        with self.hub._lock:
            if key in self.hub.repos:
                # The client reads the url from this answer too (create_repo(..., exist_ok=True)).
                existing = self.hub.repos[key]
                raise HubError(409, f"You already created this {repo_type} repo", body={"url": self.hub._repo_url(existing)})
            repo = Repo(repo_type, key[1], private=payload.get("visibility", "public") != "public"
                        or bool(payload.get("private")))
            self.hub.repos[key] = repo
            self.hub._commit(repo, "main", "initial commit", {".gitattributes": self.hub._regular(DEFAULT_GITATTRIBUTES.encode())})
        return self._ok({"url": self.hub._repo_url(repo), "name": repo.repo_id, "id": repo.repo_id})

    def validate_yaml(self) -> tuple[int, dict[str, str], bytes]:
        content = (self._json() or {}).get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if match is None:
            return self._ok({"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]})
        try:
            meta = yaml.safe_load(match[1])
        except yaml.YAMLError as err:
            return self._ok({"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []}, status=400)
        if not isinstance(meta, dict):
            return self._ok({"errors": [{"message": "metadata must be a YAML mapping"}], "warnings": []}, status=400)
        return self._ok({"errors": [], "warnings": []})

    def preupload(self, key: tuple[str, str], rev: str, _: str) -> tuple[int, dict[str, str], bytes]:
        with self.hub._lock:
            repo = self._repo(key, write=True)
            commit = self._commit_or_raise(repo, rev)
            lfs_patterns = _lfs_patterns(self.hub, commit)
            answer = []
            for item in self._json().get("files", []):
                path, size = item["path"], int(item["size"])
                lfs = size > LFS_SIZE_LIMIT or _matches(path, lfs_patterns)
                existing = commit.tree.get(path)
                # The client compares this oid with its own (sha256 for LFS, git sha1 otherwise) to skip no-op uploads.
                oid = None if existing is None else (existing.sha256 if existing.lfs else existing.git_oid)
                answer.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return self._ok({"files": answer, "commitOid": commit.oid})

    def commit(self, key: tuple[str, str], rev: str, _: str) -> tuple[int, dict[str, str], bytes]:
        if self.query.get("create_pr"):
            raise HubError(400, "local test Hub: create_pr is not supported")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a 'header' line")
        header = lines[0]["value"]
        with self.hub._lock:
            repo = self._repo(key, write=True)
            head = self._commit_or_raise(repo, rev)
            if rev not in repo.branches:
                raise HubError(400, f"cannot commit to {rev!r}: not a branch")
            if header.get("parentCommit") and not head.oid.startswith(header["parentCommit"]):
                raise HubError(412, f"parent commit {header['parentCommit']} is not the head of {rev} ({head.oid})")
            tree = dict(head.tree)
            for line in lines[1:]:
                kind, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if kind == "file":
                    raw = value["content"]
                    data = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
                    if len(data) > LFS_SIZE_LIMIT:
                        raise HubError(400, f"{path}: regular files must be under 10 MB; upload it with LFS")
                    tree[path] = self.hub._regular(data)
                elif kind == "lfsFile":
                    oid, size = value["oid"], value.get("size")
                    if size is None or not self.hub._has_object(oid, int(size)):
                        raise HubError(400, f"{path}: LFS object {oid} was not uploaded")
                    tree[path] = Blob.lfs_file(oid, int(size))
                elif kind == "deletedFile":
                    if tree.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif kind == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    tree = {p: b for p, b in tree.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"local test Hub: unknown commit operation {kind!r}")
            new = self.hub._commit(repo, rev, header.get("summary", ""), tree)
        return self._ok({"success": True, "commitOid": new.oid, "hookOutput": "",
                         "commitUrl": f"{self.hub._repo_url(repo)}/commit/{new.oid}"})

    def _commit_or_raise(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    # -- LFS (basic transfer) ----------------------------------------------------------------

    def lfs_batch(self, key: tuple[str, str]) -> tuple[int, dict[str, str], bytes]:
        self._repo(key, write=True)
        payload = self._json()
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, f"local test Hub: only basic LFS uploads, got {payload.get('operation')!r}")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if not self.hub._has_object(oid, size):  # already stored => no actions, the client skips it
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.cdn_url}/lfs-upload/{oid}"},
                    "verify": {"href": f"{self.hub._repo_url(self.hub.repos[key])}.git/info/lfs/objects/verify"},
                }
            objects.append(entry)
        return 200, {"Content-Type": "application/vnd.git-lfs+json"}, json.dumps(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode()

    def lfs_upload(self, oid: str) -> tuple[int, dict[str, str], bytes]:
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"uploaded bytes do not hash to {oid}")
        self.hub._store(self.body)
        return 200, {}, b""

    def lfs_verify(self, key: tuple[str, str]) -> tuple[int, dict[str, str], bytes]:
        self._repo(key, write=True)
        payload = self._json()
        if not self.hub._has_object(payload["oid"], int(payload["size"])):
            raise HubError(404, f"LFS object {payload['oid']} ({payload['size']} bytes) not found")
        return self._ok({"success": True})

    def lfs_download(self, oid: str) -> tuple[int, dict[str, str], bytes]:
        path = self.hub.objects / oid
        if not path.is_file():
            raise HubError(404, f"no LFS object {oid}")
        data = path.read_bytes()
        return 200, {"Content-Type": "application/octet-stream", "ETag": f'"{oid}"'}, data

    # -- reading -----------------------------------------------------------------------------

    def repo_info(self, key: tuple[str, str], rev: str, _: str) -> tuple[int, dict[str, str], bytes]:
        with self.hub._lock:
            repo = self._repo(key)
            commit = self._commit_or_raise(repo, rev)
            siblings = [{"rfilename": p} for p in sorted(commit.tree)]
        return self._ok({"id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid,
                         "private": repo.private, "disabled": False, "gated": False, "tags": [],
                         "siblings": siblings})

    def tree(self, key: tuple[str, str], rev: str, sub: str) -> tuple[int, dict[str, str], bytes]:
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        with self.hub._lock:
            commit = self._commit_or_raise(self._repo(key), rev)
            prefix = sub.strip("/") + "/" if sub.strip("/") else ""
            if prefix and not any(p.startswith(prefix) for p in commit.tree):
                raise HubError(404, f"{sub}: no such folder", "EntryNotFound")
            entries: dict[str, dict[str, Any]] = {}
            for path, blob in sorted(commit.tree.items()):
                if not path.startswith(prefix):
                    continue
                parts = path[len(prefix):].split("/")
                for depth in range(1, len(parts)):  # folders on the way
                    folder = prefix + "/".join(parts[:depth])
                    if recursive or depth == 1:
                        entries.setdefault(folder, {"type": "directory", "path": folder,
                                                    "oid": hashlib.sha1(folder.encode()).hexdigest()})
                if recursive or len(parts) == 1:
                    entry = {"type": "file", "path": path, "size": blob.size, "oid": blob.git_oid}
                    if blob.lfs:
                        entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
                    entries[path] = entry
        return self._ok(list(entries.values()))

    def resolve(self, key: tuple[str, str], rev: str, path: str) -> tuple[int, dict[str, str], bytes]:
        with self.hub._lock:
            commit = self._commit_or_raise(self._repo(key), rev)
            blob = commit.tree.get(path)
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if blob.lfs:
            # Like the Hub: metadata on the redirect itself, bytes from another origin (the client drops auth there).
            headers.update({"Location": f"{self.hub.cdn_url}/lfs-objects/{blob.sha256}", "ETag": f'"{blob.git_oid}"',
                            "X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
            return 302, headers, b""
        data = self.hub._read(blob.sha256)
        headers.update({"ETag": f'"{blob.git_oid}"', "Content-Type": "application/octet-stream"})
        return 200, headers, data


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _lfs_patterns(hub: HubServer, commit: Commit) -> list[str]:
    attributes = commit.tree.get(".gitattributes")
    if attributes is None:
        return []
    lines = hub._read(attributes.sha256).decode().splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line.split()[1:]]


def _matches(path: str, patterns: list[str]) -> bool:
    # gitattributes: a pattern without "/" matches the file name at any depth.
    return any(fnmatch.fnmatch(path if "/" in p else path.rsplit("/", 1)[-1], p) for p in patterns)


class BlackHole:
    """A loopback port that accepts connections and never answers, until `release()` closes them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.released = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            if self.released:
                conn.close()

    def release(self) -> None:
        """Close every connection, and from now on close new ones at once (a Hub that went away)."""
        self.released = True
        for conn in list(self.connections):
            conn.close()

    def close(self) -> None:
        self.release()
        self.sock.close()
