"""A loopback stand-in for the part of the Hugging Face Hub HTTP API that organism-bench's Hub commands use.

Written from what huggingface_hub 2.4 sends (hf_api.py, _commit_api.py, lfs.py, file_download.py,
_snapshot_download.py), so the real client runs unmodified against it (point it here with HF_ENDPOINT or
`endpoint=`). Two listeners on 127.0.0.1 with ephemeral ports: the Hub itself, and a second origin playing the
LFS storage / CDN, so the client's "redirect off the Hub" paths (no auth forwarded, metadata from the redirect
response) are the ones exercised.

Covered (method, path):
  POST /api/repos/create                                           create_repo
  POST /api/validate-yaml                                          create_commit (README.md metadata check)
  POST /api/{type}s/{ns}/{name}/preupload/{rev}[?create_pr=1]      create_commit / preupload_lfs_files
  POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch             LFS upload negotiation (basic transfer)
  PUT  <storage>/lfs-upload/{sha256}                               LFS single-part upload
  POST /{prefix}{ns}/{name}.git/info/lfs/objects/verify            LFS verify
  POST /api/{type}s/{ns}/{name}/commit/{rev}[?create_pr=1]         create_commit (ndjson: header, file, lfsFile,
                                                                   deletedFile), pull requests as refs/pr/N
  POST /api/{type}s/{ns}/{name}/branch/{branch}                    create_branch
  GET  /api/{type}s/{ns}/{name}[/revision/{rev}]                   repo_info / dataset_info
  GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]?recursive=     list_repo_tree / list_repo_files
  HEAD|GET /{prefix}{ns}/{name}/resolve/{rev}/{path}               hf_hub_download metadata and regular files;
                                                                   LFS files redirect (302) to the storage origin
  GET  <storage>/lfs-objects/{sha256}                              LFS file content
Not covered: xet storage (tests set HF_HUB_DISABLE_XET), multipart LFS, copies, repo deletion, discussions API.
Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound) the way hf_raise_for_status reads them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

PREFIXES = {"dataset": "datasets/", "space": "spaces/", "model": ""}
LFS_SUFFIXES = (".parquet", ".arrow", ".safetensors", ".bin", ".gz", ".zip")
LFS_SIZE = 10 * 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def pointer(self) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n"
                ).encode()

    @property
    def oid(self) -> str:  # what the tree listing calls "oid": the git blob (the pointer for LFS files)
        return git_blob_sha1(self.pointer() if self.lfs else self.data)


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch or refs/pr/N -> commit oid
    pull_requests: list[dict] = field(default_factory=list)

    def resolve(self, rev: str) -> Commit | None:
        if rev in self.refs:
            return self.commits[self.refs[rev]]
        if rev in self.commits:
            return self.commits[rev]
        matches = [c for oid, c in self.commits.items() if len(rev) >= 7 and oid.startswith(rev)]
        return matches[0] if len(matches) == 1 else None


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubStub:
    """Start with `with HubStub(token="hf_test") as hub:`; `hub.endpoint` is the HF_ENDPOINT to use."""

    def __init__(self, token: str = "hf_test_token", user: str = "tester") -> None:
        self.token = token
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []  # (method, route name), for tests to assert what was hit
        self._lock = threading.RLock()
        self._hub = self._server(storage=False)
        self._storage = self._server(storage=True)
        self.endpoint = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.storage = f"http://127.0.0.1:{self._storage.server_address[1]}"
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- lifecycle
    def _server(self, storage: bool) -> ThreadingHTTPServer:
        stub = self

        class Handler(_Handler):
            hub = stub
            is_storage = storage

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    def start(self) -> "HubStub":
        for server in (self._hub, self._storage):
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._storage):
            server.shutdown()
            server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> "HubStub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- state helpers (also for tests)
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        try:
            return self.repos[(repo_type, repo_id)]
        except KeyError:
            raise _HttpError(404, f"Repository {repo_id} not found", "RepoNotFound") from None

    def create_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False) -> Repo:
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                raise _HttpError(409, "You already created this repo")
            repo = Repo(repo_type, repo_id, private)
            init = Blob(b"*.parquet filter=lfs diff=lfs merge=lfs -text\n", lfs=False)
            self._commit(repo, "main", None, "initial commit", {".gitattributes": init})
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def _commit(self, repo: Repo, ref: str, parent: Commit | None, message: str, files: dict[str, Blob]) -> Commit:
        h = hashlib.sha1()
        h.update((parent.oid if parent else "").encode() + b"\0" + message.encode() + b"\0")
        for path in sorted(files):
            h.update(path.encode() + b"\0" + files[path].oid.encode() + b"\n")
        h.update(str(len(repo.commits)).encode())
        commit = Commit(h.hexdigest(), parent.oid if parent else None, message, files)
        repo.commits[commit.oid] = commit
        repo.refs[ref] = commit.oid
        return commit


class _Handler(BaseHTTPRequestHandler):
    hub: HubStub
    is_storage: bool
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read `hub.calls` instead
        pass

    # ---------------------------------------------------------------- plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _authorized(self) -> bool:
        return self.headers.get("authorization") == f"Bearer {self.hub.token}"

    def _require_auth(self) -> None:
        if not self._authorized():
            raise _HttpError(401, "Invalid credentials in Authorization header")

    def _readable(self, repo: Repo) -> None:
        if repo.private and not self._authorized():
            raise _HttpError(404, f"Repository {repo.repo_id} not found", "RepoNotFound")

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._body() if self.command in ("POST", "PUT") else b""
        try:
            if self.is_storage:
                self._storage_route(parts, body)
            else:
                self._hub_route(parts, query, body)
        except _HttpError as e:
            headers = {"X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._json(e.status, {"error": e.message}, headers)

    do_GET = do_POST = do_PUT = do_HEAD = lambda self: self._dispatch()  # noqa: E731

    def _call(self, name: str) -> None:
        with self.hub._lock:
            self.hub.calls.append((self.command, name))

    # ---------------------------------------------------------------- storage origin (LFS / CDN)
    def _storage_route(self, parts: list[str], body: bytes) -> None:
        if self.command == "PUT" and len(parts) == 2 and parts[0] == "lfs-upload":
            self._call("lfs-upload")
            if hashlib.sha256(body).hexdigest() != parts[1]:
                raise _HttpError(400, "sha256 mismatch")
            with self.hub._lock:
                self.hub.lfs[parts[1]] = body
            return self._send(200)
        if self.command in ("GET", "HEAD") and len(parts) == 2 and parts[0] == "lfs-objects":
            self._call("lfs-download")
            data = self.hub.lfs.get(parts[1])
            if data is None:
                raise _HttpError(404, "no such object")
            return self._send(200, data, {"ETag": f'"{parts[1]}"'}, content_type="application/octet-stream")
        raise _HttpError(404, "not found")

    # ---------------------------------------------------------------- the Hub
    def _hub_route(self, parts: list[str], query: dict[str, str], body: bytes) -> None:
        m = self.command
        if m == "POST" and parts == ["api", "repos", "create"]:
            return self._create_repo(body)
        if m == "POST" and parts == ["api", "validate-yaml"]:
            return self._validate_yaml(body)
        if len(parts) >= 4 and parts[0] == "api" and parts[1] in ("models", "datasets", "spaces"):
            repo_type = parts[1][:-1]
            repo_id = f"{parts[2]}/{parts[3]}"
            rest = parts[4:]
            if m == "GET" and not rest:
                return self._info(repo_type, repo_id, "main")
            if m == "GET" and len(rest) >= 2 and rest[0] == "revision":
                return self._info(repo_type, repo_id, "/".join(rest[1:]))
            if m == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]), query)
            if m == "POST" and len(rest) == 2 and rest[0] == "preupload":
                return self._preupload(repo_type, repo_id, rest[1], body, query)
            if m == "POST" and len(rest) == 2 and rest[0] == "commit":
                return self._commit(repo_type, repo_id, rest[1], body, query)
            if m == "POST" and len(rest) == 2 and rest[0] == "branch":
                return self._branch(repo_type, repo_id, rest[1], body)
        repo_type, offset = "model", 0
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, offset = parts[0][:-1], 1
        p = parts[offset:]
        if len(p) >= 2 and p[1].endswith(".git") and p[2:5] == ["info", "lfs", "objects"] and len(p) == 6:
            repo_id = f"{p[0]}/{p[1][:-4]}"
            if m == "POST" and p[5] == "batch":
                return self._lfs_batch(repo_type, repo_id, body)
            if m == "POST" and p[5] == "verify":
                return self._lfs_verify(body)
        if m in ("GET", "HEAD") and len(p) >= 5 and p[2] == "resolve":
            return self._resolve(repo_type, f"{p[0]}/{p[1]}", p[3], "/".join(p[4:]))
        raise _HttpError(404, f"no route for {m} {self.path}")

    def _create_repo(self, body: bytes) -> None:
        self._call("create_repo")
        self._require_auth()
        req = json.loads(body)
        repo_id = f"{req.get('organization') or self.hub.user}/{req['name']}"
        repo_type = req.get("type") or "model"
        private = req.get("visibility") == "private" or bool(req.get("private"))
        url = f"{self.hub.endpoint}/{PREFIXES[repo_type]}{repo_id}"
        try:
            self.hub.create_repo(repo_id, repo_type, private)
        except _HttpError as e:  # like the Hub: a 409 still names the repo's url (create_repo(exist_ok) reads it)
            return self._json(e.status, {"error": e.message, "url": url}, {"X-Error-Message": e.message})
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, body: bytes) -> None:
        self._call("validate_yaml")
        content = json.loads(body).get("content", "")
        if content.startswith("---"):
            front = content.split("---", 2)[1] if content.count("---") >= 2 else ""
            try:
                meta = yaml.safe_load(front)
            except yaml.YAMLError as e:
                return self._json(400, {"errors": [{"message": f"invalid YAML: {e}"}], "warnings": []})
            if meta is not None and not isinstance(meta, dict):
                return self._json(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def _commit_for(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise _HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _info(self, repo_type: str, repo_id: str, rev: str) -> None:
        self._call("repo_info")
        repo = self.hub.repo(repo_id, repo_type)
        self._readable(repo)
        commit = self._commit_for(repo, rev)
        self._json(200, {"id": repo_id, "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                         "author": repo_id.split("/")[0], "sha": commit.oid, "private": repo.private,
                         "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                         "siblings": [{"rfilename": p} for p in sorted(commit.files)]})

    def _tree(self, repo_type: str, repo_id: str, rev: str, path: str, query: dict[str, str]) -> None:
        self._call("list_repo_tree")
        repo = self.hub.repo(repo_id, repo_type)
        self._readable(repo)
        commit = self._commit_for(repo, rev)
        recursive = query.get("recursive", "false").lower() == "true"
        prefix = f"{path.rstrip('/')}/" if path else ""
        if path and path in commit.files:
            raise _HttpError(404, f"{path} is a file", "EntryNotFound")
        if path and not any(f.startswith(prefix) for f in commit.files):
            raise _HttpError(404, f"{path} does not exist", "EntryNotFound")
        items, dirs = [], set()
        for fpath in sorted(commit.files):
            if not fpath.startswith(prefix):
                continue
            rel = fpath[len(prefix):]
            segs = rel.split("/")
            for i in range(1, len(segs)):
                d = prefix + "/".join(segs[:i])
                if (recursive or i == 1) and d not in dirs:
                    dirs.add(d)
                    items.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0,
                                  "path": d})
            if len(segs) > 1 and not recursive:
                continue
            blob = commit.files[fpath]
            item = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": fpath}
            if blob.lfs:
                item["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer())}
            items.append(item)
        self._json(200, items)

    def _preupload(self, repo_type: str, repo_id: str, rev: str, body: bytes, query: dict[str, str]) -> None:
        self._call("preupload")
        self._require_auth()
        repo = self.hub.repo(repo_id, repo_type)
        current = repo.resolve(rev)
        if current is None and query.get("create_pr") != "1":
            raise _HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        out = []
        for f in json.loads(body)["files"]:
            lfs = f["path"].endswith(LFS_SUFFIXES) or int(f["size"]) >= LFS_SIZE
            existing = current.files.get(f["path"]) if current else None
            oid = None
            if existing is not None:
                oid = existing.sha256 if existing.lfs else git_blob_sha1(existing.data)
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": oid})
        self._json(200, {"files": out, "commitOid": current.oid if current else None})

    def _lfs_batch(self, repo_type: str, repo_id: str, body: bytes) -> None:
        self._call("lfs_batch")
        self._require_auth()
        self.hub.repo(repo_id, repo_type)
        req = json.loads(body)
        if req.get("operation") != "upload":
            raise _HttpError(400, "only upload is supported")
        objects = []
        verify = f"{self.hub.endpoint}/{PREFIXES[repo_type]}{repo_id}.git/info/lfs/objects/verify"
        for obj in req["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs:
                entry["actions"] = {"upload": {"href": f"{self.hub.storage}/lfs-upload/{obj['oid']}"},
                                    "verify": {"href": verify}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _lfs_verify(self, body: bytes) -> None:
        self._call("lfs_verify")
        self._require_auth()
        req = json.loads(body)
        data = self.hub.lfs.get(req["oid"])
        if data is None or len(data) != req["size"]:
            raise _HttpError(404, "object not uploaded")
        self._json(200, {"success": True})

    def _commit(self, repo_type: str, repo_id: str, rev: str, body: bytes, query: dict[str, str]) -> None:
        self._call("commit")
        self._require_auth()
        with self.hub._lock:
            repo = self.hub.repo(repo_id, repo_type)
            base = self._commit_for(repo, rev)
            lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
            if not lines or lines[0].get("key") != "header":
                raise _HttpError(400, "first line must be the header")
            header = lines[0]["value"]
            parent_req = header.get("parentCommit")
            if parent_req and not base.oid.startswith(parent_req) and query.get("create_pr") != "1":
                raise _HttpError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            for line in lines[1:]:
                key, v = line["key"], line["value"]
                if key == "file":
                    if v.get("encoding") != "base64":
                        raise _HttpError(400, "only base64 file content is supported")
                    files[v["path"]] = Blob(base64.b64decode(v["content"]), lfs=False)
                elif key == "lfsFile":
                    data = self.hub.lfs.get(v["oid"])
                    if data is None:
                        raise _HttpError(400, f"LFS object {v['oid']} was never uploaded")
                    files[v["path"]] = Blob(data, lfs=True)
                elif key == "deletedFile":
                    if files.pop(v["path"], None) is None:
                        raise _HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    files = {p: b for p, b in files.items() if not p.startswith(v["path"].rstrip("/") + "/")}
                else:
                    raise _HttpError(400, f"unsupported operation {key}")
            prefix = f"{self.hub.endpoint}/{PREFIXES[repo_type]}{repo_id}"
            if query.get("create_pr") == "1":
                num = len(repo.pull_requests) + 1
                ref = f"refs/pr/{num}"
                commit = self.hub._commit(repo, ref, base, header.get("summary", ""), files)
                repo.pull_requests.append({"num": num, "ref": ref, "title": header.get("summary", ""),
                                           "description": header.get("description", ""), "target": rev,
                                           "commit": commit.oid})
                return self._json(200, {"commitUrl": f"{prefix}/commit/{commit.oid}", "commitOid": commit.oid,
                                        "pullRequestUrl": f"{prefix}/discussions/{num}"})
            if rev not in repo.refs:
                raise _HttpError(400, f"can only commit to a branch, not {rev}")
            commit = self.hub._commit(repo, rev, base, header.get("summary", ""), files)
            self._json(200, {"commitUrl": f"{prefix}/commit/{commit.oid}", "commitOid": commit.oid})

    def _branch(self, repo_type: str, repo_id: str, branch: str, body: bytes) -> None:
        self._call("create_branch")
        self._require_auth()
        with self.hub._lock:
            repo = self.hub.repo(repo_id, repo_type)
            if branch in repo.refs:
                raise _HttpError(409, "Reference already exists")
            start = (json.loads(body) if body else {}).get("startingPoint") or "main"
            repo.refs[branch] = self._commit_for(repo, start).oid
        self._json(200, {})

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        self._call("resolve")
        repo = self.hub.repo(repo_id, repo_type)
        self._readable(repo)
        commit = self._commit_for(repo, rev)
        blob = commit.files.get(path)
        if blob is None:
            raise _HttpError(404, f"{path} not found", "EntryNotFound")
        common = {"X-Repo-Commit": commit.oid}
        if blob.lfs:
            return self._send(302, b"", {**common, "Location": f"{self.hub.storage}/lfs-objects/{blob.sha256}",
                                         "X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(len(blob.data))})
        self._send(200, blob.data, {**common, "ETag": f'"{git_blob_sha1(blob.data)}"'},
                   content_type="application/octet-stream")
