"""A local stand-in for the part of the Hugging Face Hub HTTP API that `huggingface_hub` uses to push and pull models.

Test infrastructure, not part of the package. Repos live on disk with real commits (content-addressed blobs, one
JSON file per commit, branch refs), so a revision can be pinned and re-pushing unchanged files is detectable.
Uploads are always answered with the "regular" (inline base64) mode; clients must set `HF_HUB_DISABLE_XET=1`.

Routes (checked against huggingface_hub 2.4):
    POST /api/repos/create                          GET  /api/whoami-v2
    POST /api/validate-yaml                          GET  /api/models/{repo}[/revision/{rev}]
    POST /api/models/{repo}/preupload/{rev}          GET  /api/models/{repo}/tree/{rev}[/{path}]
    POST /api/models/{repo}/commit/{rev}             POST /api/models/{repo}/paths-info/{rev}
    POST /api/models/{repo}/branch/{branch}          GET  /api/models/{repo}/refs
    HEAD/GET /{repo}/resolve/{rev}/{path}
"""

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import yaml
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

TOKEN_USER = "test-user"
REPO_ID = r"(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+|[\w.\-]+)"
SHA1 = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha(content: bytes) -> str:
    """The git object id of a blob, which is what the Hub calls a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class RepoStore:
    """Repos on disk: `blobs/{sha}`, `repos/{repo}/commits/{oid}.json`, `repos/{repo}/repo.json` (refs, private)."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def _repo_dir(self, repo_id: str) -> Path:
        return self.root / "repos" / repo_id

    def exists(self, repo_id: str) -> bool:
        return (self._repo_dir(repo_id) / "repo.json").is_file()

    def meta(self, repo_id: str) -> dict:
        if not self.exists(repo_id):
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return json.loads((self._repo_dir(repo_id) / "repo.json").read_text())

    def _write_meta(self, repo_id: str, meta: dict) -> None:
        (self._repo_dir(repo_id) / "repo.json").write_text(json.dumps(meta))

    def create(self, repo_id: str, private: bool) -> None:
        with self.lock:
            if self.exists(repo_id):
                raise HubError(409, "You already created this model repo", None)
            (self._repo_dir(repo_id) / "commits").mkdir(parents=True)
            initial = self._write_commit(repo_id, parent=None, files={".gitattributes": self.put_blob(b"")},
                                         message="initial commit")
            self._write_meta(repo_id, {"private": private, "refs": {"main": initial}})

    def put_blob(self, content: bytes) -> str:
        sha = git_blob_sha(content)
        path = self.root / "blobs" / sha
        if not path.exists():
            path.write_bytes(content)
        return sha

    def blob(self, sha: str) -> bytes:
        return (self.root / "blobs" / sha).read_bytes()

    def _write_commit(self, repo_id: str, parent: str | None, files: dict[str, str], message: str) -> str:
        body = json.dumps({"parent": parent, "files": files, "message": message, "time": time.time()}, sort_keys=True)
        oid = hashlib.sha1(body.encode()).hexdigest()
        (self._repo_dir(repo_id) / "commits" / f"{oid}.json").write_text(body)
        return oid

    def commit(self, repo_id: str, oid: str) -> dict:
        path = self._repo_dir(repo_id) / "commits" / f"{oid}.json"
        return json.loads(path.read_text())

    def resolve(self, repo_id: str, revision: str) -> str:
        """A branch name or commit id -> the commit id."""
        meta = self.meta(repo_id)
        revision = unquote(revision)
        if revision in meta["refs"]:
            return meta["refs"][revision]
        if SHA1.match(revision) and (self._repo_dir(repo_id) / "commits" / f"{revision}.json").is_file():
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def files(self, repo_id: str, revision: str) -> tuple[str, dict[str, str]]:
        oid = self.resolve(repo_id, revision)
        return oid, self.commit(repo_id, oid)["files"]

    def apply_commit(self, repo_id: str, branch: str, message: str, additions: dict[str, bytes],
                     deletions: list[str], parent_commit: str | None) -> str:
        with self.lock:
            meta = self.meta(repo_id)
            if branch not in meta["refs"]:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = meta["refs"][branch]
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, f"Parent commit {parent_commit} is not the head of {branch}")
            files = dict(self.commit(repo_id, head)["files"])
            for path in deletions:
                files = {p: s for p, s in files.items() if p != path and not p.startswith(path.rstrip("/") + "/")}
            for path, content in additions.items():
                files[path] = self.put_blob(content)
            oid = self._write_commit(repo_id, head, files, message)
            meta["refs"][branch] = oid
            self._write_meta(repo_id, meta)
            return oid

    def create_branch(self, repo_id: str, branch: str, starting_point: str | None) -> None:
        with self.lock:
            meta = self.meta(repo_id)
            if branch in meta["refs"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            meta["refs"][branch] = self.resolve(repo_id, starting_point or "main")
            self._write_meta(repo_id, meta)


# A subset of the Hub's license identifiers and pipeline tags (the Hub refuses any value outside its lists).
KNOWN_LICENSES = {"apache-2.0", "mit", "other", "unknown", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc0-1.0",
                  "bsd-3-clause", "gpl-3.0", "lgpl-3.0", "openrail", "llama3", "gemma"}
KNOWN_PIPELINE_TAGS = {"text-classification", "token-classification", "feature-extraction", "fill-mask",
                       "sentence-similarity", "zero-shot-classification", "text-generation", "question-answering"}


def repo_id_errors(key: str, values) -> list[str]:
    """The Hub accepts only repo ids (`name` or `namespace/name`) in `base_model` and `datasets`."""
    errors = []
    for value in values if isinstance(values, list) else [values]:
        try:
            if not isinstance(value, str) or value.startswith((".", "/", "~")) or "\\" in value:
                raise HFValidationError(f"not a repo id: {value!r}")
            validate_repo_id(value)
        except HFValidationError:
            errors.append(f'"{key}" must hold Hub repo ids, got {value!r}')
    return errors


def validate_model_card(content: str) -> list[str]:
    """What the Hub's YAML validation would refuse in a README.md: bad YAML, a malformed model-index, a
    `base_model` or `datasets` entry that is not a repo id, an unknown `license` or `pipeline_tag`."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
    if not match:
        return []
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        return [f"Invalid YAML: {err}"]
    errors = []
    if not isinstance(metadata, dict):
        return ["YAML metadata must be a mapping"]
    for key in ("license", "library_name", "pipeline_tag"):
        if key in metadata and not isinstance(metadata[key], str):
            errors.append(f'"{key}" must be a string')
    if isinstance(metadata.get("license"), str) and metadata["license"] not in KNOWN_LICENSES:
        errors.append(f'"license" must be one of the Hub\'s license identifiers, got {metadata["license"]!r}')
    if isinstance(metadata.get("pipeline_tag"), str) and metadata["pipeline_tag"] not in KNOWN_PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" is not a Hub task: {metadata["pipeline_tag"]!r}')
    for key in ("base_model", "datasets"):
        if key in metadata:
            errors += repo_id_errors(key, metadata[key])
    for index in metadata.get("model-index") or []:
        if not isinstance(index.get("name"), str):
            errors.append('"model-index[].name" is required')
        for result in index.get("results") or []:
            if not isinstance((result.get("task") or {}).get("type"), str):
                errors.append('"model-index[].results[].task.type" is required')
            dataset = result.get("dataset") or {}
            if not (isinstance(dataset.get("type"), str) and isinstance(dataset.get("name"), str)):
                errors.append('"model-index[].results[].dataset" needs "type" and "name"')
            for metric in result.get("metrics") or []:
                if not isinstance(metric.get("type"), str) or "value" not in metric:
                    errors.append('"model-index[].results[].metrics[]" needs "type" and "value"')
                elif isinstance(metric["value"], str) and metric["value"].strip() in ("", "TODO", "N/A"):
                    errors.append(f'metric {metric["type"]!r} has a placeholder value')
    return errors


class HubHandler(BaseHTTPRequestHandler):
    server: "LocalHub"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep pytest output clean; requests are recorded instead
        pass

    # ---- plumbing
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, err: HubError):
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json({"error": err.message}, err.status, headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _require_token(self):
        if self._token() != self.server.token:
            raise HubError(401, "Invalid credentials in Authorization header", None)

    def _check_read(self, repo_id: str):
        meta = self.server.store.meta(repo_id)
        if meta["private"] and self._token() != self.server.token:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")

    def _dispatch(self):
        url = urlparse(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.server.requests.append((self.command, path))
        routes = [
            ("POST", r"^/api/repos/create$", self.create_repo),
            ("GET", r"^/api/whoami-v2$", self.whoami),
            ("POST", r"^/api/validate-yaml$", self.validate_yaml),
            ("POST", rf"^/api/models/{REPO_ID}/preupload/(?P<rev>.+)$", self.preupload),
            ("POST", rf"^/api/models/{REPO_ID}/commit/(?P<rev>.+)$", self.commit),
            ("POST", rf"^/api/models/{REPO_ID}/branch/(?P<rev>.+)$", self.create_branch),
            ("POST", rf"^/api/models/{REPO_ID}/paths-info/(?P<rev>[^/]+)$", self.paths_info),
            ("GET", rf"^/api/models/{REPO_ID}/refs$", self.refs),
            ("GET", rf"^/api/models/{REPO_ID}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?$", self.tree),
            ("GET", rf"^/api/models/{REPO_ID}/revision/(?P<rev>.+)$", self.model_info),
            ("GET", rf"^/api/models/{REPO_ID}$", self.model_info),
            ("HEAD", rf"^/{REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", self.resolve_file),
            ("GET", rf"^/{REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", self.resolve_file),
        ]
        try:
            for method, pattern, handler in routes:
                match = re.match(pattern, path)
                if method == self.command and match:
                    return handler(query=query, **match.groupdict())
            self.server.unhandled.append((self.command, self.path))
            raise HubError(404, f"Not handled by the local hub: {self.command} {path}", None)
        except HubError as err:
            self._error(err)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _dispatch

    # ---- routes
    def whoami(self, query):
        self._require_token()
        self._json({"type": "user", "name": TOKEN_USER, "fullname": "Test User", "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"role": "write", "displayName": "test"}}})

    def create_repo(self, query):
        self._require_token()
        payload = json.loads(self._body())
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if not re.fullmatch(REPO_ID, repo_id):
            raise HubError(400, f"Invalid repo name: {repo_id}")
        private = payload.get("private") or payload.get("visibility") == "private"
        url = f"{self.server.url}/{repo_id}"
        try:
            self.server.store.create(repo_id, bool(private))
        except HubError as err:
            if err.status == 409:
                return self._json({"error": err.message, "url": url}, 409)
            raise
        self._json({"url": url, "name": repo_id})

    def validate_yaml(self, query):
        payload = json.loads(self._body())
        errors = validate_model_card(payload.get("content", ""))
        status = 400 if errors else 200  # what huggingface_hub's create_commit reads before uploading a README.md
        self._json({"errors": [{"message": error} for error in errors], "warnings": []}, status)

    def preupload(self, query, repo, rev):
        self._require_token()
        _, files = self.server.store.files(repo, rev) if rev in self.server.store.meta(repo)["refs"] else (None, {})
        payload = json.loads(self._body())
        self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                               "oid": files.get(f["path"])} for f in payload["files"]]})

    def commit(self, query, repo, rev):
        self._require_token()
        self.server.store.meta(repo)
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        additions, deletions = {}, []
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                additions[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] in ("deletedFile", "deletedFolder"):
                deletions.append(value["path"])
            elif line["key"] == "lfsFile":
                raise HubError(400, "LFS uploads are not supported by the local hub (it answers 'regular')")
        if "README.md" in additions:  # the Hub refuses a commit whose card metadata it cannot accept
            errors = validate_model_card(additions["README.md"].decode("utf-8", errors="replace"))
            if errors:
                raise HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
        message = header.get("summary", "")
        if header.get("description"):
            message += "\n\n" + header["description"]
        oid = self.server.store.apply_commit(repo, unquote(rev), message, additions, deletions,
                                             header.get("parentCommit"))
        self.server.commits.append((repo, unquote(rev), oid))
        self._json({"success": True, "commitOid": oid, "commitUrl": f"{self.server.url}/{repo}/commit/{oid}"})

    def create_branch(self, query, repo, rev):
        self._require_token()
        body = self._body()
        starting_point = json.loads(body).get("startingPoint") if body else None
        try:
            self.server.store.create_branch(repo, unquote(rev), starting_point)
        except HubError as err:
            if err.status == 409 and query.get("exist_ok"):
                return self._json({})
            raise
        self._json({})

    def refs(self, query, repo):
        self._check_read(repo)
        refs = self.server.store.meta(repo)["refs"]
        self._json({"branches": [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                                 for name, oid in refs.items()], "converts": [], "tags": []})

    def _entry(self, path: str, sha: str) -> dict:
        return {"type": "file", "oid": sha, "size": len(self.server.store.blob(sha)), "path": path}

    def tree(self, query, repo, rev, sub=None):
        self._check_read(repo)
        _, files = self.server.store.files(repo, rev)
        prefix = (sub or "").strip("/")
        entries, folders = [], set()
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        for path, sha in sorted(files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            if "/" in rest and not recursive:
                folders.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                continue
            entries.append(self._entry(path, sha))
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        self._json(entries)

    def paths_info(self, query, repo, rev):
        self._check_read(repo)
        _, files = self.server.store.files(repo, rev)
        body = self._body().decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        self._json([self._entry(p, files[p]) for p in paths if p in files])

    def model_info(self, query, repo, rev="main"):
        self._check_read(repo)
        oid, files = self.server.store.files(repo, rev)
        meta = self.server.store.meta(repo)
        self._json({
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24], "id": repo, "modelId": repo,
            "author": repo.split("/")[0] if "/" in repo else None, "sha": oid, "private": meta["private"],
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [], "library_name": "transformers",
            "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": path} for path in sorted(files)],
        })

    def resolve_file(self, query, repo, rev, file):
        self._check_read(repo)
        oid, files = self.server.store.files(repo, rev)
        if file not in files:
            raise HubError(404, f"Entry not found: {file}", "EntryNotFound")
        content = self.server.store.blob(files[file])
        headers = {"X-Repo-Commit": oid, "ETag": f'"{files[file]}"', "Accept-Ranges": "bytes"}
        if self.command == "GET":
            self.server.downloads.append((repo, rev, file))
        self._send(200, content, headers, content_type="application/octet-stream")


class LocalHub(ThreadingHTTPServer):
    """`with LocalHub(folder) as hub:` serves on 127.0.0.1 at a free port; `hub.url` is the `HF_ENDPOINT`."""

    daemon_threads = True

    def __init__(self, root: Path, token: str = "hf_local_test_token"):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.store = RepoStore(Path(root))
        self.token = token
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[tuple[str, str]] = []
        self.downloads: list[tuple[str, str, str]] = []
        self.commits: list[tuple[str, str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> "LocalHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
