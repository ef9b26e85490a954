# SPDX-License-Identifier: MIT
"""OAuth 2.0 side of the emulator: Google's token and device endpoints.

Grants: refresh_token, the device flow (RFC 8628 as Google runs it:
authorization_pending 428, slow_down 403, access_denied 403, expired_token
400), and jwt-bearer service-account assertions (RS256, verified with
python3-cryptography). Issued access and refresh tokens are kept as SHA-256
hashes in the store, so they survive a restart and never sit on disk in
clear. Bearer tokens are checked by `check_bearer`.
"""

import base64
import json
import math
import secrets
import string
import threading
import time

from store import token_hash

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
GRANT_REFRESH = "refresh_token"
GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SHORT_LIVED = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.")


class OAuthError(Exception):
    def __init__(self, status, error, description=None):
        super().__init__(description or error)
        self.status = status
        self.body = {"error": error}
        if description:
            self.body["error_description"] = description


def _b64decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _number(payload, name):
    v = payload.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OAuthError(400, "invalid_grant", "Invalid JWT: claim %r is missing or not a number." % name)
    return v


class Auth:
    def __init__(self, store, clients, refresh_tokens, service_accounts, token_lifetime,
                 device_interval, device_lifetime, device_auto_approve):
        self.store = store
        self.clients = dict(clients)            # client_id -> secret
        self.static_refresh = {token_hash(t) for t in refresh_tokens}
        self.service_accounts = dict(service_accounts)   # iss -> public key object
        self.token_lifetime = token_lifetime
        self.device_interval = device_interval
        self.device_lifetime = device_lifetime
        self.device_auto_approve = device_auto_approve
        self.devices = {}                        # device_code -> state
        self.lock = threading.Lock()

    # -- helpers -----------------------------------------------------------

    def _client(self, form, basic):
        client_id = form.get("client_id") or (basic[0] if basic else None)
        secret = form.get("client_secret") or (basic[1] if basic else None)
        if not client_id:
            raise OAuthError(400, "invalid_request", "Missing required parameter: client_id")
        if client_id not in self.clients:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if secret is None or not secrets.compare_digest(secret, self.clients[client_id]):
            raise OAuthError(401, "invalid_client", "Unauthorized")
        return client_id

    def _issue_access(self, scope, subject):
        token = "ya29.emu-" + secrets.token_urlsafe(32)
        with self.store.lock:
            self.store.db["tokens"]["access"][token_hash(token)] = {
                "exp": time.time() + self.token_lifetime, "scope": scope, "sub": subject}
            self.store.save()
        return {"access_token": token, "expires_in": int(self.token_lifetime),
                "scope": scope, "token_type": "Bearer"}

    @staticmethod
    def _required(form, name):
        v = form.get(name)
        if not v:
            raise OAuthError(400, "invalid_request", "Missing required parameter: %s" % name)
        return v

    # -- endpoints ---------------------------------------------------------

    def token(self, form, basic, audiences):
        """POST /token. form: dict of first values; audiences: accepted JWT aud values."""
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type")
        if grant == GRANT_REFRESH:
            return self._refresh(form, basic)
        if grant == GRANT_DEVICE:
            return self._device_poll(form, basic)
        if grant == GRANT_JWT:
            return self._jwt(form, audiences)
        raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type: %s" % grant)

    def _refresh(self, form, basic):
        client_id = self._client(form, basic)
        h = token_hash(self._required(form, "refresh_token"))
        if h in self.static_refresh:
            return self._issue_access(DRIVE_SCOPE, "user")
        with self.store.lock:
            rec = self.store.db["tokens"]["refresh"].get(h)
        if rec is None or rec["client_id"] != client_id:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        return self._issue_access(rec["scope"], "user")

    def device_code(self, form, basic, base_url):
        """POST /device/code."""
        client_id = form.get("client_id") or (basic[0] if basic else None)
        if not client_id:
            raise OAuthError(400, "invalid_request", "Missing required parameter: client_id")
        if client_id not in self.clients:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        scope = form.get("scope")
        if not scope:
            raise OAuthError(400, "invalid_scope", "Missing required parameter: scope")
        letters = string.ascii_uppercase.replace("I", "").replace("O", "")
        user_code = "".join(secrets.choice(letters) for _ in range(8))
        user_code = user_code[:4] + "-" + user_code[4:]
        device_code = "AH-emu-" + secrets.token_urlsafe(32)
        with self.lock:
            self.devices[device_code] = {
                "user_code": user_code, "client_id": client_id, "scope": scope,
                "expires": time.time() + self.device_lifetime, "last_poll": None,
                "polls": 0, "state": "pending"}
        interval = self.device_interval
        return {"device_code": device_code, "user_code": user_code,
                "verification_url": base_url + "/device",
                "expires_in": int(math.ceil(self.device_lifetime)),
                "interval": int(interval) if float(interval).is_integer() else interval}

    def _device_poll(self, form, basic):
        client_id = self._client(form, basic)
        code = self._required(form, "device_code")
        with self.lock:
            dev = self.devices.get(code)
            if dev is None or dev["client_id"] != client_id:
                raise OAuthError(400, "invalid_grant", "Malformed auth code.")
            now = time.time()
            if now >= dev["expires"]:
                raise OAuthError(400, "expired_token", "The device code has expired.")
            if dev["state"] == "denied":
                raise OAuthError(403, "access_denied", "Forbidden")
            if dev["state"] == "used":
                raise OAuthError(400, "invalid_grant", "Bad Request")
            last, dev["last_poll"] = dev["last_poll"], now
            dev["polls"] += 1
            if last is not None and now - last < self.device_interval:
                raise OAuthError(403, "slow_down", "Forbidden")
            if (dev["state"] == "pending" and self.device_auto_approve is not None
                    and dev["polls"] > self.device_auto_approve):
                dev["state"] = "approved"
            if dev["state"] != "approved":
                raise OAuthError(428, "authorization_pending", "Precondition Required")
            dev["state"] = "used"
            scope = dev["scope"]
        refresh = "1//emu-" + secrets.token_urlsafe(40)
        with self.store.lock:
            self.store.db["tokens"]["refresh"][token_hash(refresh)] = {
                "client_id": client_id, "scope": scope}
        out = self._issue_access(scope, "user")   # saves the store
        out["refresh_token"] = refresh
        return out

    def decide_device(self, user_code, approve):
        """Approve or deny a pending device authorization; False if no such code."""
        with self.lock:
            for dev in self.devices.values():
                if dev["user_code"] == user_code.upper() and dev["state"] == "pending":
                    dev["state"] = "approved" if approve else "denied"
                    return True
        return False

    def pending_devices(self):
        with self.lock:
            return [{"user_code": d["user_code"], "client_id": d["client_id"], "scope": d["scope"],
                     "state": d["state"], "polls": d["polls"],
                     "expires_in": max(0, round(d["expires"] - time.time(), 3))}
                    for d in self.devices.values()]

    def _jwt(self, form, audiences):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        assertion = self._required(form, "assertion")
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: not three dot-separated parts.")
        try:
            header = json.loads(_b64decode(parts[0]))
            payload = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, TypeError):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: bad base64url or JSON.")
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: header and claims must be objects.")
        if header.get("alg") != "RS256":
            raise OAuthError(400, "invalid_grant", "Invalid JWT: unsupported alg %r (RS256 only)."
                             % header.get("alg"))
        iss = payload.get("iss")
        key = self.service_accounts.get(iss) if isinstance(iss, str) else None
        if key is None:
            raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
        try:
            key.verify(signature, ("%s.%s" % (parts[0], parts[1])).encode("ascii"),
                       padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        aud = payload.get("aud")
        if aud not in audiences:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: Failed audience check. The "
                             "expected value was %s" % audiences[0])
        iat, exp = _number(payload, "iat"), _number(payload, "exp")
        now = time.time()
        if iat > now + 300 or exp <= now or exp <= iat or exp - iat > 3600:
            raise OAuthError(400, "invalid_grant", _SHORT_LIVED)
        scope = payload.get("scope")
        if not isinstance(scope, str) or not scope.strip():
            raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return self._issue_access(scope, iss)

    # -- access tokens -------------------------------------------------------

    def check_bearer(self, token):
        """'ok', 'invalid' or 'expired' for an access token string."""
        with self.store.lock:
            rec = self.store.db["tokens"]["access"].get(token_hash(token))
        if rec is None:
            return "invalid"
        return "ok" if time.time() < rec["exp"] else "expired"

    def expire_all(self):
        with self.store.lock:
            now = time.time()
            for rec in self.store.db["tokens"]["access"].values():
                rec["exp"] = min(rec["exp"], now)
            self.store.save()
