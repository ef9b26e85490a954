# SPDX-License-Identifier: MIT
"""The emulator's control API under /_emu/ (no authentication, never faulted).

Tests use it to inject faults, expire tokens and sessions, approve device
codes and read request statistics. Every answer is JSON; errors are
{"error": "..."} with status 400 (bad input) or 404 (unknown endpoint).
"""

import json
import time

from drive import Reply
from faults import ConfigError


def _json(status, obj):
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return Reply(status, data, [("Content-Type", "application/json; charset=UTF-8")])


def _body(req):
    raw = req.read_body(1 << 20)
    if not raw.strip():
        return {}
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigError("request body is not valid JSON: %s" % e)
    if not isinstance(obj, (dict, list)):
        raise ConfigError("request body must be a JSON object")
    return obj


def _object(req):
    obj = _body(req)
    if not isinstance(obj, dict):
        raise ConfigError("request body must be a JSON object")
    return obj


def handle(req):
    server = req.server
    path, method = req.path, req.method
    try:
        if path == "/_emu/health" and method == "GET":
            return _json(200, {"status": "ok", "base_url": server.base_url,
                               "root_id": server.store.root_id, "pid": server.pid,
                               "uptime": round(time.time() - server.started, 3)})
        if path == "/_emu/faults":
            if method == "POST":
                server.faults.configure(_object(req))
            elif method != "GET":
                return _json(405, {"error": "use GET or POST"})
            return _json(200, server.faults.config())
        if path == "/_emu/fail-next":
            if method == "POST":
                spec = _body(req)
                for item in spec if isinstance(spec, list) else [spec]:
                    server.faults.add_rule(item)
            elif method == "DELETE":
                server.faults.clear_rules()
            elif method != "GET":
                return _json(405, {"error": "use GET, POST or DELETE"})
            return _json(200, {"pending": server.faults.pending_rules()})
        if method == "GET" and path == "/_emu/stats":
            return _json(200, server.stats.snapshot())
        if method == "GET" and path == "/_emu/device":
            return _json(200, {"devices": server.auth.pending_devices()})
        if method == "GET" and path == "/_emu/sessions":
            with server.store.lock:
                sessions = [{k: s[k] for k in ("id", "op", "file_id", "total", "committed",
                                               "done", "result", "expires")}
                            for s in server.store.db["sessions"].values()]
            return _json(200, {"sessions": sessions})
        if method != "POST":
            return _json(404, {"error": "no control endpoint %s %s" % (method, path)})
        if path == "/_emu/stats/reset":
            server.stats.reset()
            return _json(200, {"ok": True})
        if path == "/_emu/expire-tokens":
            server.auth.expire_all()
            return _json(200, {"ok": True})
        if path == "/_emu/sessions/expire":
            server.store.expire_sessions()
            return _json(200, {"ok": True})
        if path in ("/_emu/device/approve", "/_emu/device/deny"):
            code = _object(req).get("user_code")
            if not isinstance(code, str):
                raise ConfigError("give {\"user_code\": \"XXXX-XXXX\"}")
            if not server.auth.decide_device(code, path.endswith("approve")):
                return _json(404, {"error": "no pending device authorization with user_code %s"
                                   % code})
            return _json(200, {"ok": True})
        return _json(404, {"error": "no control endpoint %s %s" % (method, path)})
    except ConfigError as e:
        return _json(400, {"error": str(e)})
