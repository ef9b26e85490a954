#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""gdrive-emu: a Google Drive v3 emulator for gdroot's tests and demo.

It serves Google's OAuth token and device endpoints and the Drive v3 files
API (list with `q` and paging, get with alt=media and Range, create, update,
delete, media/multipart/resumable uploads) at Google's paths, so a client
only swaps its base URLs. Files persist byte-exact in a data folder. Faults
(HTTP errors, connection resets, truncated bodies, latency, bandwidth caps)
are injected by rate or deterministically through the /_emu/ control API.
Standard library only, plus python3-cryptography for service-account JWTs.
See README.md in this folder.
"""

import argparse
import base64
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import control  # noqa: E402
import drive  # noqa: E402
import uploads  # noqa: E402
from drive import ApiError, json_reply  # noqa: E402
from faults import ERROR_SHAPES, ConfigError, Faults, Stats, parse_codes  # noqa: E402
from oauth import Auth, OAuthError  # noqa: E402
from store import Store, atomic_write  # noqa: E402
from uploads import BodyAborted  # noqa: E402

DEFAULT_CLIENT = ("gdroot-test-client", "gdroot-test-secret")
DEFAULT_REFRESH = "gdroot-test-refresh-token"
BODY_LIMIT = 64 << 20       # JSON/form bodies; uploads stream to disk
DISCARD_LIMIT = 64 << 20    # larger unread bodies close the connection instead
IO_BLOCK = 64 * 1024
_LOG_LOCK = threading.Lock()


def log(msg):
    with _LOG_LOCK:
        sys.stderr.write("gdrive-emu: %s\n" % msg)
        sys.stderr.flush()


class QueryContext:
    def __init__(self, store):
        self.store = store
        self.user_email = drive.USER["emailAddress"]

    def resolve(self, file_id):
        return self.store.resolve(file_id)

    def is_trashed(self, rec):
        return self.store.is_trashed(rec)


class Request:
    """One HTTP request as the API handlers see it; owns reading the body."""

    def __init__(self, handler, method, target):
        self.handler = handler
        self.server = handler.server
        self.store = self.server.store
        self.qctx = self.server.qctx
        self.base_url = self.server.base_url
        self.method = method
        split = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(split.path)
        self.query_pairs = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        self.query = {}
        for k, v in self.query_pairs:
            self.query.setdefault(k, v)
        self.headers = handler.headers
        self.pretty = self.query.get("prettyPrint", "true") != "false"
        self.kind = "unknown"
        self.note = None
        self.fault = None
        self.bytes_in = 0
        self.reset_after = None      # injected reset after this many body bytes
        self.body_done = False
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        cl = self.headers.get("Content-Length")
        self.content_length = None
        if not self.chunked:
            self.content_length = int(cl) if cl and cl.strip().isdigit() else 0

    # -- body --------------------------------------------------------------

    def _raw_read(self, n):
        bw = self.server.faults.bandwidth
        if bw:
            n = min(n, max(1024, bw // 20))
            h = self.handler
            if h.bw_read_start is None:
                h.bw_read_start, h.bw_read_bytes = time.monotonic(), 0
            wait = h.bw_read_bytes / bw - (time.monotonic() - h.bw_read_start)
            if wait > 0:
                time.sleep(wait)
        data = self.handler.rfile.read(n) if n else b""
        if bw:
            self.handler.bw_read_bytes += len(data)
        return data

    def _blocks(self):
        if self.chunked:
            while True:
                line = self.handler.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise BodyAborted(self.bytes_in)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BodyAborted(self.bytes_in)
                if size == 0:
                    while self.handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                while size:
                    data = self._raw_read(min(size, IO_BLOCK))
                    if not data:
                        raise BodyAborted(self.bytes_in)
                    size -= len(data)
                    yield data
                self.handler.rfile.readline(8)
        else:
            left = self.content_length
            while left:
                data = self._raw_read(min(left, IO_BLOCK))
                if not data:
                    raise BodyAborted(self.bytes_in)
                left -= len(data)
                yield data

    def iter_body(self):
        """Yield the body in blocks; BodyAborted if it ends early or a reset is injected."""
        if self.body_done:
            return
        self.body_done = True
        self.handler.bw_read_start = None
        try:
            for data in self._blocks():
                if self.reset_after is not None and self.bytes_in + len(data) > self.reset_after:
                    keep = self.reset_after - self.bytes_in
                    self.bytes_in += keep
                    if keep:
                        yield data[:keep]
                    raise BodyAborted(self.bytes_in, injected=True)
                self.bytes_in += len(data)
                yield data
        except (OSError, ValueError):
            raise BodyAborted(self.bytes_in)

    def read_body(self, limit=BODY_LIMIT):
        if self.content_length is not None and self.content_length > limit:
            self.handler.close_connection = True
            self.body_done = True
            raise ApiError(413, "uploadTooLarge", "The request body (%d bytes) is larger than "
                           "this endpoint accepts (%d bytes)." % (self.content_length, limit))
        out = []
        total = 0
        for block in self.iter_body():
            total += len(block)
            if total > limit:
                self.handler.close_connection = True
                raise ApiError(413, "uploadTooLarge", "The request body is larger than %d bytes."
                               % limit)
            out.append(block)
        return b"".join(out)

    def discard_body(self):
        if self.body_done:
            return
        if self.content_length is not None and self.content_length > DISCARD_LIMIT:
            self.body_done = True
            self.handler.close_connection = True
            return
        saved, self.reset_after = self.reset_after, None
        try:
            for _ in self.iter_body():
                pass
        finally:
            self.reset_after = saved

    def form(self):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        raw = self.read_body(1 << 20)
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "The token endpoint expects "
                             "application/x-www-form-urlencoded (got %r)." % ctype)
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                           strict_parsing=bool(raw))
        except (UnicodeDecodeError, ValueError):
            raise OAuthError(400, "invalid_request", "Malformed form body.")
        form = {}
        for k, v in pairs:
            form.setdefault(k, v)
        return form

    def basic_auth(self):
        value = self.headers.get("Authorization") or ""
        if not value.lower().startswith("basic "):
            return None
        try:
            user, sep, pw = base64.b64decode(value[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep:
            return None
        return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(pw)


# -- routing ---------------------------------------------------------------------

FILES = "/drive/v3/files"
UPLOAD_PATHS = ("/upload/drive/v3/files", "/resumable/upload/drive/v3/files")


def _not_found(req):
    raise ApiError(404, "notFound", "Not Found: %s %s" % (req.method, req.path))


def resolve(req):
    """-> (kind, fault tags or None if never faulted, needs_auth, function)."""
    m, p, q = req.method, req.path, req.query
    if p.startswith("/_emu/"):
        return "control", None, False, control.handle
    if p == "/token" and m == "POST":
        return "token", {"token"}, False, token_endpoint
    if p == "/device/code" and m == "POST":
        return "device.code", {"token"}, False, device_endpoint
    drive_tags = {"drive"}
    if p == "/drive/v3/about" and m == "GET":
        return "drive.about", drive_tags, True, drive.about
    if p == FILES:
        if m == "GET":
            return "drive.list", drive_tags | {"list"}, True, drive.files_list
        if m == "POST":
            return "drive.create", drive_tags, True, drive.files_create
    if p == FILES + "/generateIds" and m == "GET":
        return "drive.generateIds", drive_tags, True, drive.generate_ids
    if p == FILES + "/trash" and m == "DELETE":
        return "drive.emptyTrash", drive_tags, True, drive.empty_trash
    if p.startswith(FILES + "/") and "/" not in p[len(FILES) + 1:]:
        fid = p[len(FILES) + 1:]
        if m == "GET":
            media = q.get("alt") == "media"
            return ("drive.media" if media else "drive.get",
                    drive_tags | ({"download"} if media else {"get"}), True,
                    lambda r: drive.files_get(r, fid))
        if m == "PATCH":
            return "drive.update", drive_tags, True, lambda r: drive.files_update(r, fid)
        if m == "DELETE":
            return "drive.delete", drive_tags, True, lambda r: drive.files_delete(r, fid)
    for base in UPLOAD_PATHS:
        if p == base or (p.startswith(base + "/") and "/" not in p[len(base) + 1:]):
            fid = p[len(base) + 1:] or None
            up_tags = {"drive", "upload"}
            if "upload_id" in q:
                uid = q["upload_id"]
                if m in ("PUT", "POST"):
                    return ("upload.resumable.chunk", up_tags | {"chunk"}, False,
                            lambda r: uploads.resumable_put(r, uid))
                if m == "DELETE":
                    return ("upload.resumable.cancel", up_tags, False,
                            lambda r: uploads.resumable_cancel(r, uid))
            elif fid is None and m == "POST":
                return "upload.%s" % q.get("uploadType", "unknown"), up_tags, True, uploads.upload
            elif fid is not None and m in ("PATCH", "PUT"):
                return ("upload.%s" % q.get("uploadType", "unknown"), up_tags, True,
                        lambda r: uploads.upload(r, fid))
    return "unknown", None, False, _not_found


def _oauth_reply(status, body):
    return json_reply(status, body, headers=[("Cache-Control", "no-cache, no-store, max-age=0")])


def token_endpoint(req):
    try:
        form = req.form()
        host = req.headers.get("Host") or ""
        audiences = [req.base_url + "/token"]
        if host:
            audiences.append("%s://%s/token" % (req.server.scheme, host))
        return _oauth_reply(200, req.server.auth.token(form, req.basic_auth(), audiences))
    except OAuthError as e:
        req.note = e.body["error"]
        return _oauth_reply(e.status, e.body)


def device_endpoint(req):
    try:
        return _oauth_reply(200, req.server.auth.device_code(req.form(), req.basic_auth(),
                                                             req.base_url))
    except OAuthError as e:
        req.note = e.body["error"]
        return _oauth_reply(e.status, e.body)


def check_auth(req):
    value = req.headers.get("Authorization")
    token = None
    if value and value[:7].lower() == "bearer ":
        token = value[7:].strip()
    elif "access_token" in req.query:
        token = req.query["access_token"]
    realm = 'Bearer realm="https://accounts.google.com/"'
    if not token:
        raise ApiError(401, "required", "Request is missing required authentication credential. "
                       "Expected OAuth 2 access token, login cookie or other valid "
                       "authentication credential.", location="Authorization",
                       location_type="header", headers=[("WWW-Authenticate", realm)])
    state = req.server.auth.check_bearer(token)
    if state != "ok":
        req.note = "token %s" % state
        raise ApiError(401, "authError", "Request had invalid authentication credentials. "
                       "Expected OAuth 2 access token, login cookie or other valid "
                       "authentication credential. (The access token is %s.)" % state,
                       location="Authorization", location_type="header",
                       headers=[("WWW-Authenticate", realm + ', error="invalid_token"')])


def fault_reply(code, retry_after):
    domain, reason, message = ERROR_SHAPES.get(code, ("global", "backendError", "Backend Error"))
    err = ApiError(code, reason, message, domain=domain)
    headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
    return json_reply(code, err.body(), headers=headers)


def error_reply(req, e):
    return json_reply(e.code, e.body(), headers=e.headers, pretty=req.pretty)


# -- HTTP ------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gdrive-emu/1.0"
    sys_version = ""
    timeout = 300

    def setup(self):
        self.tls_error = None
        self.bw_read_start = None
        self.bw_read_bytes = 0
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.settimeout(10)
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                self.tls_error = e
        super().setup()

    def handle(self):
        if self.tls_error is not None:
            if not self.server.quiet:
                log("%s TLS handshake failed: %s" % (self.client_address[0], self.tls_error))
            self.close_connection = True
            return
        super().handle()

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            log("%s %s" % (self.client_address[0], fmt % args))

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by dispatch()

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        t0 = time.monotonic()
        server = self.server
        req = Request(self, method, self.path)
        kind, tags, needs_auth, func = resolve(req)
        req.kind = kind
        reply = None
        try:
            picked = None
            if tags is not None:
                picked = server.faults.pick_error(tags, "token" in tags)
            if picked is not None:
                req.discard_body()
                req.fault = "http_%d" % picked[0]
                reply = fault_reply(*picked)
            else:
                if needs_auth:
                    check_auth(req)
                # Body faults hit media bytes, not the JSON that opens a
                # resumable session (kind "upload.resumable", not yet refined to
                # ".init" by the handler).
                if (tags is not None and "upload" in tags and req.content_length
                        and kind != "upload.resumable"):
                    bf = server.faults.pick_body_fault("upload", req.content_length)
                    if bf is not None:
                        req.reset_after = bf[1]
                reply = func(req)
        except ApiError as e:
            reply = error_reply(req, e)
        except BodyAborted as e:
            if e.injected:
                req.fault = "reset"
            self._finish_aborted(req, t0, e)
            return
        except Exception:
            log("internal error on %s %s:\n%s" % (method, req.path, traceback.format_exc()))
            reply = fault_reply(500, None)
        try:
            req.discard_body()
        except BodyAborted as e:
            self._finish_aborted(req, t0, e)
            return
        self.send_reply(req, reply, t0)

    def _record(self, req, status, bytes_out, t0):
        entry = {"method": req.method, "path": req.path, "kind": req.kind, "status": status,
                 "range": self.headers.get("Range"),
                 "content_range": self.headers.get("Content-Range"),
                 "bytes_in": req.bytes_in, "bytes_out": bytes_out, "fault": req.fault,
                 "time": round(time.time(), 3)}
        if req.kind != "control":  # the harness's own calls stay out of the statistics
            self.server.stats.record(entry)
        if not self.server.quiet:
            extra = "".join(" [%s]" % x for x in (req.fault, req.note) if x)
            log("%s %s %s %s in=%d out=%d %.0fms %s%s" % (
                self.client_address[0], req.method, req.path, status, req.bytes_in, bytes_out,
                (time.monotonic() - t0) * 1000, req.kind, extra))

    def _finish_aborted(self, req, t0, e):
        self._record(req, 0, 0, t0)
        if e.injected:
            self.reset_connection()
        self.close_connection = True

    def reset_connection(self):
        """Close so the peer sees ECONNRESET: SO_LINGER 0, then really close the fd."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()  # drops the makefile() reference that keeps the fd open
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def send_reply(self, req, reply, t0):
        server = self.server
        status = reply.status
        length = reply.body_length
        body_fault = None
        if reply.download and status in (200, 206):
            body_fault = server.faults.pick_body_fault("download", length)
            if body_fault is not None:
                req.fault = body_fault[0]
        latency = server.faults.latency_ms
        if latency:
            time.sleep(latency / 1000.0)
        messages = {308: "Resume Incomplete", 499: "Client Closed Request"}
        self.send_response(status, messages.get(status))
        for name, value in reply.headers:
            self.send_header(name, value)
        if status != 204 and status >= 200:
            self.send_header("Content-Length", str(length))
        if self.close_connection and body_fault is None:
            self.send_header("Connection", "close")
        to_send = body_fault[1] if body_fault else length
        self._record(req, status, to_send, t0)
        try:
            self.end_headers()
            self._write_body(reply, to_send)
        except OSError:
            self.close_connection = True
            return
        finally:
            if reply.blob is not None:
                reply.blob.close()
        if body_fault is not None:
            if body_fault[0] == "reset":
                self.reset_connection()
            else:
                self.close_connection = True

    def _write_body(self, reply, count):
        bw = self.server.faults.bandwidth
        step = max(1024, min(IO_BLOCK, bw // 20)) if bw else IO_BLOCK
        start, sent = time.monotonic(), 0
        if reply.blob is not None:
            reply.blob.seek(reply.offset)
        while sent < count:
            n = min(step, count - sent)
            if reply.blob is not None:
                data = reply.blob.read(n)
                if not data:
                    raise OSError("blob shorter than announced")
            else:
                data = reply.body[sent:sent + n]
            if bw:
                wait = sent / bw - (time.monotonic() - start)
                if wait > 0:
                    time.sleep(wait)
            self.wfile.write(data)
            sent += len(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            if not self.quiet:
                log("%s connection error: %s" % (client_address[0], exc))
            return
        log("error serving %s:\n%s" % (client_address[0], traceback.format_exc()))


# -- CLI -------------------------------------------------------------------------

def _rate(text):
    v = float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return v


def _pair(sep):
    def parse(text):
        a, s, b = text.partition(sep)
        if not s or not a or not b:
            raise argparse.ArgumentTypeError("expected A%sB, got %r" % (sep, text))
        return a, b
    return parse


def _codes(text):
    try:
        return parse_codes(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e))


def build_parser():
    p = argparse.ArgumentParser(description="Google Drive v3 emulator for gdroot tests.")
    p.add_argument("--data", required=True, help="persistence folder (created if missing)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--ready-file", help="write the base URL here once listening")
    p.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--token-lifetime", type=float, default=3600.0, metavar="SECONDS")
    p.add_argument("--client", type=_pair(":"), action="append", metavar="ID:SECRET")
    p.add_argument("--refresh-token", action="append", metavar="TOKEN")
    p.add_argument("--service-account", type=_pair("="), action="append",
                   metavar="EMAIL=PUBKEY.pem")
    p.add_argument("--device-interval", type=float, default=1.0, metavar="SECONDS")
    p.add_argument("--device-code-lifetime", type=float, default=1800.0, metavar="SECONDS")
    p.add_argument("--device-auto-approve", type=int, metavar="N",
                   help="approve device codes after N polls (default: never)")
    p.add_argument("--session-lifetime", type=float, default=7 * 86400.0, metavar="SECONDS")
    p.add_argument("--fault-rate", type=_rate, default=0.0, metavar="F")
    p.add_argument("--fault-codes", type=_codes, default=[429, 403, 500, 503], metavar="LIST")
    p.add_argument("--fault-token", action="store_true",
                   help="let --fault-rate hit /token and /device/code too")
    p.add_argument("--reset-rate", type=_rate, default=0.0, metavar="F")
    p.add_argument("--truncate-rate", type=_rate, default=0.0, metavar="F")
    p.add_argument("--latency-ms", type=float, default=0.0, metavar="N")
    p.add_argument("--bandwidth", type=int, default=0, metavar="BYTES_PER_SEC")
    p.add_argument("--seed", type=int, help="random (but reproducible) fault selection")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    return p


def load_public_key(path):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    with open(path, "rb") as f:
        data = f.read()
    if b"BEGIN CERTIFICATE" in data:
        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise SystemExit("gdrive-emu: %s: not an RSA public key" % path)
    return key


def main(argv=None):
    args = build_parser().parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("gdrive-emu: --tls-cert and --tls-key go together")
    store = Store(args.data)
    store.prune_sessions()
    accounts = {email: load_public_key(path) for email, path in args.service_account or []}
    auth = Auth(store, dict(args.client or [DEFAULT_CLIENT]), args.refresh_token or [DEFAULT_REFRESH],
                accounts, args.token_lifetime, args.device_interval, args.device_code_lifetime,
                args.device_auto_approve)
    server = Server((args.host, args.port), Handler)
    server.tls = None
    server.scheme = "http"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.tls, server.scheme = ctx, "https"
    host, port = server.server_address[:2]
    url_host = "[%s]" % host if ":" in host else host
    server.base_url = "%s://%s:%d" % (server.scheme, url_host, port)
    server.store, server.auth = store, auth
    server.qctx = QueryContext(store)
    server.faults = Faults(args.fault_rate, args.fault_codes, args.reset_rate, args.truncate_rate,
                           args.latency_ms, args.bandwidth, args.fault_token, args.seed)
    server.stats = Stats()
    server.session_lifetime = args.session_lifetime
    server.quiet = args.quiet
    server.pid = os.getpid()
    server.started = time.time()

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if args.ready_file:
        atomic_write(args.ready_file, (server.base_url + "\n").encode("ascii"))
    sys.stdout.write("READY %s\n" % server.base_url)
    sys.stdout.flush()
    log("serving %s with data in %s (root %s)" % (server.base_url, store.dir, store.root_id))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
