# SPDX-License-Identifier: MIT
"""Fault injection and request statistics for the Drive emulator.

Rates are exact and deterministic by default: each eligible request adds the
rate to an accumulator and a fault fires whenever it reaches 1, so a rate of
0.25 faults exactly every 4th request. With a seed, a seeded PRNG decides
instead (reproducible run to run). Error codes are taken round-robin, or
from the PRNG with a seed. `fail-next` rules take precedence over rates and
make single tests fully deterministic.
"""

import collections
import random
import threading

# v3 error shapes for injected HTTP errors: code -> (domain, reason, message)
ERROR_SHAPES = {
    400: ("global", "badRequest", "Bad Request"),
    401: ("global", "authError", "Invalid Credentials"),
    403: ("usageLimits", "userRateLimitExceeded", "User Rate Limit Exceeded"),
    404: ("global", "notFound", "Not Found"),
    429: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("global", "backendError", "Backend Error"),
    502: ("global", "backendError", "Bad Gateway"),
    503: ("global", "backendError", "Service Unavailable"),
    504: ("global", "backendError", "Gateway Timeout"),
}


class ConfigError(ValueError):
    pass


def _rate(value, name):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError("%s must be a number" % name)
    if not 0.0 <= v <= 1.0:
        raise ConfigError("%s must be between 0 and 1" % name)
    return v


def parse_codes(codes):
    if isinstance(codes, str):
        codes = [c for c in codes.split(",") if c.strip()]
    out = []
    for c in codes:
        try:
            c = int(c)
        except (TypeError, ValueError):
            raise ConfigError("fault code %r is not an integer" % (c,))
        if not 400 <= c <= 599:
            raise ConfigError("fault code %d is not an HTTP error status" % c)
        out.append(c)
    if not out:
        raise ConfigError("codes must not be empty")
    return out


class Faults:
    """Shared fault configuration and decision state (thread-safe)."""

    def __init__(self, rate=0.0, codes=(429, 403, 500, 503), reset_rate=0.0, truncate_rate=0.0,
                 latency_ms=0, bandwidth=0, fault_token=False, seed=None):
        self.lock = threading.Lock()
        self.seed = seed
        self.configure({"rate": rate, "codes": list(codes), "reset_rate": reset_rate,
                        "truncate_rate": truncate_rate, "latency_ms": latency_ms,
                        "bandwidth": bandwidth, "fault_token": fault_token})
        self.rules = []

    def configure(self, cfg):
        """Replace the whole configuration; missing keys take their defaults."""
        known = {"rate", "codes", "reset_rate", "truncate_rate", "latency_ms", "bandwidth",
                 "fault_token", "seed"}
        unknown = set(cfg) - known
        if unknown:
            raise ConfigError("unknown fault setting(s): %s" % ", ".join(sorted(unknown)))
        rate = _rate(cfg.get("rate", 0.0), "rate")
        codes = parse_codes(cfg.get("codes", [429, 403, 500, 503]))
        reset_rate = _rate(cfg.get("reset_rate", 0.0), "reset_rate")
        truncate_rate = _rate(cfg.get("truncate_rate", 0.0), "truncate_rate")
        try:
            latency = float(cfg.get("latency_ms", 0))
            bandwidth = int(cfg.get("bandwidth", 0))
        except (TypeError, ValueError):
            raise ConfigError("latency_ms and bandwidth must be numbers")
        if latency < 0 or bandwidth < 0:
            raise ConfigError("latency_ms and bandwidth must not be negative")
        seed = cfg.get("seed", getattr(self, "seed", None))
        if seed is not None and not isinstance(seed, int):
            raise ConfigError("seed must be an integer")
        with self.lock:
            self.rate, self.codes = rate, codes
            self.reset_rate, self.truncate_rate = reset_rate, truncate_rate
            self.latency_ms, self.bandwidth = latency, bandwidth
            self.fault_token = bool(cfg.get("fault_token", False))
            self.seed = seed
            self.rng = random.Random(seed) if seed is not None else None
            self.acc = {"error": 0.0, "reset": 0.0, "truncate": 0.0}
            self.code_index = 0
            self.retry_after_toggle = 0

    def config(self):
        with self.lock:
            return {"rate": self.rate, "codes": list(self.codes), "reset_rate": self.reset_rate,
                    "truncate_rate": self.truncate_rate, "latency_ms": self.latency_ms,
                    "bandwidth": self.bandwidth, "fault_token": self.fault_token,
                    "seed": self.seed}

    # -- fail-next rules -------------------------------------------------------

    def add_rule(self, spec):
        """Queue a deterministic rule. spec: {"count":N, and one of "code":C |
        "reset":true | "truncate":true; optional "kind", "retry_after", "after_bytes"}."""
        if not isinstance(spec, dict):
            raise ConfigError("fail-next expects a JSON object")
        allowed = {"count", "code", "reset", "truncate", "kind", "retry_after", "after_bytes"}
        unknown = set(spec) - allowed
        if unknown:
            raise ConfigError("unknown fail-next key(s): %s" % ", ".join(sorted(unknown)))
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise ConfigError("count must be a positive integer")
        modes = [m for m in ("code", "reset", "truncate") if spec.get(m)]
        if len(modes) != 1:
            raise ConfigError("give exactly one of code, reset:true, truncate:true")
        rule = {"count": count, "mode": modes[0]}
        if modes[0] == "code":
            rule["code"] = parse_codes([spec["code"]])[0]
            if "retry_after" in spec:
                if not isinstance(spec["retry_after"], int) or spec["retry_after"] < 0:
                    raise ConfigError("retry_after must be a non-negative integer")
                rule["retry_after"] = spec["retry_after"]
            kinds = ("any", "drive", "upload", "download", "token", "list", "get", "chunk")
        elif modes[0] == "reset":
            kinds = ("media", "download", "upload")
        else:
            kinds = ("download",)
        kind = spec.get("kind", kinds[0])
        if kind not in kinds:
            raise ConfigError("kind for %s must be one of %s" % (modes[0], ", ".join(kinds)))
        rule["kind"] = kind
        if "after_bytes" in spec:
            if modes[0] == "code" or not isinstance(spec["after_bytes"], int) or spec["after_bytes"] < 0:
                raise ConfigError("after_bytes (reset/truncate only) must be a non-negative integer")
            rule["after_bytes"] = spec["after_bytes"]
        with self.lock:
            self.rules.append(rule)
        return rule

    def pending_rules(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def clear_rules(self):
        with self.lock:
            self.rules = []

    def _take_rule(self, mode, matches):
        for rule in self.rules:
            if rule["mode"] == mode and matches(rule["kind"]):
                rule["count"] -= 1
                if rule["count"] == 0:
                    self.rules.remove(rule)
                return rule
        return None

    # -- decisions -------------------------------------------------------------

    def _fire(self, which, rate):
        if rate <= 0:
            return False
        if self.rng is not None:
            return self.rng.random() < rate
        self.acc[which] += rate
        if self.acc[which] >= 1.0 - 1e-9:
            self.acc[which] -= 1.0
            return True
        return False

    def _retry_after(self, code):
        if code not in (429, 503):
            return None
        self.retry_after_toggle += 1
        return 1 if self.retry_after_toggle % 2 == 1 else None

    def pick_error(self, tags, is_token):
        """Decide whether to fail a request with an HTTP error.

        tags: set of rule kinds this request matches ("drive", "upload", ...).
        Returns (code, retry_after or None) or None."""
        with self.lock:
            rule = self._take_rule("code", lambda k: k == "any" or k in tags)
            if rule is not None:
                return rule["code"], rule.get("retry_after", self._retry_after(rule["code"]))
            if is_token and not self.fault_token:
                return None
            if not self._fire("error", self.rate):
                return None
            if self.rng is not None:
                code = self.rng.choice(self.codes)
            else:
                code = self.codes[self.code_index % len(self.codes)]
                self.code_index += 1
            return code, self._retry_after(code)

    def pick_body_fault(self, direction, length):
        """For a media transfer of `length` body bytes (direction 'download' or
        'upload'), return ('reset'|'truncate', bytes to let through) or None."""
        if length <= 0:
            return None
        with self.lock:
            rule = self._take_rule("reset", lambda k: k in ("media", direction))
            mode = "reset" if rule else None
            if rule is None and direction == "download":
                rule = self._take_rule("truncate", lambda k: k == "download")
                mode = "truncate" if rule else None
            if rule is None:
                if self._fire("reset", self.reset_rate):
                    mode = "reset"
                elif direction == "download" and self._fire("truncate", self.truncate_rate):
                    mode = "truncate"
                else:
                    return None
                rule = {}
        after = rule.get("after_bytes", length // 2)
        return mode, max(0, min(after, length - 1))


class Stats:
    def __init__(self, keep=1000):
        self.lock = threading.Lock()
        self.keep = keep
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = collections.Counter()
            self.faults = collections.Counter()
            self.statuses = collections.Counter()
            self.bytes_sent = 0
            self.bytes_received = 0
            self.media_bytes_sent = 0
            self.upload_bytes_received = 0
            self.media_requests = 0
            self.recent = collections.deque(maxlen=self.keep)

    def record(self, entry):
        with self.lock:
            self.requests[entry["kind"]] += 1
            self.statuses[str(entry["status"])] += 1
            if entry.get("fault"):
                self.faults[entry["fault"]] += 1
            self.bytes_sent += entry["bytes_out"]
            self.bytes_received += entry["bytes_in"]
            if entry["kind"] == "drive.media":
                self.media_requests += 1
                self.media_bytes_sent += entry["bytes_out"]
            if entry["kind"].startswith("upload."):
                self.upload_bytes_received += entry["bytes_in"]
            self.recent.append(entry)

    def snapshot(self):
        with self.lock:
            return {"requests": dict(self.requests), "faults": dict(self.faults),
                    "statuses": dict(self.statuses),
                    "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                    "media_bytes_sent": self.media_bytes_sent,
                    "upload_bytes_received": self.upload_bytes_received,
                    "media_requests": self.media_requests, "recent": list(self.recent)}
