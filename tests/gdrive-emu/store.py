# SPDX-License-Identifier: MIT
"""Persistent state of the Google Drive v3 emulator.

One folder holds everything: ``db.json`` (file metadata, resumable upload
sessions, token hashes, the root folder id and the page-token key), written
atomically (tmp, fsync, rename, fsync of the folder) after every change;
``blobs/`` with one file per file revision, byte-exact; ``sessions/`` with the
bytes received so far by each resumable upload session; ``tmp/`` for uploads
in flight. A new process on the same folder sees the same files, ids, root
folder and sessions. All methods take ``Store.lock`` themselves; callers that
combine several calls into one transaction hold it too (it is re-entrant).
"""

import hashlib
import json
import os
import secrets
import string
import threading
import time

FOLDER_MIME = "application/vnd.google-apps.folder"
DB_FORMAT = 1
_ID_CHARS = string.ascii_letters + string.digits + "-_"


def now_ms():
    return int(time.time() * 1000)


def rfc3339(ms):
    """Format epoch milliseconds the way Drive does: 2024-05-01T10:20:30.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def parse_rfc3339(text):
    """Parse an RFC 3339 date-time into epoch milliseconds; ValueError if malformed."""
    import datetime
    if not isinstance(text, str) or "T" not in text:
        raise ValueError("not an RFC 3339 date-time: %r" % (text,))
    t = text.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    date_part, time_part = t.split("T", 1)
    tz = ""
    for sep in ("+", "-"):
        idx = time_part.rfind(sep)
        if idx > 0:
            tz = time_part[idx:]
            time_part = time_part[:idx]
            break
    if not tz:
        tz = "+00:00"
    frac = 0
    if "." in time_part:
        time_part, digits = time_part.split(".", 1)
        if not digits.isdigit():
            raise ValueError("bad fraction in %r" % (text,))
        frac = int((digits + "000")[:3])
    dt = datetime.datetime.fromisoformat("%sT%s%s" % (date_part, time_part, tz))
    return int(dt.timestamp()) * 1000 + frac


def random_id(length, first=""):
    return first + "".join(secrets.choice(_ID_CHARS) for _ in range(length - len(first)))


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data):
    """Write bytes to path via tmp + fsync + rename + fsync(dir)."""
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


class BlobWriter:
    """Receives content into a temporary file, hashing it on the way."""

    def __init__(self, store):
        self.path = os.path.join(store.tmp_dir, "in-%s" % secrets.token_hex(8))
        self.f = open(self.path, "wb")
        self.size = 0
        self.md5 = hashlib.md5()
        self.sha1 = hashlib.sha1()
        self.sha256 = hashlib.sha256()

    def write(self, data):
        self.f.write(data)
        self.size += len(data)
        self.md5.update(data)
        self.sha1.update(data)
        self.sha256.update(data)

    def finish(self):
        """Flush and fsync; returns the content description used by Store."""
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return {"path": self.path, "size": self.size, "md5": self.md5.hexdigest(),
                "sha1": self.sha1.hexdigest(), "sha256": self.sha256.hexdigest()}

    def discard(self):
        try:
            self.f.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def describe_file(path):
    """Hash an existing file; returns the same shape as BlobWriter.finish()."""
    md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            size += len(block)
            md5.update(block)
            sha1.update(block)
            sha256.update(block)
    return {"path": path, "size": size, "md5": md5.hexdigest(), "sha1": sha1.hexdigest(),
            "sha256": sha256.hexdigest()}


class Store:
    def __init__(self, data_dir):
        self.dir = os.path.abspath(data_dir)
        self.blob_dir = os.path.join(self.dir, "blobs")
        self.session_dir = os.path.join(self.dir, "sessions")
        self.tmp_dir = os.path.join(self.dir, "tmp")
        for d in (self.dir, self.blob_dir, self.session_dir, self.tmp_dir):
            os.makedirs(d, exist_ok=True)
        for name in os.listdir(self.tmp_dir):  # uploads cut short by a previous run
            os.unlink(os.path.join(self.tmp_dir, name))
        self.db_path = os.path.join(self.dir, "db.json")
        self.lock = threading.RLock()
        if os.path.exists(self.db_path):
            with open(self.db_path, "rb") as f:
                self.db = json.loads(f.read().decode("utf-8"))
            if self.db.get("format") != DB_FORMAT:
                raise SystemExit("gdrive-emu: %s: unsupported db format %r"
                                 % (self.db_path, self.db.get("format")))
        else:
            root_id = random_id(19, "0A") + "Uk9PVA"
            t = now_ms()
            self.db = {
                "format": DB_FORMAT,
                "root_id": root_id,
                "secret": secrets.token_hex(32),
                "seq": 1,
                "files": {root_id: {
                    "id": root_id, "name": "My Drive", "mimeType": FOLDER_MIME, "parents": [],
                    "createdTime": t, "modifiedTime": t, "explicitlyTrashed": False,
                    "starred": False, "appProperties": {}, "properties": {}, "version": 1,
                    "seq": 0}},
                "sessions": {},
                "generated_ids": [],
                "tokens": {"access": {}, "refresh": {}},
            }
            self.save()

    # -- persistence -------------------------------------------------------

    def save(self):
        with self.lock:
            self._prune_tokens()
            data = json.dumps(self.db, sort_keys=True, separators=(",", ":")).encode("utf-8")
            atomic_write(self.db_path, data)

    def _prune_tokens(self):
        limit = time.time() - 86400
        access = self.db["tokens"]["access"]
        for key in [k for k, v in access.items() if v["exp"] < limit]:
            del access[key]

    # -- ids and lookup ----------------------------------------------------

    @property
    def root_id(self):
        return self.db["root_id"]

    @property
    def secret(self):
        return bytes.fromhex(self.db["secret"])

    def resolve(self, file_id):
        return self.root_id if file_id == "root" else file_id

    def get(self, file_id):
        with self.lock:
            return self.db["files"].get(self.resolve(file_id))

    def new_file_id(self):
        with self.lock:
            while True:
                fid = random_id(33, "1")
                if fid not in self.db["files"]:
                    return fid

    def generate_ids(self, count):
        with self.lock:
            ids = [self.new_file_id() for _ in range(count)]
            pool = self.db["generated_ids"]
            pool.extend(ids)
            del pool[:-10000]
            self.save()
            return ids

    def take_generated_id(self, fid):
        """True if fid came from generateIds and is unused; consumes it."""
        with self.lock:
            pool = self.db["generated_ids"]
            if fid in pool and fid not in self.db["files"]:
                pool.remove(fid)
                return True
            return False

    def all_files(self):
        with self.lock:
            return [f for f in self.db["files"].values() if f["id"] != self.root_id]

    def children(self, folder_id):
        with self.lock:
            return [f for f in self.db["files"].values() if folder_id in f.get("parents", [])]

    def is_trashed(self, rec):
        """Trashed explicitly or through an ancestor (Drive's `trashed`)."""
        with self.lock:
            seen = set()
            while rec is not None and rec["id"] not in seen:
                if rec.get("explicitlyTrashed"):
                    return True
                seen.add(rec["id"])
                parents = rec.get("parents") or []
                rec = self.db["files"].get(parents[0]) if parents else None
            return False

    def is_ancestor(self, ancestor_id, rec):
        with self.lock:
            seen = set()
            while rec is not None and rec["id"] not in seen:
                if rec["id"] == ancestor_id:
                    return True
                seen.add(rec["id"])
                parents = rec.get("parents") or []
                rec = self.db["files"].get(parents[0]) if parents else None
            return False

    def blob_path(self, rec):
        return os.path.join(self.blob_dir, "%s.%s" % (rec["id"], rec["headRevisionId"]))

    def open_blob(self, rec):
        """Open the file's content for reading (the handle stays valid after deletion)."""
        return open(self.blob_path(rec), "rb")

    # -- mutations ---------------------------------------------------------

    def _install_content(self, rec, content):
        """Move received content into place as the file's new head revision."""
        old = self.blob_path(rec) if rec.get("headRevisionId") else None
        rec["headRevisionId"] = random_id(51, "0B")
        os.rename(content["path"], self.blob_path(rec))
        _fsync_dir(self.blob_dir)
        rec["size"] = content["size"]
        rec["md5Checksum"] = content["md5"]
        rec["sha1Checksum"] = content["sha1"]
        rec["sha256Checksum"] = content["sha256"]
        return old

    def create(self, meta, content=None, file_id=None):
        """Insert a new file. meta holds validated writable fields; content is a
        BlobWriter.finish() result (None: empty content, or no content for folders)."""
        with self.lock:
            t = now_ms()
            rec = {
                "id": file_id or self.new_file_id(),
                "name": meta.get("name", "Untitled"),
                "mimeType": meta.get("mimeType") or "application/octet-stream",
                "parents": list(meta.get("parents") or [self.root_id]),
                "createdTime": meta.get("createdTime", t),
                "modifiedTime": meta.get("modifiedTime", t),
                "explicitlyTrashed": bool(meta.get("trashed", False)),
                "starred": bool(meta.get("starred", False)),
                "appProperties": {k: v for k, v in (meta.get("appProperties") or {}).items()
                                  if v is not None},
                "properties": {k: v for k, v in (meta.get("properties") or {}).items()
                               if v is not None},
                "version": 1,
                "seq": self.db["seq"],
            }
            for key in ("description", "originalFilename", "folderColorRgb"):
                if meta.get(key) is not None:
                    rec[key] = meta[key]
            self.db["seq"] += 1
            if rec["mimeType"] != FOLDER_MIME:
                if content is None:
                    w = BlobWriter(self)
                    content = w.finish()
                rec.setdefault("originalFilename", rec["name"])
                self._install_content(rec, content)
            elif content is not None:
                os.unlink(content["path"])
            self.db["files"][rec["id"]] = rec
            self.save()
            return rec

    def update(self, rec, meta, content=None, add_parents=(), remove_parents=()):
        """Apply a validated patch to rec (which must be in the store)."""
        with self.lock:
            old_blob = None
            for key in ("name", "mimeType", "description", "starred", "folderColorRgb",
                        "originalFilename"):
                if key in meta:
                    if meta[key] is None:
                        rec.pop(key, None)
                    else:
                        rec[key] = meta[key]
            if "trashed" in meta:
                rec["explicitlyTrashed"] = bool(meta["trashed"])
            for mapname in ("appProperties", "properties"):
                for k, v in (meta.get(mapname) or {}).items():
                    if v is None:
                        rec[mapname].pop(k, None)
                    else:
                        rec[mapname][k] = v
            parents = [p for p in rec.get("parents", []) if p not in remove_parents]
            for p in add_parents:
                if p not in parents:
                    parents.append(p)
            rec["parents"] = parents
            if content is not None:
                old_blob = self._install_content(rec, content)
            rec["modifiedTime"] = meta.get("modifiedTime", now_ms())
            rec["version"] += 1
            self.save()
            if old_blob:
                try:
                    os.unlink(old_blob)
                except FileNotFoundError:
                    pass
            return rec

    def delete(self, rec):
        """Delete rec and, for a folder, all its descendants. Returns the count."""
        with self.lock:
            doomed = []
            stack = [rec]
            while stack:
                cur = stack.pop()
                doomed.append(cur)
                stack.extend(self.children(cur["id"]))
            blobs = []
            for f in doomed:
                if f.get("headRevisionId"):
                    blobs.append(self.blob_path(f))
                self.db["files"].pop(f["id"], None)
            self.save()
            for path in blobs:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            return len(doomed)

    # -- resumable sessions --------------------------------------------------

    def session_part_path(self, upload_id):
        return os.path.join(self.session_dir, upload_id + ".part")

    def create_session(self, sess):
        with self.lock:
            self.db["sessions"][sess["id"]] = sess
            with open(self.session_part_path(sess["id"]), "wb") as f:
                os.fsync(f.fileno())
            self.save()

    def get_session(self, upload_id):
        with self.lock:
            return self.db["sessions"].get(upload_id)

    def drop_session(self, upload_id):
        with self.lock:
            self.db["sessions"].pop(upload_id, None)
            try:
                os.unlink(self.session_part_path(upload_id))
            except FileNotFoundError:
                pass
            self.save()

    def expire_sessions(self, now=None):
        with self.lock:
            now = time.time() if now is None else now
            for sess in self.db["sessions"].values():
                sess["expires"] = min(sess["expires"], now - 1)
            self.save()

    def prune_sessions(self):
        """Forget sessions that expired more than a day ago."""
        with self.lock:
            limit = time.time() - 86400
            old = [k for k, s in self.db["sessions"].items() if s["expires"] < limit]
            for k in old:
                self.drop_session(k)
