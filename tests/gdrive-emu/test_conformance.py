# SPDX-License-Identifier: MIT
"""Conformance tests for the Google Drive v3 emulator (gdrive_emu.py).

Each test talks raw HTTP (http.client) to an emulator subprocess started on
port 0 and found through its ready file, and checks status codes, headers
and JSON shapes. Run: /usr/bin/python3 -m pytest -q tests/gdrive-emu
"""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EMU = os.path.join(HERE, "gdrive_emu.py")
PY = "/usr/bin/python3"
CLIENT_ID, CLIENT_SECRET = "gdroot-test-client", "gdroot-test-secret"
REFRESH = "gdroot-test-refresh-token"
FOLDER = "application/vnd.google-apps.folder"
KIB = 1024
CHUNK = 256 * KIB


class Resp:
    def __init__(self, status, headers, data):
        self.status, self.headers, self.data = status, headers, data

    def json(self):
        return json.loads(self.data.decode("utf-8"))

    def reason(self):
        return self.json()["error"]["errors"][0]["reason"]

    def __repr__(self):
        return "<Resp %d %r>" % (self.status, self.data[:300])


class Emu:
    """An emulator subprocess plus small HTTP helpers."""

    def __init__(self, workdir, *args, data=None, cafile=None):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.data = data or os.path.join(workdir, "data")
        self.args = list(args)
        self.cafile = cafile
        self._token = None
        self.start()

    def start(self):
        ready = os.path.join(self.workdir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.log = open(os.path.join(self.workdir, "emu.log"), "ab")
        self.proc = subprocess.Popen([PY, EMU, "--data", self.data, "--ready-file", ready]
                                     + self.args, stdout=subprocess.PIPE, stderr=self.log)
        deadline = time.monotonic() + 15
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise RuntimeError("emulator exited with %s; log in %s" % (self.proc.returncode,
                                                                           self.log.name))
            if time.monotonic() > deadline:
                raise RuntimeError("emulator not ready after 15 s")
            time.sleep(0.01)
        with open(ready) as f:
            self.base = f.read().strip()
        line = self.proc.stdout.readline().decode().strip()
        assert line == "READY " + self.base
        u = urllib.parse.urlsplit(self.base)
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def conn(self, timeout=20, context=None):
        if self.scheme == "https":
            ctx = context or ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def token(self):
        if self._token is None:
            r = self.form("/token", grant_type="refresh_token", client_id=CLIENT_ID,
                          client_secret=CLIENT_SECRET, refresh_token=REFRESH)
            assert r.status == 200, r
            self._token = r.json()["access_token"]
        return self._token

    def raw(self, method, path, body=None, headers=None, conn=None):
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            if conn is None:
                c.close()

    def req(self, method, path, body=None, headers=None, auth=True, conn=None):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + (auth if isinstance(auth, str) else self.token())
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json; charset=UTF-8")
        return self.raw(method, path, body, h, conn)

    def form(self, path, **fields):
        return self.raw("POST", path, urllib.parse.urlencode(fields).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"})

    def ctl(self, path, obj=None, method=None):
        method = method or ("GET" if obj is None else "POST")
        body = json.dumps(obj).encode() if obj is not None else None
        r = self.raw(method, "/_emu/" + path, body, {"Content-Type": "application/json"})
        assert r.status == 200, r
        return r.json()

    # Drive helpers
    def mkdir(self, name, parent="root"):
        r = self.req("POST", "/drive/v3/files?fields=id,parents",
                     {"name": name, "mimeType": FOLDER, "parents": [parent]})
        assert r.status == 200, r
        return r.json()["id"]

    def put(self, name, data, parent="root", mime="application/octet-stream", extra=None):
        meta = dict(extra or {}, name=name, parents=[parent])
        body, ctype = multipart_body(meta, data, mime)
        r = self.req("POST", "/upload/drive/v3/files?uploadType=multipart&fields=*", body,
                     {"Content-Type": ctype})
        assert r.status == 200, r
        return r.json()

    def media(self, file_id, rng=None):
        h = {"Range": rng} if rng else {}
        return self.req("GET", "/drive/v3/files/%s?alt=media" % file_id, headers=h)

    def names(self, q, **params):
        params.update(q=q, pageSize="1000", fields="files(name)")
        r = self.req("GET", "/drive/v3/files?" + urllib.parse.urlencode(params))
        assert r.status == 200, r
        return sorted(f["name"] for f in r.json()["files"])


def multipart_body(meta, data, mime, boundary="gdroot_b0undary"):
    body = (b"--" + boundary.encode() + b"\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            + json.dumps(meta).encode() + b"\r\n--" + boundary.encode()
            + b"\r\nContent-Type: " + mime.encode() + b"\r\n\r\n" + data
            + b"\r\n--" + boundary.encode() + b"--\r\n")
    return body, "multipart/related; boundary=" + boundary


def wait_until(pred, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(step)


@pytest.fixture(scope="session")
def emu(tmp_path_factory):
    e = Emu(str(tmp_path_factory.mktemp("shared")))
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def _clean_faults(request):
    if "emu" in request.fixturenames:
        e = request.getfixturevalue("emu")
        e.ctl("faults", {})
        e.ctl("fail-next", method="DELETE")
        e.ctl("stats/reset", {})
    yield


@pytest.fixture
def start_emu(tmp_path):
    started = []

    def start(*args, name="custom", **kw):
        e = Emu(str(tmp_path / ("%s%d" % (name, len(started)))), *args, **kw)
        started.append(e)
        return e
    yield start
    for e in started:
        e.stop()


@pytest.fixture
def folder(emu, request):
    return emu.mkdir("t-" + request.node.name[:40])


# -- OAuth --------------------------------------------------------------------------

def test_refresh_grant_shape(emu):
    r = emu.form("/token", grant_type="refresh_token", client_id=CLIENT_ID,
                 client_secret=CLIENT_SECRET, refresh_token=REFRESH)
    assert r.status == 200
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert r.headers["Content-Type"].startswith("application/json")
    assert emu.req("GET", "/drive/v3/files", auth=body["access_token"]).status == 200


def test_refresh_grant_basic_client_auth(emu):
    basic = base64.b64encode(("%s:%s" % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()
    r = emu.raw("POST", "/token", urllib.parse.urlencode(
        {"grant_type": "refresh_token", "refresh_token": REFRESH}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic " + basic})
    assert r.status == 200, r


@pytest.mark.parametrize("fields,status,error", [
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_id": "nobody"}, 401, "invalid_client"),
    ({"refresh_token": "revoked"}, 400, "invalid_grant"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ({"grant_type": None}, 400, "invalid_request"),
    ({"refresh_token": None}, 400, "invalid_request"),
])
def test_token_errors(emu, fields, status, error):
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH}
    form.update(fields)
    r = emu.form("/token", **{k: v for k, v in form.items() if v is not None})
    assert r.status == status, r
    assert r.json()["error"] == error


def test_token_requires_form_encoding(emu):
    r = emu.raw("POST", "/token", json.dumps({"grant_type": "refresh_token"}).encode(),
                {"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"] == "invalid_request"


def _device_poll(e, code):
    return e.form("/token", grant_type="urn:ietf:params:oauth:grant-type:device_code",
                  client_id=CLIENT_ID, client_secret=CLIENT_SECRET, device_code=code)


def test_device_flow(start_emu):
    e = start_emu("--device-interval", "0.3")
    r = e.form("/device/code", client_id=CLIENT_ID, scope="https://www.googleapis.com/auth/drive")
    assert r.status == 200, r
    dev = r.json()
    assert set(dev) == {"device_code", "user_code", "verification_url", "expires_in", "interval"}
    assert dev["interval"] == 0.3 and dev["expires_in"] > 0
    r = _device_poll(e, dev["device_code"])
    assert r.status == 428 and r.json()["error"] == "authorization_pending"
    r = _device_poll(e, dev["device_code"])           # faster than the interval
    assert r.status == 403 and r.json()["error"] == "slow_down"
    e.ctl("device/approve", {"user_code": dev["user_code"]})
    time.sleep(0.35)  # honour the advertised polling interval
    r = _device_poll(e, dev["device_code"])
    assert r.status == 200, r
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["refresh_token"] and tok["scope"]
    assert e.req("GET", "/drive/v3/files", auth=tok["access_token"]).status == 200
    r = e.form("/token", grant_type="refresh_token", client_id=CLIENT_ID,
               client_secret=CLIENT_SECRET, refresh_token=tok["refresh_token"])
    assert r.status == 200, r
    time.sleep(0.35)
    assert _device_poll(e, dev["device_code"]).json()["error"] == "invalid_grant"


def test_device_flow_denied_and_unknown(start_emu):
    e = start_emu("--device-interval", "0")
    dev = e.form("/device/code", client_id=CLIENT_ID, scope="drive").json()
    e.ctl("device/deny", {"user_code": dev["user_code"]})
    r = _device_poll(e, dev["device_code"])
    assert r.status == 403 and r.json()["error"] == "access_denied"
    assert _device_poll(e, "no-such-code").json()["error"] == "invalid_grant"
    assert e.form("/device/code", client_id="nobody", scope="x").status == 401
    assert e.raw("POST", "/_emu/device/approve", b'{"user_code":"ZZZZ-ZZZZ"}').status == 404


def test_device_flow_expiry(start_emu):
    e = start_emu("--device-interval", "0", "--device-code-lifetime", "0.5")
    dev = e.form("/device/code", client_id=CLIENT_ID, scope="drive").json()
    wait_until(lambda: _device_poll(e, dev["device_code"]).status != 428, step=0.05)
    r = _device_poll(e, dev["device_code"])
    assert r.status == 400 and r.json()["error"] == "expired_token"


def test_device_auto_approve(start_emu):
    e = start_emu("--device-interval", "0", "--device-auto-approve", "2")
    dev = e.form("/device/code", client_id=CLIENT_ID, scope="drive").json()
    assert [_device_poll(e, dev["device_code"]).status for _ in range(3)] == [428, 428, 200]


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    d = tmp_path_factory.mktemp("keys")
    keys = {}
    for name in ("good", "other"):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = d / (name + ".pub.pem")
        pub.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
        keys[name] = (k, str(pub))
    return keys


def make_jwt(key, claims, alg="RS256"):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = key.sign(("%s.%s" % (head, body)).encode(), padding.PKCS1v15(), hashes.SHA256())
    return "%s.%s.%s" % (head, body, b64(sig))


def test_jwt_bearer_grant(start_emu, rsa_keys):
    sa = "robot@gdroot-test.iam.gserviceaccount.com"
    e = start_emu("--service-account", "%s=%s" % (sa, rsa_keys["good"][1]))
    key = rsa_keys["good"][0]
    now = int(time.time())
    good = {"iss": sa, "scope": "https://www.googleapis.com/auth/drive",
            "aud": e.base + "/token", "iat": now, "exp": now + 3600}

    def grant(assertion):
        return e.form("/token", grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                      assertion=assertion)
    r = grant(make_jwt(key, good))
    assert r.status == 200, r
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert "refresh_token" not in body
    assert e.req("GET", "/drive/v3/files", auth=body["access_token"]).status == 200
    host_aud = dict(good, aud="http://localhost:%d/token" % e.port)
    assert grant(make_jwt(key, host_aud)).status == 400   # not the URL this client used
    bad = [
        make_jwt(rsa_keys["other"][0], good),                       # wrong key
        make_jwt(key, dict(good, aud="https://oauth2.googleapis.com/token")),
        make_jwt(key, dict(good, exp=now + 3601)),                   # longer than an hour
        make_jwt(key, dict(good, iat=now - 7200, exp=now - 3600)),   # expired
        make_jwt(key, dict(good, iss="stranger@example.com")),
        make_jwt(key, dict(good, exp="soon")),
        "not.a.jwt", "onlyonepart",
    ]
    for assertion in bad:
        r = grant(assertion)
        assert r.status == 400 and r.json()["error"] == "invalid_grant", (assertion, r)
    nos = dict(good)
    del nos["scope"]
    assert grant(make_jwt(key, nos)).json()["error"] == "invalid_scope"
    tampered = make_jwt(key, good).split(".")
    tampered[1] = base64.urlsafe_b64encode(json.dumps(dict(good, scope="x")).encode()).rstrip(
        b"=").decode()
    assert grant(".".join(tampered)).json()["error_description"] == "Invalid JWT Signature."


def _assert_401(r):
    assert r.status == 401, r
    assert r.headers["WWW-Authenticate"].startswith("Bearer realm=")
    err = r.json()["error"]
    assert err["code"] == 401
    e0 = err["errors"][0]
    assert e0["location"] == "Authorization" and e0["locationType"] == "header"
    assert e0["domain"] == "global"
    return e0["reason"]


def test_401_missing_and_invalid(emu):
    assert _assert_401(emu.req("GET", "/drive/v3/files", auth=False)) == "required"
    assert _assert_401(emu.req("GET", "/drive/v3/files", auth="ya29.bogus")) == "authError"
    r = emu.req("GET", "/drive/v3/files", headers={"Authorization": "Basic eDp5"}, auth=False)
    _assert_401(r)
    tok = emu.token()
    assert emu.req("GET", "/drive/v3/files?access_token=" + tok, auth=False).status == 200


def test_expire_tokens_control(emu):
    tok = emu.token()
    assert emu.req("GET", "/drive/v3/files", auth=tok).status == 200
    emu.ctl("expire-tokens", {})
    r = emu.req("GET", "/drive/v3/files", auth=tok)
    assert _assert_401(r) == "authError"
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    emu._token = None
    assert emu.req("GET", "/drive/v3/files").status == 200


def test_token_lifetime(start_emu):
    e = start_emu("--token-lifetime", "1")
    r = e.form("/token", grant_type="refresh_token", client_id=CLIENT_ID,
               client_secret=CLIENT_SECRET, refresh_token=REFRESH)
    assert r.json()["expires_in"] == 1
    tok = r.json()["access_token"]
    assert e.req("GET", "/drive/v3/files", auth=tok).status == 200
    wait_until(lambda: e.req("GET", "/drive/v3/files", auth=tok).status == 401, step=0.1)


# -- files.list: q, paging, orderBy, fields --------------------------------------------

GOOD_Q = [
    "'root' in parents", "name = 'a'", "name != 'a'", "name contains 'a'", "name = 'it\\'s'",
    "name = 'back\\\\slash'", "trashed = false", "trashed=true", "starred = false",
    "mimeType = 'application/vnd.google-apps.folder'", "mimeType != 'text/plain'",
    "mimeType contains 'image/'", "appProperties has { key='k' and value='v' }",
    "properties has {key='k' and value='v'}", "not trashed = true", "not name contains 'x'",
    "(name = 'a' or name = 'b') and trashed = false", "((name='a'))",
    "modifiedTime > '2020-01-01T00:00:00Z'", "createdTime <= '2020-01-01T00:00:00.123+02:00'",
    "'me' in owners", "   name='x'   ", "name = ''",
]
BAD_Q = [
    "name = a", "name = 'a", "name == 'a'", "nme = 'a'", "name = 'a' and", "name = 'a' foo",
    "(name = 'a'", "name = 'a')", "trashed = maybe", "trashed contains 'x'", "'x' in children",
    "name = 'bad\\escape'", "appProperties has { key='k' }", "name = \"a\"", "and", "not",
    "modifiedTime > 'yesterday'", "name < 'a'", "fullText contains 'x'", "name = 'a' name = 'b'",
    "'x' in", "appProperties has { key='k' or value='v' }", "name = 'a' & name = 'b'", "()",
]


@pytest.mark.parametrize("q", GOOD_Q)
def test_q_accepted(emu, q):
    r = emu.req("GET", "/drive/v3/files?" + urllib.parse.urlencode({"q": q}))
    assert r.status == 200, r
    assert r.json()["kind"] == "drive#fileList"


@pytest.mark.parametrize("q", BAD_Q)
def test_q_rejected(emu, q):
    r = emu.req("GET", "/drive/v3/files?" + urllib.parse.urlencode({"q": q}))
    assert r.status == 400, r
    e0 = r.json()["error"]["errors"][0]
    assert e0["reason"] == "invalid" and e0["location"] == "q"
    assert e0["locationType"] == "parameter"


def test_q_semantics(emu, folder):
    sub = emu.mkdir("sub", folder)
    emu.put("alpha.txt", b"1", folder, "text/plain", {"appProperties": {"k": "v"}})
    emu.put("Alpha beta", b"2", folder, "image/png")
    emu.put("betagamma", b"3", folder)
    emu.put("it's", b"4", folder, extra={"properties": {"k": "w"}})
    emu.put("back\\slash", b"5", folder)
    gone = emu.put("trashed one", b"6", folder)
    emu.put("alpha.txt", b"7", sub)
    assert emu.req("PATCH", "/drive/v3/files/" + gone["id"], {"trashed": True}).status == 200
    inf = "'%s' in parents" % folder
    everything = ["Alpha beta", "alpha.txt", "back\\slash", "betagamma", "it's", "sub",
                  "trashed one"]
    assert emu.names(inf) == everything                     # trashed files included
    assert "trashed one" not in emu.names(inf + " and trashed = false")
    assert emu.names(inf + " and trashed = true") == ["trashed one"]
    assert emu.names(inf + " and name = 'alpha.txt'") == ["alpha.txt"]
    assert emu.names(inf + " and name contains 'alpha'") == ["Alpha beta", "alpha.txt"]
    assert emu.names(inf + " and name contains 'beta'") == ["Alpha beta", "betagamma"]
    assert emu.names(inf + " and name contains 'gamma'") == []      # prefix match only
    assert emu.names(inf + " and name = 'it\\'s'") == ["it's"]
    assert emu.names(inf + " and name = 'back\\\\slash'") == ["back\\slash"]
    assert emu.names(inf + " and mimeType = '%s'" % FOLDER) == ["sub"]
    assert emu.names(inf + " and mimeType contains 'image'") == ["Alpha beta"]
    assert emu.names(inf + " and appProperties has { key='k' and value='v' }") == ["alpha.txt"]
    assert emu.names(inf + " and properties has { key='k' and value='w' }") == ["it's"]
    assert emu.names(inf + " and appProperties has { key='k' and value='w' }") == []
    assert emu.names("(%s or '%s' in parents) and name = 'alpha.txt'" % (inf, sub)) == [
        "alpha.txt", "alpha.txt"]
    assert emu.names(inf + " and not (name contains 'alpha' or name contains 'beta')") == [
        "back\\slash", "it's", "sub", "trashed one"]
    assert emu.names("name = 'alpha.txt' and '%s' in parents" % sub) == ["alpha.txt"]


def test_root_alias_and_root_not_listed(emu):
    f = emu.put("at-root-alias", b"x", "root")
    root_id = emu.ctl("health")["root_id"]
    assert f["parents"] == [root_id]
    assert "at-root-alias" in emu.names("'root' in parents")
    assert "at-root-alias" in emu.names("'%s' in parents" % root_id)
    r = emu.req("GET", "/drive/v3/files/root?fields=id,name,mimeType")
    assert r.json() == {"id": root_id, "name": "My Drive", "mimeType": FOLDER}
    ids = [x["id"] for x in emu.req("GET", "/drive/v3/files?pageSize=1000").json()["files"]]
    assert root_id not in ids


def test_paging(emu, folder):
    made = [emu.put("p%02d" % i, b"x", folder)["id"] for i in range(25)]
    q = urllib.parse.urlencode({"q": "'%s' in parents" % folder, "pageSize": "10"})
    seen, sizes, tokens = [], [], [None]
    while True:
        token = tokens[-1]
        r = emu.req("GET", "/drive/v3/files?%s%s" % (q, "&pageToken=" + token if token else ""))
        assert r.status == 200, r
        body = r.json()
        sizes.append(len(body["files"]))
        seen += [f["id"] for f in body["files"]]
        if "nextPageToken" not in body:
            break
        tokens.append(body["nextPageToken"])
    first_token = tokens[1]
    assert sizes == [10, 10, 5]
    assert seen == made                                   # default order: creation order
    bad = first_token[:-3] + ("AAA" if first_token[-3:] != "AAA" else "BBB")
    for tok in (bad, "garbage!", "e30", first_token + "x"):
        r = emu.req("GET", "/drive/v3/files?%s&pageToken=%s" % (q, urllib.parse.quote(tok)))
        assert r.status == 400, (tok, r)
        assert r.json()["error"]["errors"][0]["location"] == "pageToken"
    other = urllib.parse.urlencode({"q": "name = 'p01'", "pageSize": "10",
                                    "pageToken": first_token})
    r = emu.req("GET", "/drive/v3/files?" + other)
    assert r.status == 400 and r.json()["error"]["errors"][0]["location"] == "pageToken"


@pytest.mark.parametrize("size", ["0", "1001", "-1", "ten", ""])
def test_page_size_bounds(emu, size):
    r = emu.req("GET", "/drive/v3/files?pageSize=" + size)
    assert r.status == 400, r
    assert r.json()["error"]["errors"][0] == {
        "message": r.json()["error"]["message"], "domain": "global", "reason": "invalid",
        "location": "pageSize", "locationType": "parameter"}


def test_page_size_limits_accepted(emu):
    assert emu.req("GET", "/drive/v3/files?pageSize=1").status == 200
    assert emu.req("GET", "/drive/v3/files?pageSize=1000").status == 200


def test_order_by(emu, folder):
    for n in ("b", "c", "a"):
        emu.put(n, b"x", folder)
    base = {"q": "'%s' in parents" % folder, "fields": "files(name)"}

    def order(o):
        r = emu.req("GET", "/drive/v3/files?" + urllib.parse.urlencode(dict(base, orderBy=o)))
        assert r.status == 200, r
        return [f["name"] for f in r.json()["files"]]
    assert order("name") == ["a", "b", "c"]
    assert order("name desc") == ["c", "b", "a"]
    assert order("createdTime") == ["b", "c", "a"]
    assert order("createdTime desc") == ["a", "c", "b"]
    assert order("modifiedTime desc,name") == ["a", "c", "b"]
    for bad in ("bogus", "name sideways", "name,,", "name desc asc"):
        r = emu.req("GET", "/drive/v3/files?" + urllib.parse.urlencode(dict(base, orderBy=bad)))
        assert r.status == 400 and r.json()["error"]["errors"][0]["location"] == "orderBy"


def test_list_fields(emu, folder):
    emu.put("one", b"abc", folder)
    emu.put("two", b"defg", folder)
    q = "q=" + urllib.parse.quote("'%s' in parents" % folder)
    body = emu.req("GET", "/drive/v3/files?%s&pageSize=1" % q).json()
    assert set(body) == {"kind", "incompleteSearch", "nextPageToken", "files"}
    assert body["kind"] == "drive#fileList" and body["incompleteSearch"] is False
    assert set(body["files"][0]) == {"kind", "id", "name", "mimeType"}
    body = emu.req("GET", "/drive/v3/files?%s&pageSize=1&fields=nextPageToken,files(id,name,size)"
                   % q).json()
    assert set(body) == {"nextPageToken", "files"}
    assert set(body["files"][0]) == {"id", "name", "size"} and body["files"][0]["size"] == "3"
    body = emu.req("GET", "/drive/v3/files?%s&fields=files/id" % q).json()
    assert body == {"files": [{"id": body["files"][0]["id"]}, {"id": body["files"][1]["id"]}]}
    body = emu.req("GET", "/drive/v3/files?%s&fields=*" % q).json()
    assert {"md5Checksum", "sha256Checksum", "parents", "size"} <= set(body["files"][0])
    body = emu.req("GET", "/drive/v3/files?%s&fields=files(*)" % q).json()
    assert set(body) == {"files"} and "md5Checksum" in body["files"][0]
    for bad in ("bogus", "files(bogus)", "files(id", "files/", ",", "files(id))"):
        r = emu.req("GET", "/drive/v3/files?%s&fields=%s" % (q, urllib.parse.quote(bad)))
        assert r.status == 400, (bad, r)
        assert r.json()["error"]["errors"][0]["location"] == "fields"


# -- files.get, metadata ----------------------------------------------------------------

def test_get_defaults_and_full_resource(emu, folder):
    data = b"hello drive\n"
    f = emu.put("hello.txt", data, folder, "text/plain",
                {"appProperties": {"a": "1"}, "properties": {"p": "q"}, "description": "d"})
    r = emu.req("GET", "/drive/v3/files/" + f["id"])
    assert r.status == 200
    assert r.json() == {"kind": "drive#file", "id": f["id"], "name": "hello.txt",
                        "mimeType": "text/plain"}
    full = emu.req("GET", "/drive/v3/files/%s?fields=*" % f["id"]).json()
    assert full["size"] == str(len(data)) and isinstance(full["size"], str)
    assert full["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert full["sha256Checksum"] == hashlib.sha256(data).hexdigest()
    assert full["parents"] == [folder] and full["trashed"] is False
    assert full["appProperties"] == {"a": "1"} and full["properties"] == {"p": "q"}
    assert full["description"] == "d" and isinstance(full["version"], str)
    assert full["headRevisionId"] and full["kind"] == "drive#file"
    for k in ("createdTime", "modifiedTime"):
        assert len(full[k]) == 24 and full[k].endswith("Z") and full[k][19] == ".", full[k]
    nested = emu.req("GET", "/drive/v3/files/%s?fields=id,appProperties/a" % f["id"]).json()
    assert nested == {"id": f["id"], "appProperties": {"a": "1"}}
    d = emu.req("GET", "/drive/v3/files/%s?fields=*" % folder).json()
    assert d["mimeType"] == FOLDER
    assert not {"size", "md5Checksum", "sha256Checksum", "headRevisionId"} & set(d)


def test_get_unknown_id(emu):
    r = emu.req("GET", "/drive/v3/files/nosuchfile123")
    assert r.status == 404
    err = r.json()["error"]
    assert err["code"] == 404 and err["message"] == "File not found: nosuchfile123."
    assert err["errors"][0]["reason"] == "notFound" and err["errors"][0]["domain"] == "global"
    assert emu.req("GET", "/drive/v3/files/nosuchfile123?alt=media").status == 404
    assert emu.req("PATCH", "/drive/v3/files/nosuchfile123", {"name": "x"}).status == 404
    assert emu.req("DELETE", "/drive/v3/files/nosuchfile123").status == 404


def test_metadata_only_create(emu, folder):
    r = emu.req("POST", "/drive/v3/files?fields=*", {"name": "empty", "parents": [folder]})
    assert r.status == 200, r
    f = r.json()
    assert f["size"] == "0" and f["md5Checksum"] == hashlib.md5(b"").hexdigest()
    assert f["mimeType"] == "application/octet-stream"
    assert emu.media(f["id"]).data == b""
    r = emu.req("POST", "/drive/v3/files?fields=name,parents", b"", {})
    assert r.status == 200 and r.json()["name"] == "Untitled"


def test_about(emu):
    r = emu.req("GET", "/drive/v3/about?fields=user")
    assert r.status == 200
    assert set(r.json()) == {"user"} and r.json()["user"]["emailAddress"]
    r = emu.req("GET", "/drive/v3/about")
    assert r.status == 400 and r.reason() == "required"


def test_generate_ids_and_create_with_id(emu, folder):
    ids = emu.req("GET", "/drive/v3/files/generateIds?count=2").json()["ids"]
    assert len(ids) == 2
    r = emu.req("POST", "/drive/v3/files?fields=id", {"id": ids[0], "name": "x", "parents": [folder]})
    assert r.status == 200 and r.json()["id"] == ids[0]
    r = emu.req("POST", "/drive/v3/files", {"id": ids[0], "name": "again", "parents": [folder]})
    assert r.status == 400
    r = emu.req("POST", "/drive/v3/files", {"id": "madeupid1234567890", "name": "x"})
    assert r.status == 400


def test_app_properties_merge_and_delete(emu, folder):
    f = emu.put("props", b"x", folder, extra={"appProperties": {"a": "1", "b": "2"},
                                                "properties": {"x": "1", "y": "2"}})
    r = emu.req("PATCH", "/drive/v3/files/%s?fields=appProperties,properties" % f["id"],
                {"appProperties": {"b": None, "c": "3"}, "properties": {"x": "9", "y": None}})
    assert r.status == 200, r
    assert r.json() == {"appProperties": {"a": "1", "c": "3"}, "properties": {"x": "9"}}
    r = emu.req("PATCH", "/drive/v3/files/%s?fields=appProperties,name" % f["id"], {"name": "n2"})
    assert r.json() == {"appProperties": {"a": "1", "c": "3"}, "name": "n2"}
    r = emu.req("PATCH", "/drive/v3/files/" + f["id"], {"appProperties": {"k": "v" * 130}})
    assert r.status == 400
    r = emu.req("PATCH", "/drive/v3/files/" + f["id"], {"appProperties": {"k": 5}})
    assert r.status == 400


@pytest.mark.parametrize("method,body", [
    ("PATCH", {"size": "5"}), ("PATCH", {"md5Checksum": "00"}), ("PATCH", {"id": "other"}),
    ("PATCH", {"parents": ["root"]}), ("PATCH", {"createdTime": "2020-01-01T00:00:00Z"}),
    ("PATCH", {"headRevisionId": "x"}), ("PATCH", {"version": "9"}),
    ("POST", {"name": "x", "size": "5"}), ("POST", {"name": "x", "sha256Checksum": "00"}),
    ("POST", {"name": "x", "trashingUser": {}}),
])
def test_field_not_writable(emu, folder, method, body):
    if method == "PATCH":
        f = emu.put("nw", b"x", folder)
        r = emu.req("PATCH", "/drive/v3/files/" + f["id"], body)
        assert emu.req("GET", "/drive/v3/files/%s?fields=size,version" % f["id"]).json() == {
            "size": "1", "version": "1"}
    else:
        r = emu.req("POST", "/drive/v3/files", dict(body, parents=[folder]))
    assert r.status == 403, r
    assert r.reason() == "fieldNotWritable"


def test_bad_bodies(emu, folder):
    r = emu.req("POST", "/drive/v3/files", b"{not json", {"Content-Type": "application/json"})
    assert r.status == 400 and r.reason() == "parseError"
    r = emu.req("POST", "/drive/v3/files", b"[1]", {"Content-Type": "application/json"})
    assert r.status == 400
    r = emu.req("POST", "/drive/v3/files", {"name": "x", "nosuchfield": 1})
    assert r.status == 400
    r = emu.req("POST", "/drive/v3/files", {"name": 5})
    assert r.status == 400
    r = emu.req("POST", "/drive/v3/files", {"name": "x", "createdTime": "yesterday"})
    assert r.status == 400


def test_parents_must_exist_and_moves(emu, folder):
    r = emu.req("POST", "/drive/v3/files", {"name": "orphan", "parents": ["nosuchparent"]})
    assert r.status == 404 and r.reason() == "notFound"
    assert r.json()["error"]["message"] == "File not found: nosuchparent."
    f = emu.put("plain", b"x", folder)
    r = emu.req("POST", "/drive/v3/files", {"name": "under-file", "parents": [f["id"]]})
    assert r.status == 400
    a, b = emu.mkdir("A", folder), emu.mkdir("B", folder)
    g = emu.put("mover", b"x", a)
    r = emu.req("PATCH", "/drive/v3/files/%s?addParents=nosuch&removeParents=%s" % (g["id"], a), {})
    assert r.status == 404
    r = emu.req("PATCH", "/drive/v3/files/%s?addParents=%s" % (g["id"], b), {})
    assert r.status == 403 and r.reason() == "cannotAddParent"
    r = emu.req("PATCH", "/drive/v3/files/%s?addParents=%s&removeParents=%s&fields=parents"
                % (g["id"], b, a), {})
    assert r.status == 200 and r.json() == {"parents": [b]}
    r = emu.req("PATCH", "/drive/v3/files/%s?addParents=%s&removeParents=%s" % (a, a, folder), {})
    assert r.status == 400                     # a folder cannot move into itself
    r = emu.req("POST", "/drive/v3/files", {"name": "two", "parents": [a, b]})
    assert r.status == 403


def test_duplicate_names(emu, folder):
    one = emu.put("same", b"1", folder)
    two = emu.put("same", b"2", folder)
    assert one["id"] != two["id"]
    assert emu.names("'%s' in parents and name = 'same'" % folder) == ["same", "same"]


def test_delete_recursive(emu, folder):
    top = emu.mkdir("top", folder)
    mid = emu.mkdir("mid", top)
    leaf = emu.put("leaf", b"bytes", mid)
    other = emu.put("sibling", b"x", folder)
    r = emu.req("DELETE", "/drive/v3/files/" + top)
    assert r.status == 204 and r.data == b""
    assert "Content-Length" not in r.headers or r.headers["Content-Length"] == "0"
    for fid in (top, mid, leaf["id"]):
        assert emu.req("GET", "/drive/v3/files/" + fid).status == 404
    assert emu.req("GET", "/drive/v3/files/" + other["id"]).status == 200
    assert emu.req("DELETE", "/drive/v3/files/root").status == 403


def test_trash(emu, folder):
    sub = emu.mkdir("bin", folder)
    inner = emu.put("inner", b"x", sub)
    r = emu.req("PATCH", "/drive/v3/files/%s?fields=trashed,explicitlyTrashed" % sub,
                {"trashed": True})
    assert r.json() == {"trashed": True, "explicitlyTrashed": True}
    got = emu.req("GET", "/drive/v3/files/%s?fields=trashed,explicitlyTrashed" % inner["id"]).json()
    assert got == {"trashed": True, "explicitlyTrashed": False}
    assert emu.names("'%s' in parents" % folder) == ["bin"]
    assert emu.names("'%s' in parents and trashed = false" % folder) == []
    assert emu.names("'%s' in parents and trashed = false" % sub) == []
    assert emu.media(inner["id"]).status == 200          # trashed files stay readable
    emu.req("PATCH", "/drive/v3/files/" + sub, {"trashed": False})
    assert emu.names("'%s' in parents and trashed = false" % sub) == ["inner"]


# -- media download ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def kfile(emu):
    data = (bytes(range(256)) * 4)[:1000]
    return emu.put("k.bin", data, "root", "application/x-test"), data


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=0-99", 0, 99), ("bytes=900-", 900, 999), ("bytes=-100", 900, 999),
    ("bytes=990-5000", 990, 999), ("bytes=-5000", 0, 999), ("bytes=0-0", 0, 0),
    ("bytes=999-999", 999, 999),
])
def test_range(emu, kfile, rng, start, end):
    f, data = kfile
    r = emu.media(f["id"], rng)
    assert r.status == 206, r
    assert r.headers["Content-Range"] == "bytes %d-%d/1000" % (start, end)
    assert r.headers["Content-Length"] == str(end - start + 1)
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.data == data[start:end + 1]


@pytest.mark.parametrize("rng", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-1000"])
def test_range_unsatisfiable(emu, kfile, rng):
    r = emu.media(kfile[0]["id"], rng)
    assert r.status == 416, r
    assert r.headers["Content-Range"] == "bytes */1000"
    assert r.reason() == "requestedRangeNotSatisfiable"


def test_media_full_and_ignored_ranges(emu, kfile):
    f, data = kfile
    for rng in (None, "bytes=abc", "items=0-1", "bytes=5-2", "bytes=0-1,5-6"):
        r = emu.media(f["id"], rng)
        assert r.status == 200, (rng, r)
        assert r.data == data and r.headers["Content-Length"] == "1000"
        assert r.headers["Content-Type"] == "application/x-test"
        assert r.headers["Accept-Ranges"] == "bytes" and "Content-Range" not in r.headers


def test_media_empty_file_and_folder(emu, folder):
    e = emu.put("empty", b"", folder)
    r = emu.media(e["id"])
    assert r.status == 200 and r.data == b"" and r.headers["Content-Length"] == "0"
    r = emu.media(e["id"], "bytes=0-")
    assert r.status == 416 and r.headers["Content-Range"] == "bytes */0"
    r = emu.media(folder)
    assert r.status == 403 and r.reason() == "fileNotDownloadable"
    assert emu.req("GET", "/drive/v3/files/%s?alt=xml" % e["id"]).status == 400


# -- uploads -----------------------------------------------------------------------------

def test_media_upload_and_update(emu, folder):
    data = os.urandom(70000)
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=media&fields=*", data,
                {"Content-Type": "application/x-blob"})
    assert r.status == 200, r
    f = r.json()
    assert f["name"] == "Untitled" and f["mimeType"] == "application/x-blob"
    assert f["size"] == "70000" and f["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert f["sha256Checksum"] == hashlib.sha256(data).hexdigest()
    assert emu.media(f["id"]).data == data
    new = b"replaced\r\n\x00"
    r = emu.req("PATCH", "/upload/drive/v3/files/%s?uploadType=media&fields=*" % f["id"], new,
                {"Content-Type": "application/x-blob"})
    assert r.status == 200, r
    g = r.json()
    assert g["size"] == str(len(new)) and g["md5Checksum"] == hashlib.md5(new).hexdigest()
    assert g["headRevisionId"] != f["headRevisionId"] and int(g["version"]) > int(f["version"])
    assert emu.media(f["id"]).data == new
    r = emu.req("POST", "/upload/drive/v3/files", b"x", {"Content-Type": "text/plain"})
    assert r.status == 400
    r = emu.req("POST", "/drive/v3/files?uploadType=media", b"x", {"Content-Type": "text/plain"})
    assert r.status == 400


def test_multipart_binary_safe(emu, folder):
    b = "gdroot_b0undary"
    # boundary look-alikes that are not delimiters: a suffix after the boundary, no line
    # start before it, a truncated boundary; plus CRLFs and every byte value
    data = (b"\r\n--" + b.encode() + b"X\r\n" + b"x--" + b.encode() + b"--\r\n"
            + b"\r\n--gdroot_b0und\r\n\r\n" + bytes(range(256)) + b"\r\n\r\n--")
    body, ctype = multipart_body({"name": "mp.bin", "parents": [folder]}, data,
                                 "application/x-mp", boundary=b)
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=multipart&fields=*", body,
                {"Content-Type": ctype})
    assert r.status == 200, r
    f = r.json()
    assert f["name"] == "mp.bin" and f["mimeType"] == "application/x-mp"
    assert f["size"] == str(len(data)) and f["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert emu.media(f["id"]).data == data
    quoted = 'multipart/related; boundary="%s"' % b
    body2, _ = multipart_body({"name": "mp2"}, b"abc", "text/plain", boundary=b)
    r = emu.req("PATCH", "/upload/drive/v3/files/%s?uploadType=multipart&fields=name,size"
                % f["id"], body2, {"Content-Type": quoted})
    assert r.status == 200 and r.json() == {"name": "mp2", "size": "3"}


@pytest.mark.parametrize("case", ["no-boundary", "wrong-type", "one-part", "three-parts",
                                  "no-close", "bad-json", "meta-not-json", "garbage"])
def test_multipart_malformed(emu, case):
    b = "bnd"
    meta, media = b'{"name": "x"}', b"data"
    part1 = b"--bnd\r\nContent-Type: application/json\r\n\r\n" + meta + b"\r\n"
    part2 = b"--bnd\r\nContent-Type: text/plain\r\n\r\n" + media + b"\r\n"
    ctype = "multipart/related; boundary=" + b
    body = part1 + part2 + b"--bnd--\r\n"
    if case == "no-boundary":
        ctype = "multipart/related"
    elif case == "wrong-type":
        ctype = "application/json"
    elif case == "one-part":
        body = part1 + b"--bnd--\r\n"
    elif case == "three-parts":
        body = part1 + part2 + part2 + b"--bnd--\r\n"
    elif case == "no-close":
        body = part1 + part2
    elif case == "bad-json":
        body = body.replace(meta, b"{oops")
    elif case == "meta-not-json":
        body = body.replace(b"application/json", b"text/html")
    elif case == "garbage":
        body = b"this is not multipart at all"
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=multipart", body,
                {"Content-Type": ctype})
    assert r.status == 400, r
    assert r.json()["error"]["code"] == 400


def _start_resumable(emu, meta, total=None, ctype="application/octet-stream", path=None,
                     method="POST", query="fields=id,name,size,md5Checksum,mimeType,parents"):
    h = {"X-Upload-Content-Type": ctype}
    if total is not None:
        h["X-Upload-Content-Length"] = str(total)
    r = emu.req(method, (path or "/upload/drive/v3/files") + "?uploadType=resumable&" + query,
                meta, h)
    assert r.status == 200, r
    loc = r.headers["Location"]
    assert loc.startswith(emu.base + (path or "/upload/drive/v3/files") + "?")
    assert "upload_id=" in loc and "uploadType=resumable" in loc
    assert r.headers["Content-Length"] == "0"
    return loc[len(emu.base):]


def _put(emu, session, data, crange, conn=None):
    h = {"Content-Range": crange} if crange else {}
    return emu.raw("PUT", session, data, h, conn)


def test_resumable_upload_protocol(emu, folder):
    data = os.urandom(3 * CHUNK + 1000)
    n = len(data)
    s = _start_resumable(emu, {"name": "big.bin", "parents": [folder]}, n, "application/x-big")
    conn = emu.conn()   # one keep-alive connection for every step: lengths must be exact
    r = _put(emu, s, b"", "bytes */%d" % n, conn)
    assert r.status == 308 and "Range" not in r.headers and r.data == b""
    r = _put(emu, s, data[:100000], "bytes 0-99999/%d" % n, conn)
    assert r.status == 400, r                                  # not a 256 KiB multiple
    r = _put(emu, s, data[:CHUNK], "bytes 0-%d/%d" % (CHUNK - 1, n), conn)
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (CHUNK - 1)
    assert r.headers["Content-Length"] == "0"
    r = _put(emu, s, b"", "bytes */%d" % n, conn)
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (CHUNK - 1)
    r = _put(emu, s, data[:2 * CHUNK], "bytes 0-%d/%d" % (2 * CHUNK - 1, n), conn)
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (2 * CHUNK - 1)  # overlap
    r = _put(emu, s, data[3 * CHUNK:], "bytes %d-%d/%d" % (3 * CHUNK, n - 1, n), conn)
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (2 * CHUNK - 1)  # gap
    r = _put(emu, s, data[2 * CHUNK:2 * CHUNK + 10], "bytes %d-%d/%d"
             % (2 * CHUNK, 2 * CHUNK + 9, n + 1), conn)
    assert r.status == 400                                     # total changed
    r = _put(emu, s, data[2 * CHUNK:], "bytes %d-%d/%d" % (2 * CHUNK, n - 1, n), conn)
    assert r.status == 201, r
    f = r.json()
    assert f["size"] == str(n) and f["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert f["name"] == "big.bin" and f["parents"] == [folder]
    assert f["mimeType"] == "application/x-big"
    r = _put(emu, s, b"", "bytes */%d" % n, conn)
    assert r.status == 201 and r.json()["id"] == f["id"]      # status query after completion
    conn.close()
    assert emu.media(f["id"]).data == data


def test_resumable_unknown_size_single_put_and_empty(emu, folder):
    s = _start_resumable(emu, {"name": "stream", "parents": [folder]})
    data = os.urandom(CHUNK + 6)
    r = _put(emu, s, data[:CHUNK], "bytes 0-%d/*" % (CHUNK - 1))
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (CHUNK - 1)
    r = _put(emu, s, b"", "bytes */*")
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (CHUNK - 1)
    r = _put(emu, s, data[CHUNK:], "bytes %d-%d/%d" % (CHUNK, len(data) - 1, len(data)))
    assert r.status == 201 and r.json()["size"] == str(len(data))
    s = _start_resumable(emu, {"name": "whole", "parents": [folder]}, 5000)
    r = _put(emu, s, b"w" * 5000, None)
    assert r.status == 201 and r.json()["size"] == "5000"
    s = _start_resumable(emu, {"name": "zero", "parents": [folder]}, 0)
    r = _put(emu, s, b"", "bytes */0")
    assert r.status == 201 and r.json()["size"] == "0"
    s = _start_resumable(emu, {"name": "mismatch", "parents": [folder]}, 1000)
    assert _put(emu, s, b"x" * 10, "bytes 0-9/2000").status == 400
    assert _put(emu, s, b"x" * 10, "bytes 0-9").status == 400
    assert _put(emu, s, b"x" * 10, "bytes 0-19/1000").status == 400


def test_resumable_update_returns_200(emu, folder):
    f = emu.put("to-update", b"old", folder)
    s = _start_resumable(emu, {"name": "updated"}, 4, path="/upload/drive/v3/files/" + f["id"],
                         method="PATCH")
    r = _put(emu, s, b"new!", "bytes 0-3/4")
    assert r.status == 200, r
    assert r.json()["name"] == "updated" and r.json()["size"] == "4"
    assert emu.media(f["id"]).data == b"new!"


def test_resumable_init_validates(emu, folder):
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=resumable", {"name": "x", "size": "1"})
    assert r.status == 403 and r.reason() == "fieldNotWritable"
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=resumable",
                {"name": "x", "parents": ["nosuch"]})
    assert r.status == 404
    r = emu.req("PATCH", "/upload/drive/v3/files/nosuch?uploadType=resumable", {})
    assert r.status == 404
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=resumable", {"name": "x"},
                {"X-Upload-Content-Length": "lots"})
    assert r.status == 400


def test_resumable_sessions_404(emu, folder):
    r = _put(emu, "/upload/drive/v3/files?uploadType=resumable&upload_id=nosuch", b"x", None)
    assert r.status == 404 and r.reason() == "notFound"
    s = _start_resumable(emu, {"name": "exp", "parents": [folder]}, 10)
    emu.ctl("sessions/expire", {})
    assert _put(emu, s, b"0123456789", "bytes 0-9/10").status == 404
    s = _start_resumable(emu, {"name": "cancel", "parents": [folder]}, 10)
    r = emu.raw("DELETE", s)
    assert r.status == 499
    assert _put(emu, s, b"", "bytes */10").status == 404


def test_resumable_session_lifetime(start_emu):
    e = start_emu("--session-lifetime", "0.5")
    s = _start_resumable(e, {"name": "short"}, 10)
    wait_until(lambda: _put(e, s, b"", "bytes */10").status == 404, step=0.05)


def test_resumable_resume_after_injected_reset(emu, folder):
    data = os.urandom(3 * CHUNK)
    s = _start_resumable(emu, {"name": "resume", "parents": [folder]}, len(data))
    emu.ctl("fail-next", {"reset": True, "kind": "upload", "after_bytes": 300000})
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        _put(emu, s, data[:2 * CHUNK], "bytes 0-%d/%d" % (2 * CHUNK - 1, len(data)))
    r = _put(emu, s, b"", "bytes */%d" % len(data))
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (CHUNK - 1)
    r = _put(emu, s, data[CHUNK:], "bytes %d-%d/%d" % (CHUNK, len(data) - 1, len(data)))
    assert r.status == 201, r
    assert r.json()["md5Checksum"] == hashlib.md5(data).hexdigest()
    stats = emu.ctl("stats")
    assert stats["faults"] == {"reset": 1}
    # chunk bytes taken in: 300000 of the cut chunk + the 2 chunks resent, not all 3 again
    chunks = [x for x in stats["recent"] if x["kind"] == "upload.resumable.chunk"]
    assert [x["bytes_in"] for x in chunks] == [300000, 2 * CHUNK]
    assert [x["fault"] for x in chunks] == ["reset", None]


def test_resumable_client_abort_keeps_aligned_prefix(emu, folder):
    data = os.urandom(2 * CHUNK)
    s = _start_resumable(emu, {"name": "abort", "parents": [folder]}, len(data))
    sock = socket.create_connection((emu.host, emu.port))
    head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            "Content-Range: bytes 0-%d/%d\r\n\r\n" % (s, len(data), len(data) - 1, len(data)))
    sock.sendall(head.encode() + data[:CHUNK + 1000])
    sock.close()
    wait_until(lambda: _put(emu, s, b"", "bytes */%d" % len(data)).headers.get("Range")
               == "bytes=0-%d" % (CHUNK - 1))
    r = _put(emu, s, data[CHUNK:], "bytes %d-%d/%d" % (CHUNK, len(data) - 1, len(data)))
    assert r.status == 201 and r.json()["md5Checksum"] == hashlib.md5(data).hexdigest()


# -- persistence -------------------------------------------------------------------------

def test_persistence_across_restart(start_emu, tmp_path):
    e = start_emu()
    root = e.ctl("health")["root_id"]
    d = e.mkdir("persist")
    data = bytes(range(256)) * 1000 + b"\r\n\x00tail"
    f = e.put("blob.bin", data, d, "application/x-p", {"appProperties": {"k": "v"}})
    s = _start_resumable(e, {"name": "later", "parents": [d]}, CHUNK + 3)
    part = os.urandom(CHUNK + 3)
    assert _put(e, s, part[:CHUNK], "bytes 0-%d/%d" % (CHUNK - 1, CHUNK + 3)).status == 308
    tok = e.token()
    before = e.req("GET", "/drive/v3/files/%s?fields=*" % f["id"]).json()
    e.stop()
    e.start()
    assert e.ctl("health")["root_id"] == root
    after = e.req("GET", "/drive/v3/files/%s?fields=*" % f["id"], auth=tok).json()
    assert after == before
    assert e.media(f["id"]).data == data
    assert e.names("'%s' in parents" % d) == ["blob.bin"]
    r = _put(e, s, b"", "bytes */%d" % (CHUNK + 3))
    assert r.status == 308 and r.headers["Range"] == "bytes=0-%d" % (CHUNK - 1)
    r = _put(e, s, part[CHUNK:], "bytes %d-%d/%d" % (CHUNK, CHUNK + 2, CHUNK + 3))
    assert r.status == 201 and r.json()["md5Checksum"] == hashlib.md5(part).hexdigest()
    with open(os.path.join(e.data, "db.json"), "rb") as fh:
        assert tok.encode() not in fh.read()          # tokens are stored hashed


# -- faults ------------------------------------------------------------------------------

def test_fault_rate_round_robin(emu):
    emu.token()
    emu.ctl("faults", {"rate": 0.5, "codes": [429, 503]})
    got = [emu.req("GET", "/drive/v3/files?pageSize=1") for _ in range(8)]
    assert [r.status for r in got] == [200, 429, 200, 503, 200, 429, 200, 503]
    assert emu.ctl("health")["status"] == "ok"            # control is never faulted
    r429 = got[1].json()["error"]
    assert r429["code"] == 429
    assert r429["errors"][0]["domain"] == "usageLimits"
    assert r429["errors"][0]["reason"] == "rateLimitExceeded"
    assert got[3].reason() == "backendError"
    retry = [r.headers.get("Retry-After") for r in got if r.status != 200]
    assert retry == ["1", None, "1", None]
    assert emu.ctl("stats")["faults"] == {"http_429": 2, "http_503": 2}


def test_fault_rate_spares_token_unless_asked(emu):
    emu.ctl("faults", {"rate": 1.0, "codes": [503]})
    form = dict(grant_type="refresh_token", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                refresh_token=REFRESH)
    assert [emu.form("/token", **form).status for _ in range(3)] == [200, 200, 200]
    emu.ctl("faults", {"rate": 1.0, "codes": [503], "fault_token": True})
    assert emu.form("/token", **form).status == 503


def test_fault_user_rate_limit_shape(emu):
    emu.ctl("fail-next", {"code": 403})
    r = emu.req("GET", "/drive/v3/files")
    assert r.status == 403
    e0 = r.json()["error"]["errors"][0]
    assert e0 == {"domain": "usageLimits", "reason": "userRateLimitExceeded",
                  "message": "User Rate Limit Exceeded"}


def test_fail_next_counts_and_kinds(emu, folder):
    emu.ctl("fail-next", {"count": 2, "code": 503, "retry_after": 1})
    st = [emu.req("GET", "/drive/v3/files?pageSize=1") for _ in range(3)]
    assert [r.status for r in st] == [503, 503, 200]
    assert st[0].headers["Retry-After"] == "1" and st[1].headers["Retry-After"] == "1"
    emu.ctl("fail-next", {"code": 500, "kind": "upload"})
    assert emu.req("GET", "/drive/v3/files?pageSize=1").status == 200
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=media", b"abc",
                {"Content-Type": "text/plain"})
    assert r.status == 500 and r.reason() == "backendError"
    assert emu.ctl("fail-next")["pending"] == []
    assert emu.raw("POST", "/_emu/fail-next", b'{"count": 0, "code": 503}').status == 400
    assert emu.raw("POST", "/_emu/faults", b'{"rate": 2}').status == 400


def test_fault_seed_reproducible(start_emu):
    seqs = []
    for _ in range(2):
        e = start_emu("--fault-rate", "0.5", "--fault-codes", "429,500", "--seed", "7")
        e.token()
        seqs.append([e.req("GET", "/drive/v3/files").status for _ in range(16)])
        e.stop()
    assert seqs[0] == seqs[1]
    assert {200, 429, 500} == set(seqs[0])


def _big(emu, size=256 * KIB):
    data = os.urandom(size)
    return emu.put("big", data, "root"), data


def test_reset_mid_body(emu):
    f, data = _big(emu)
    emu.ctl("fail-next", {"reset": True, "kind": "download"})
    c = emu.conn()
    c.request("GET", "/drive/v3/files/%s?alt=media" % f["id"],
              headers={"Authorization": "Bearer " + emu.token()})
    r = c.getresponse()
    assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
    with pytest.raises(ConnectionError):
        while r.read(65536):
            pass
    c.close()
    assert emu.media(f["id"]).data == data               # the next attempt is clean
    st = emu.ctl("stats")
    assert st["faults"] == {"reset": 1}
    media = [x for x in st["recent"] if x["kind"] == "drive.media"]
    assert [(x["fault"], x["bytes_out"]) for x in media] == [("reset", len(data) // 2),
                                                              (None, len(data))]


def test_reset_rate(emu):
    f, data = _big(emu, 64 * KIB)
    emu.ctl("faults", {"reset_rate": 0.5})
    assert emu.media(f["id"]).data == data
    with pytest.raises(ConnectionError):
        emu.media(f["id"])
    assert emu.media(f["id"]).data == data


def test_truncated_body(emu):
    f, data = _big(emu, 100000)
    emu.ctl("fail-next", {"truncate": True, "after_bytes": 1234})
    with pytest.raises(http.client.IncompleteRead) as ei:
        emu.media(f["id"])
    assert len(ei.value.partial) == 1234 and ei.value.partial == data[:1234]
    emu.ctl("faults", {"truncate_rate": 1.0})
    with pytest.raises(http.client.IncompleteRead) as ei:
        emu.media(f["id"], "bytes=0-9999")
    assert len(ei.value.partial) == 5000
    assert emu.ctl("stats")["faults"] == {"truncate": 2}


def test_latency(emu):
    emu.token()
    emu.ctl("faults", {"latency_ms": 300})
    t = time.monotonic()
    assert emu.req("GET", "/drive/v3/files?pageSize=1").status == 200
    assert time.monotonic() - t >= 0.3


def test_bandwidth_download_and_upload(emu):
    f, data = _big(emu, 256 * KIB)
    emu.ctl("faults", {"bandwidth": 128 * KIB})
    t = time.monotonic()
    assert emu.media(f["id"]).data == data
    assert time.monotonic() - t >= 1.0                  # ideal 2 s; a lower bound only
    t = time.monotonic()
    r = emu.req("POST", "/upload/drive/v3/files?uploadType=media", os.urandom(128 * KIB),
                {"Content-Type": "application/octet-stream"})
    assert r.status == 200
    assert time.monotonic() - t >= 0.5                  # ideal 1 s


# -- HTTP details, stats, TLS -------------------------------------------------------------

def test_keep_alive_many_statuses(emu, kfile):
    f, data = kfile
    c = emu.conn()
    auth = {"Authorization": "Bearer " + emu.token()}
    seq = [("GET", "/drive/v3/files/%s?alt=media" % f["id"], dict(auth, Range="bytes=0-9"), 206),
           ("GET", "/drive/v3/files/nosuch", auth, 404),
           ("GET", "/drive/v3/files/%s?alt=media" % f["id"], dict(auth, Range="bytes=2000-"), 416),
           ("GET", "/drive/v3/files", {}, 401),
           ("GET", "/nowhere", auth, 404),
           ("GET", "/drive/v3/files/%s?alt=media" % f["id"], auth, 200)]
    for method, path, headers, status in seq:
        c.request(method, path, headers=headers)
        r = c.getresponse()
        body = r.read()
        assert r.status == status, (path, body)
        assert r.version == 11 and int(r.headers["Content-Length"]) == len(body)
    c.close()


def test_stats(emu, kfile):
    f, _ = kfile
    emu.ctl("stats/reset", {})
    emu.media(f["id"], "bytes=0-99")
    emu.req("GET", "/drive/v3/files/" + f["id"])
    st = emu.ctl("stats")
    assert st["requests"] == {"drive.media": 1, "drive.get": 1}
    assert st["media_requests"] == 1 and st["media_bytes_sent"] == 100
    assert st["recent"][0]["range"] == "bytes=0-99" and st["recent"][0]["status"] == 206
    assert st["recent"][0]["path"] == "/drive/v3/files/" + f["id"]
    assert st["bytes_sent"] >= 100


def test_https(start_emu, tmp_path):
    certs = tmp_path / "certs"
    subprocess.run(["sh", os.path.join(HERE, "mkcert.sh"), str(certs)], check=True)
    e = start_emu("--tls-cert", str(certs / "server-chain.pem"), "--tls-key",
                  str(certs / "server.key"), cafile=str(certs / "ca.pem"))
    assert e.base.startswith("https://127.0.0.1:")
    assert e.req("GET", "/drive/v3/files?pageSize=1").status == 200
    wrong = ssl.create_default_context(cafile=str(certs / "other-ca.pem"))
    with pytest.raises(ssl.SSLCertVerificationError):
        c = e.conn(context=wrong)
        c.request("GET", "/_emu/health")
    c = http.client.HTTPSConnection("localhost", e.port, timeout=10,
                                    context=ssl.create_default_context(cafile=str(certs / "ca.pem")))
    c.request("GET", "/_emu/health")
    assert c.getresponse().status == 200
    c.close()
