# SPDX-License-Identifier: MIT
"""Drive v3 `files` and `about` methods of the emulator (not uploads).

Each handler takes the request (see gdrive_emu.Request) and returns a Reply
or raises ApiError, which renders as Drive's v3 error body. Resource
rendering, metadata validation and the fields selector live here too, since
uploads (uploads.py) share them.
"""

import json

import fields as fieldsel
import query
from store import FOLDER_MIME, parse_rfc3339, rfc3339

USER = {"kind": "drive#user", "displayName": "gdroot emulator user",
        "emailAddress": "emulator@gdroot.invalid", "me": True,
        "permissionId": "00000000000000000001"}
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
PROPERTY_LIMIT = 124     # bytes per key + value, UTF-8, as documented for Drive

WRITABLE = {"name", "mimeType", "description", "parents", "appProperties", "properties",
            "createdTime", "modifiedTime", "trashed", "starred", "id", "originalFilename",
            "folderColorRgb", "kind"}
ACCEPTED_IGNORED = {"copyRequiresWriterPermission", "writersCanShare", "viewersCanCopyContent",
                    "contentHints", "contentRestrictions", "modifiedByMeTime", "viewedByMeTime",
                    "sharedWithMeTime", "trashedTime", "shortcutDetails", "downloadRestrictions",
                    "inheritedPermissionsDisabled", "linkShareMetadata"}
OUTPUT_ONLY = fieldsel.FILE_FIELDS - WRITABLE - ACCEPTED_IGNORED


class ApiError(Exception):
    def __init__(self, code, reason, message, domain="global", location=None,
                 location_type="parameter", headers=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.domain = code, reason, message, domain
        self.location, self.location_type = location, location_type
        self.headers = list(headers or [])

    def body(self):
        err = {"message": self.message, "domain": self.domain, "reason": self.reason}
        if self.location:
            err["location"] = self.location
            err["locationType"] = self.location_type
        out = {"code": self.code, "message": self.message, "errors": [err]}
        if self.code == 401:
            out["status"] = "UNAUTHENTICATED"
        return {"error": out}


class Reply:
    """A response. body: bytes; or blob: open file + offset + length (media)."""

    def __init__(self, status, body=b"", headers=None, blob=None, offset=0, length=0,
                 download=False):
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.blob, self.offset, self.length = blob, offset, length
        self.download = download

    @property
    def body_length(self):
        return self.length if self.blob is not None else len(self.body)


def json_reply(status, obj, headers=None, pretty=True):
    data = json.dumps(obj, indent=2 if pretty else None, ensure_ascii=False).encode("utf-8")
    if pretty:
        data += b"\n"
    return Reply(status, data, [("Content-Type", "application/json; charset=UTF-8")]
                 + list(headers or []))


def not_found(file_id, location="fileId"):
    return ApiError(404, "notFound", "File not found: %s." % file_id, location=location)


def invalid(location, message="Invalid Value"):
    return ApiError(400, "invalid", message, location=location)


# -- resource rendering ------------------------------------------------------

def _extensions(name):
    stripped = name.lstrip(".")
    if "." not in stripped or stripped.endswith("."):
        return {}
    return {"fullFileExtension": stripped.split(".", 1)[1],
            "fileExtension": stripped.rsplit(".", 1)[1]}


def resource(store, rec):
    """The full File resource for a stored record."""
    out = {"kind": "drive#file", "id": rec["id"], "name": rec["name"],
           "mimeType": rec["mimeType"], "starred": bool(rec.get("starred")),
           "trashed": store.is_trashed(rec), "explicitlyTrashed": bool(rec.get("explicitlyTrashed")),
           "spaces": ["drive"], "version": str(rec["version"]),
           "createdTime": rfc3339(rec["createdTime"]), "modifiedTime": rfc3339(rec["modifiedTime"]),
           "ownedByMe": True, "owners": [dict(USER)], "shared": False,
           "lastModifyingUser": dict(USER)}
    if rec.get("parents"):
        out["parents"] = list(rec["parents"])
    for key in ("description", "folderColorRgb"):
        if key in rec:
            out[key] = rec[key]
    for key in ("appProperties", "properties"):
        if rec.get(key):
            out[key] = dict(rec[key])
    if rec["mimeType"] == FOLDER_MIME:
        out["quotaBytesUsed"] = "0"
    else:
        out.update({"size": str(rec["size"]), "quotaBytesUsed": str(rec["size"]),
                    "md5Checksum": rec["md5Checksum"], "sha1Checksum": rec["sha1Checksum"],
                    "sha256Checksum": rec["sha256Checksum"],
                    "headRevisionId": rec["headRevisionId"],
                    "originalFilename": rec.get("originalFilename", rec["name"])})
        out.update(_extensions(rec["name"]))
    return out


def file_reply(req, rec, status=200):
    try:
        body = fieldsel.select(req.query.get("fields"), fieldsel.DEFAULT_FILE,
                               fieldsel.FILE_SCHEMA, resource(req.store, rec))
    except fieldsel.FieldsError as e:
        raise ApiError(400, "invalidParameter", str(e), location="fields")
    return json_reply(status, body, pretty=req.pretty)


def check_fields_param(req, schema):
    """Validate `fields` before doing any work, so a bad selector changes nothing."""
    text = req.query.get("fields")
    if text is None:
        return
    try:
        fieldsel.validate(fieldsel.parse(text), schema)
    except fieldsel.FieldsError as e:
        raise ApiError(400, "invalidParameter", str(e), location="fields")


# -- metadata validation -------------------------------------------------------

def _bad(message, location=None):
    return ApiError(400, "badRequest", message, location=location)


def parse_json_body(raw):
    if not raw.strip():
        return {}
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "parseError", "Parse Error: request body is not valid JSON (%s)" % e)
    if not isinstance(obj, dict):
        raise ApiError(400, "parseError", "Parse Error: request body must be a JSON object")
    return obj


def _check_map(name, value):
    if not isinstance(value, dict):
        raise _bad("Invalid value for %s: expected an object of strings." % name, name)
    for k, v in value.items():
        if v is not None and not isinstance(v, str):
            raise _bad("Invalid value for %s.%s: expected a string or null." % (name, k), name)
        size = len(k.encode("utf-8")) + len((v or "").encode("utf-8"))
        if not k or size > PROPERTY_LIMIT:
            raise ApiError(400, "invalid", "The property %s.%s is empty or larger than %d bytes "
                           "(key and value together)." % (name, k, PROPERTY_LIMIT), location=name)
    return dict(value)


def parse_metadata(store, obj, is_update, current=None):
    """Validate a File resource from a request body; returns the fields to apply
    (times as epoch ms, parents resolved). Raises ApiError like Drive."""
    meta = {}
    for key, value in obj.items():
        if key not in fieldsel.FILE_FIELDS:
            raise ApiError(400, "invalid", "Invalid JSON payload received. Unknown name \"%s\" "
                           "at 'resource': Cannot find field." % key, location=key)
        if key in OUTPUT_ONLY:
            raise ApiError(403, "fieldNotWritable", "The resource body includes fields which are "
                           "not directly writable. (%s)" % key, location=key)
        if key in ACCEPTED_IGNORED:
            continue
        if is_update and key == "parents":
            raise ApiError(403, "fieldNotWritable", "The parents field is not directly writable in "
                           "update requests. Use the addParents and removeParents parameters "
                           "instead.", location="parents")
        if is_update and key in ("id", "createdTime"):
            if key == "id" and value == current["id"]:
                continue
            raise ApiError(403, "fieldNotWritable", "The resource body includes fields which are "
                           "not directly writable. (%s)" % key, location=key)
        if key == "kind":
            if value != "drive#file":
                raise invalid("kind", "Invalid value for kind: %r." % (value,))
        elif key in ("name", "description", "originalFilename", "folderColorRgb"):
            if value is not None and not isinstance(value, str):
                raise _bad("Invalid value for %s: expected a string." % key, key)
            if key == "name" and value is None:
                raise _bad("Invalid value for name: null.", key)
            meta[key] = value
        elif key == "mimeType":
            if not isinstance(value, str) or "/" not in value:
                raise _bad("Invalid value for mimeType: %r." % (value,), key)
            meta[key] = value
        elif key in ("trashed", "starred"):
            if not isinstance(value, bool):
                raise _bad("Invalid value for %s: expected a boolean." % key, key)
            meta[key] = value
        elif key in ("appProperties", "properties"):
            meta[key] = _check_map(key, value)
        elif key in ("createdTime", "modifiedTime"):
            try:
                meta[key] = parse_rfc3339(value)
            except (ValueError, TypeError):
                raise invalid(key, "Invalid value for %s: %r is not an RFC 3339 date-time."
                              % (key, value))
        elif key == "parents":
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise _bad("Invalid value for parents: expected an array of ids.", key)
            if len(value) > 1:
                raise ApiError(403, "cannotAddParent", "Increasing the number of parents is not "
                               "allowed. A file can only have one parent folder.")
            meta[key] = [check_parent(store, p, "parents") for p in value]
        elif key == "id":
            if not isinstance(value, str):
                raise _bad("Invalid value for id.", key)
            meta[key] = value
    if is_update and current is not None and "mimeType" in meta:
        if (meta["mimeType"] == FOLDER_MIME) != (current["mimeType"] == FOLDER_MIME):
            raise ApiError(403, "fieldNotWritable", "The mimeType of a folder cannot be changed, "
                           "nor can a file become a folder.", location="mimeType")
    return meta


def check_parent(store, pid, location):
    rec = store.get(pid)
    if rec is None:
        raise not_found(pid, location)
    if rec["mimeType"] != FOLDER_MIME:
        raise invalid(location, "The parent %s is not a folder." % pid)
    return rec["id"]


def _id_list(text):
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def move_params(req, rec):
    """Validate addParents/removeParents for an update; returns (add, remove)."""
    store = req.store
    add = [check_parent(store, p, "addParents") for p in _id_list(req.query.get("addParents"))]
    remove = [store.resolve(p) for p in _id_list(req.query.get("removeParents"))]
    for p in remove:
        if p not in rec.get("parents", []):
            raise invalid("removeParents", "The file is not in parent %s." % p)
    result = [p for p in rec.get("parents", []) if p not in remove]
    result += [p for p in add if p not in result]
    if len(result) > 1:
        raise ApiError(403, "cannotAddParent", "Increasing the number of parents is not allowed. "
                       "A file can only have one parent folder.")
    if rec["id"] == store.root_id and (add or remove):
        raise ApiError(403, "insufficientFilePermissions", "The root folder cannot be moved.")
    for p in add:
        if rec["mimeType"] == FOLDER_MIME and store.is_ancestor(rec["id"], store.get(p)):
            raise invalid("addParents", "Moving folder %s into %s would create a cycle."
                          % (rec["id"], p))
    return add, remove


def get_file(req, file_id):
    rec = req.store.get(file_id)
    if rec is None:
        raise not_found(file_id)
    return rec


# -- handlers ------------------------------------------------------------------

def files_list(req):
    store = req.store
    q = req.query.get("q")
    q = q if q and q.strip() else None
    try:
        ast = query.parse_q(q) if q is not None else None
    except query.QueryError as e:
        req.note = "q rejected: %s" % e
        raise ApiError(400, "invalid", "Invalid Value (q: %s)" % e, location="q")
    size_text = req.query.get("pageSize", "100")
    try:
        page_size = int(size_text)
    except ValueError:
        page_size = 0
    if not 1 <= page_size <= 1000:
        raise invalid("pageSize", "Invalid value '%s'. Values must be within the range: [1, 1000]"
                      % size_text)
    order_text = req.query.get("orderBy", "")
    try:
        order = query.parse_order_by(order_text) if order_text.strip() else []
    except query.QueryError as e:
        raise invalid("orderBy", "Invalid Value (orderBy: %s)" % e)
    check_fields_param(req, fieldsel.FILE_LIST_SCHEMA)
    digest = query.query_digest(q or "", order_text)
    offset = 0
    token = req.query.get("pageToken")
    if token:
        try:
            offset = query.read_page_token(store.secret, token, digest)
        except query.QueryError as e:
            raise invalid("pageToken", "Invalid Value (pageToken: %s)" % e)
    with store.lock:
        matches = [f for f in store.all_files() if ast is None or query.evaluate(ast, f, req.qctx)]
        matches = query.sort_files(matches, order, FOLDER_MIME)
        page = [resource(store, f) for f in matches[offset:offset + page_size]]
    body = {"kind": "drive#fileList", "incompleteSearch": False, "files": page}
    if offset + page_size < len(matches):
        body["nextPageToken"] = query.make_page_token(store.secret, offset + page_size, digest)
    body = fieldsel.select(req.query.get("fields"), fieldsel.DEFAULT_FILE_LIST,
                           fieldsel.FILE_LIST_SCHEMA, body)
    return json_reply(200, body, pretty=req.pretty)


def parse_range(header, size):
    """(start, end) inclusive for a single-range header; None to ignore the header;
    raises ApiError 416 when unsatisfiable."""
    if header is None:
        return None
    header = header.strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    first, last = first.strip(), last.strip()
    if (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None
    unsatisfiable = ApiError(416, "requestedRangeNotSatisfiable", "Request range not satisfiable",
                             location="Range", location_type="header",
                             headers=[("Content-Range", "bytes */%d" % size)])
    if not first:
        n = int(last)
        if n == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise unsatisfiable
    return start, min(end, size - 1)


def files_get(req, file_id):
    rec = get_file(req, file_id)
    alt = req.query.get("alt", "json")
    if alt not in ("json", "media"):
        raise invalid("alt", "Invalid value for alt: %s (json or media)" % alt)
    if alt == "json":
        return file_reply(req, rec)
    req.kind = "drive.media"
    if rec["mimeType"] == FOLDER_MIME or rec["mimeType"].startswith(GOOGLE_APPS_PREFIX):
        raise ApiError(403, "fileNotDownloadable", "Only files with binary content can be "
                       "downloaded. Use Export with Docs Editors files.", location="alt")
    size = rec["size"]
    rng = parse_range(req.headers.get("Range"), size)
    blob = req.store.open_blob(rec)
    headers = [("Content-Type", rec["mimeType"]), ("Accept-Ranges", "bytes"),
               ("ETag", '"%s"' % rec["md5Checksum"]),
               ("Last-Modified", _http_date(rec["modifiedTime"]))]
    if rng is None:
        return Reply(200, headers=headers, blob=blob, offset=0, length=size, download=True)
    start, end = rng
    headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
    return Reply(206, headers=headers, blob=blob, offset=start, length=end - start + 1,
                 download=True)


def _http_date(ms):
    import email.utils
    return email.utils.formatdate(ms / 1000, usegmt=True)


def files_create(req):
    if req.query.get("uploadType") in ("media", "multipart", "resumable"):
        raise ApiError(400, "badRequest", "Uploads must be sent to the upload URL. Re-send this "
                       "request to %s/upload/drive/v3/files" % req.base_url)
    check_fields_param(req, fieldsel.FILE_SCHEMA)
    obj = parse_json_body(req.read_body())
    return file_reply(req, create_from_metadata(req, obj, None))


def create_from_metadata(req, obj, content, default_mime=None):
    """files.create core shared with uploads: validate obj, store with content."""
    store = req.store
    with store.lock:
        meta = parse_metadata(store, obj, is_update=False)
        if "mimeType" not in meta and default_mime:
            meta["mimeType"] = default_mime
        file_id = meta.pop("id", None)
        if file_id is not None and (store.get(file_id) is not None
                                    or not store.take_generated_id(file_id)):
            raise ApiError(400, "invalid", "The provided file ID is not usable.", location="id")
        if meta.get("mimeType") == FOLDER_MIME and content is not None and content["size"]:
            raise ApiError(400, "badRequest", "A folder cannot have content.")
        return store.create(meta, content, file_id)


def update_from_metadata(req, rec, obj, content):
    store = req.store
    with store.lock:
        if store.get(rec["id"]) is None:
            raise not_found(rec["id"])
        meta = parse_metadata(store, obj, is_update=True, current=rec)
        meta.pop("id", None)
        add, remove = move_params(req, rec)
        if rec["id"] == store.root_id and (meta or content is not None):
            raise ApiError(403, "insufficientFilePermissions", "The root folder cannot be modified.")
        if content is not None and rec["mimeType"] == FOLDER_MIME:
            raise ApiError(400, "badRequest", "A folder cannot have content.")
        return store.update(rec, meta, content, add, remove)


def files_update(req, file_id):
    rec = get_file(req, file_id)
    if req.query.get("uploadType") in ("media", "multipart", "resumable"):
        raise ApiError(400, "badRequest", "Uploads must be sent to the upload URL. Re-send this "
                       "request to %s/upload/drive/v3/files/%s" % (req.base_url, file_id))
    check_fields_param(req, fieldsel.FILE_SCHEMA)
    obj = parse_json_body(req.read_body())
    return file_reply(req, update_from_metadata(req, rec, obj, None))


def files_delete(req, file_id):
    rec = get_file(req, file_id)
    if rec["id"] == req.store.root_id:
        raise ApiError(403, "insufficientFilePermissions", "The root folder cannot be deleted.")
    req.store.delete(rec)
    return Reply(204)


def empty_trash(req):
    store = req.store
    with store.lock:
        for rec in [f for f in store.all_files() if f.get("explicitlyTrashed")]:
            if store.get(rec["id"]) is not None:
                store.delete(rec)
    return Reply(204)


def generate_ids(req):
    text = req.query.get("count", "10")
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 1000:
        raise invalid("count", "Invalid value '%s'. Values must be within the range: [1, 1000]" % text)
    body = {"kind": "drive#generatedIds", "space": req.query.get("space", "drive"),
            "ids": req.store.generate_ids(count)}
    body = fieldsel.select(req.query.get("fields"), "*", fieldsel.GENERATED_IDS_SCHEMA, body)
    return json_reply(200, body, pretty=req.pretty)


def about(req):
    if not req.query.get("fields"):
        raise ApiError(400, "required", "The 'fields' parameter is required for this method.",
                       location="fields")
    store = req.store
    with store.lock:
        usage = sum(f.get("size") or 0 for f in store.all_files())
        trash = sum(f.get("size") or 0 for f in store.all_files() if store.is_trashed(f))
    body = {"kind": "drive#about", "user": dict(USER),
            "storageQuota": {"limit": str(15 << 30), "usage": str(usage),
                             "usageInDrive": str(usage), "usageInDriveTrash": str(trash)},
            "maxUploadSize": "5497558138880", "appInstalled": True, "canCreateDrives": False,
            "importFormats": {}, "exportFormats": {}, "maxImportSizes": {},
            "folderColorPalette": []}
    try:
        body = fieldsel.select(req.query["fields"], None, fieldsel.ABOUT_SCHEMA, body)
    except fieldsel.FieldsError as e:
        raise ApiError(400, "invalidParameter", str(e), location="fields")
    return json_reply(200, body, pretty=req.pretty)
