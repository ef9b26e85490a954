# SPDX-License-Identifier: MIT
"""Drive v3 uploads: uploadType=media, multipart and resumable.

Resumable sessions follow Google's protocol: the initiation request returns
200 and a Location session URI; chunks are PUT with Content-Range; every
non-final chunk must be a multiple of 256 KiB; an incomplete upload answers
308 with `Range: bytes=0-LAST` (no Range while nothing is stored); an empty
PUT with `Content-Range: bytes */N` (or `*/*`) queries the state; completion
answers 201 Created for a new file and 200 OK for an update (as Google's
upload guide says) with the File resource. Choices where Google leaves room:
a chunk that starts before the committed size has its already-stored prefix
skipped; one that starts after it is discarded and answered 308 with the
current Range; a chunk cut short (client gone, or an injected reset) keeps
the bytes received rounded down to a multiple of 256 KiB.
"""

import base64
import os
import secrets
import time
import urllib.parse

from drive import (ApiError, Reply, check_fields_param, create_from_metadata, file_reply,
                   get_file, not_found, parse_json_body, parse_metadata, update_from_metadata,
                   move_params)
import fields as fieldsel
from store import BlobWriter, describe_file

CHUNK_GRANULARITY = 256 * 1024
MULTIPART_LIMIT = 512 << 20      # multipart bodies are parsed in memory


class BodyAborted(Exception):
    """The request body stopped early (peer gone or injected reset)."""

    def __init__(self, received, injected=False):
        super().__init__("request body aborted after %d bytes" % received)
        self.received = received
        self.injected = injected


def parse_content_type(value):
    """'type/sub; a=b; c="d"' -> ('type/sub', {'a': 'b', 'c': 'd'})."""
    if not value:
        return "", {}
    items = value.split(";")
    params = {}
    for item in items[1:]:
        key, sep, val = item.strip().partition("=")
        if not sep:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[key.strip().lower()] = val
    return items[0].strip().lower(), params


def _delimiter_at(body, i, delim):
    """True if body[i:] starts a boundary delimiter line (delim then -- or LWSP* CRLF)."""
    j = i + len(delim)
    if body.startswith(b"--", j):
        return True
    while j < len(body) and body[j] in b" \t":
        j += 1
    return body.startswith(b"\r\n", j)


def split_multipart(body, boundary):
    """Split a multipart body (RFC 2046) into [(headers dict, content bytes)].
    Binary-safe: a boundary-like byte run only counts at the start of a line
    and when followed by '--' or end of line. Raises ValueError."""
    if not boundary or len(boundary) > 70:
        raise ValueError("missing or overlong boundary parameter")
    delim = b"--" + boundary.encode("latin-1")
    if body.startswith(delim) and _delimiter_at(body, 0, delim):
        pos = 0
    else:
        pos = -1
        start = 0
        while True:
            i = body.find(b"\r\n" + delim, start)
            if i < 0:
                raise ValueError("no opening boundary delimiter")
            if _delimiter_at(body, i + 2, delim):
                pos = i + 2
                break
            start = i + 1
    parts = []
    while True:
        pos += len(delim)
        if body.startswith(b"--", pos):
            break
        while body[pos:pos + 1] in (b" ", b"\t"):
            pos += 1
        pos += 2  # CRLF, guaranteed by _delimiter_at
        search = pos
        while True:
            end = body.find(b"\r\n" + delim, search)
            if end < 0:
                raise ValueError("missing closing boundary delimiter")
            if _delimiter_at(body, end + 2, delim):
                break
            search = end + 1
        parts.append(_parse_part(body[pos:end]))
        pos = end + 2
    return parts


def _parse_part(raw):
    if raw.startswith(b"\r\n"):
        head, content = b"", raw[2:]
    else:
        head, sep, content = raw.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without a blank line after its headers")
    headers = {}
    for line in head.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise ValueError("malformed part header %r" % line[:60])
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    cte = headers.get("content-transfer-encoding", "binary").lower()
    if cte == "base64":
        try:
            content = base64.b64decode(b"".join(content.split()), validate=True)
        except ValueError:
            raise ValueError("bad base64 in part body")
    elif cte not in ("binary", "8bit", "7bit"):
        raise ValueError("unsupported Content-Transfer-Encoding %r" % cte)
    return headers, content


def _bad(message):
    return ApiError(400, "badRequest", message)


# -- simple and multipart ----------------------------------------------------------

def _receive(req):
    """Stream the request body into a BlobWriter; returns finish() info."""
    w = BlobWriter(req.store)
    try:
        for block in req.iter_body():
            w.write(block)
        return w.finish()
    except BaseException:
        w.discard()
        raise


def upload(req, file_id=None):
    """POST /upload/drive/v3/files and PATCH|PUT /upload/drive/v3/files/{id}."""
    rec = get_file(req, file_id) if file_id is not None else None
    utype = req.query.get("uploadType")
    check_fields_param(req, fieldsel.FILE_SCHEMA)
    if utype == "resumable":
        return resumable_start(req, rec)
    if utype == "media":
        req.kind = "upload.media"
        ctype = req.headers.get("Content-Type") or "application/octet-stream"
        content = _receive(req)
        try:
            if rec is None:
                made = create_from_metadata(req, {}, content, default_mime=ctype)
            else:
                made = update_from_metadata(req, rec, {}, content)
        except BaseException:
            _unlink(content["path"])
            raise
        return file_reply(req, made)
    if utype == "multipart":
        req.kind = "upload.multipart"
        return multipart(req, rec)
    if utype is None:
        raise ApiError(400, "required", "Upload requests must include an uploadType URL "
                       "parameter (media, multipart or resumable).", location="uploadType")
    raise ApiError(400, "invalid", "Invalid value for uploadType: %s" % utype,
                   location="uploadType")


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def multipart(req, rec):
    mime, params = parse_content_type(req.headers.get("Content-Type"))
    if mime != "multipart/related":
        raise _bad("Multipart upload needs Content-Type multipart/related (got %r)." % mime)
    body = req.read_body(MULTIPART_LIMIT)
    try:
        parts = split_multipart(body, params.get("boundary", ""))
    except ValueError as e:
        raise _bad("Malformed multipart body: %s." % e)
    if len(parts) != 2:
        raise _bad("Malformed multipart body: expected 2 parts (metadata, media), got %d."
                   % len(parts))
    (meta_headers, meta_raw), (media_headers, media) = parts
    meta_type, _ = parse_content_type(meta_headers.get("content-type", "application/json"))
    if meta_type != "application/json":
        raise _bad("The first multipart part must be application/json metadata (got %r)."
                   % meta_type)
    obj = parse_json_body(meta_raw)
    media_type = media_headers.get("content-type") or "application/octet-stream"
    w = BlobWriter(req.store)
    w.write(media)
    content = w.finish()
    try:
        if rec is None:
            made = create_from_metadata(req, obj, content, default_mime=media_type)
        else:
            made = update_from_metadata(req, rec, obj, content)
    except BaseException:
        _unlink(content["path"])
        raise
    return file_reply(req, made)


# -- resumable -------------------------------------------------------------------

def _int_header(req, name):
    v = req.headers.get(name)
    if v is None:
        return None
    v = v.strip()
    if not v.isdigit():
        raise _bad("Invalid %s header: %r." % (name, v))
    return int(v)


def resumable_start(req, rec):
    req.kind = "upload.resumable.init"
    store = req.store
    total = _int_header(req, "X-Upload-Content-Length")
    obj = parse_json_body(req.read_body())
    with store.lock:  # validate now, so errors surface before any byte is sent
        parse_metadata(store, obj, is_update=rec is not None, current=rec)
        if rec is not None:
            move_params(req, rec)
    upload_id = "emu-" + secrets.token_urlsafe(24)
    params = [(k, v) for k, v in req.query_pairs if k != "upload_id"]
    params.append(("upload_id", upload_id))
    location = "%s%s?%s" % (req.base_url, req.path, urllib.parse.urlencode(params))
    now = time.time()
    store.create_session({
        "id": upload_id, "op": "update" if rec is not None else "create",
        "file_id": rec["id"] if rec is not None else None, "metadata": obj,
        "move": {"addParents": req.query.get("addParents"),
                 "removeParents": req.query.get("removeParents")},
        "content_type": req.headers.get("X-Upload-Content-Type"),
        "total": total, "committed": 0, "created": now,
        "expires": now + req.server.session_lifetime, "done": False, "result": None})
    return Reply(200, headers=[("Location", location), ("X-GUploader-UploadID", upload_id),
                               ("Content-Type", "text/plain; charset=utf-8")])


def _parse_content_range(value):
    """-> (start, end, total) with None for '*' parts; ValueError if malformed."""
    v = value.strip()
    if not v.startswith("bytes "):
        raise ValueError(value)
    rng, sep, total = v[6:].strip().partition("/")
    if not sep:
        raise ValueError(value)
    total = None if total.strip() == "*" else total.strip()
    if total is not None:
        if not total.isdigit():
            raise ValueError(value)
        total = int(total)
    rng = rng.strip()
    if rng == "*":
        return None, None, total
    a, sep, b = rng.partition("-")
    if not sep or not a.strip().isdigit() or not b.strip().isdigit():
        raise ValueError(value)
    a, b = int(a), int(b)
    if b < a:
        raise ValueError(value)
    return a, b, total


def _incomplete(sess):
    headers = [("X-GUploader-UploadID", sess["id"])]
    if sess["committed"] > 0:
        headers.append(("Range", "bytes=0-%d" % (sess["committed"] - 1)))
    return Reply(308, headers=headers)


def _session(req, upload_id):
    sess = req.store.get_session(upload_id)
    if sess is None:
        raise ApiError(404, "notFound", "Upload session %s not found." % upload_id)
    if time.time() >= sess["expires"]:
        raise ApiError(404, "notFound", "Upload session %s has expired; start a new upload."
                       % upload_id)
    return sess


def resumable_cancel(req, upload_id):
    req.kind = "upload.resumable.cancel"
    sess = _session(req, upload_id)
    req.store.drop_session(sess["id"])
    return Reply(499)


def resumable_put(req, upload_id):
    """PUT (or POST) to a session URI: a chunk, a status query or the whole file."""
    req.kind = "upload.resumable.chunk"
    store = req.store
    sess = _session(req, upload_id)
    if sess["done"]:
        req.discard_body()
        return _finished_reply(req, sess)
    cr = req.headers.get("Content-Range")
    length = req.content_length
    if cr is None:
        if length is None:
            raise _bad("A resumable upload request needs Content-Length or Content-Range.")
        start, end, total = (0, length - 1, length) if length else (None, None, 0)
    else:
        try:
            start, end, total = _parse_content_range(cr)
        except ValueError:
            req.discard_body()
            raise _bad("Invalid Content-Range header: %r." % cr)
    with store.lock:
        known = sess["total"]
        if total is not None and known is not None and total != known:
            req.discard_body()
            raise _bad("Content-Range total %d does not match the upload size %d declared "
                       "earlier." % (total, known))
        if total is not None and total < sess["committed"]:
            req.discard_body()
            raise _bad("Content-Range total %d is smaller than the %d bytes already received."
                       % (total, sess["committed"]))
        if total is not None and known is None:
            sess["total"] = total
            store.save()
        total = sess["total"]
    if start is None:  # status query: Content-Range bytes */N or */*
        if length:
            req.discard_body()
            raise _bad("A status query (Content-Range: bytes */...) must have an empty body.")
        req.kind = "upload.resumable.status"
        if total is not None and sess["committed"] == total:
            return _finish(req, sess)
        return _incomplete(sess)
    size = end - start + 1
    if length is not None and length != size:
        req.discard_body()
        raise _bad("Content-Length %d does not match Content-Range %s (%d bytes)."
                   % (length, cr, size))
    if total is not None and end >= total:
        req.discard_body()
        raise _bad("Content-Range %s goes past the declared total size." % cr)
    final = total is not None and end + 1 == total
    if not final and size % CHUNK_GRANULARITY:
        req.discard_body()
        raise _bad("Invalid request. The chunk size (%d bytes) must be a multiple of 256 KiB "
                   "(262144 bytes) unless it is the final chunk." % size)
    if start > sess["committed"]:
        req.discard_body()
        req.note = "chunk at %d skips past committed %d" % (start, sess["committed"])
        return _incomplete(sess)
    _append(req, sess, start, size)
    if final and sess["committed"] == total:
        return _finish(req, sess)
    return _incomplete(sess)


def _append(req, sess, start, size):
    """Store the new part of a chunk; on abort keep a 256 KiB-aligned prefix."""
    store = req.store
    committed = sess["committed"]
    skip = committed - start
    path = store.session_part_path(sess["id"])
    received = 0
    with open(path, "r+b") as f:
        f.truncate(committed)
        f.seek(committed)
        try:
            for block in req.iter_body():
                lo, hi = max(0, skip - received), min(len(block), size - received)
                if hi > lo:
                    f.write(block[lo:hi])
                received += len(block)
            if received < size:
                raise BodyAborted(received)
            if received > size:
                f.truncate(committed)
                raise _bad("The request body (%d bytes) is longer than its Content-Range "
                           "(%d bytes)." % (received, size))
        except BodyAborted as e:
            new = committed + max(0, e.received - skip)
            keep = max(committed, new - new % CHUNK_GRANULARITY)
            f.flush()
            f.truncate(keep)
            os.fsync(f.fileno())
            with store.lock:
                sess["committed"] = keep
                store.save()
            req.note = "chunk cut after %d of %d bytes; kept %d" % (e.received, size, keep)
            raise
        f.flush()
        os.fsync(f.fileno())
    with store.lock:
        sess["committed"] = max(committed, start + size)
        store.save()


def _finish(req, sess):
    """All bytes are in: create or update the file, remember the result."""
    store = req.store
    path = store.session_part_path(sess["id"])
    content = describe_file(path)
    saved = dict(req.query)
    req.query.update({k: v for k, v in sess["move"].items() if v is not None})
    try:
        if sess["op"] == "create":
            rec = create_from_metadata(req, sess["metadata"], content,
                                       default_mime=sess["content_type"])
        else:
            rec = store.get(sess["file_id"])
            if rec is None:
                raise not_found(sess["file_id"])
            rec = update_from_metadata(req, rec, sess["metadata"], content)
    finally:
        req.query.clear()
        req.query.update(saved)
    with store.lock:
        sess["done"] = True
        sess["result"] = rec["id"]
        store.save()
    return _finished_reply(req, sess)


def _finished_reply(req, sess):
    rec = req.store.get(sess["result"])
    if rec is None:
        raise not_found(sess["result"])
    return file_reply(req, rec, 201 if sess["op"] == "create" else 200)
