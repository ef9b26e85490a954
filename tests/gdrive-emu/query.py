# SPDX-License-Identifier: MIT
"""Parsers for files.list: the `q` search language, `orderBy`, page tokens.

The `q` grammar is the subset of Drive's search language a store client needs,
parsed strictly: anything outside it is an error, never silently ignored.

    expr    := conj ( "or" conj )*
    conj    := unary ( "and" unary )*
    unary   := "not" unary | "(" expr ")" | term
    term    := STRING "in" ("parents" | "owners")
             | "name" ("=" | "!=" | "contains") STRING
             | "mimeType" ("=" | "!=" | "contains") STRING
             | ("trashed" | "starred") ("=" | "!=") ("true" | "false")
             | ("createdTime" | "modifiedTime") CMP STRING      (RFC 3339)
             | ("appProperties" | "properties") "has"
                   "{" "key" "=" STRING "and" "value" "=" STRING "}"
    STRING  := "'" ( [^'\\] | "\\'" | "\\\\" )* "'"

Like Drive, `name contains` matches a prefix of the name or of any word in
it, case-insensitively; `mimeType contains` matches any substring.
"""

import base64
import hashlib
import hmac
import json

from store import parse_rfc3339


class QueryError(ValueError):
    pass


_OPS = ("!=", "<=", ">=", "=", "<", ">")
_CMP = ("=", "!=", "<", "<=", ">", ">=")


def tokenize(q):
    toks = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c == "'":
            start = i
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise QueryError("unterminated string starting at offset %d" % start)
                c = q[i]
                if c == "\\":
                    if i + 1 >= n or q[i + 1] not in "'\\":
                        raise QueryError("bad escape at offset %d (only \\' and \\\\ are allowed)" % i)
                    buf.append(q[i + 1])
                    i += 2
                elif c == "'":
                    i += 1
                    break
                else:
                    buf.append(c)
                    i += 1
            toks.append(("str", "".join(buf), start))
        elif c in "(){}":
            toks.append(("punct", c, i))
            i += 1
        elif c in "!<>=":
            for op in _OPS:
                if q.startswith(op, i):
                    toks.append(("op", op, i))
                    i += len(op)
                    break
            else:
                raise QueryError("unexpected %r at offset %d" % (c, i))
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (q[j].isalnum() or q[j] == "_"):
                j += 1
            toks.append(("word", q[i:j], i))
            i = j
        else:
            raise QueryError("unexpected %r at offset %d" % (c, i))
    return toks


class _Parser:
    def __init__(self, q):
        self.toks = tokenize(q)
        self.pos = 0

    def peek(self):
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def next(self, what):
        t = self.peek()
        if t is None:
            raise QueryError("unexpected end of query, expected %s" % what)
        self.pos += 1
        return t

    def expect(self, kind, value=None, what=None):
        t = self.next(what or repr(value))
        if t[0] != kind or (value is not None and t[1] != value):
            raise QueryError("expected %s at offset %d, got %r" % (what or repr(value), t[2], t[1]))
        return t

    def is_word(self, value):
        t = self.peek()
        return t is not None and t[0] == "word" and t[1] == value

    def parse(self):
        if not self.toks:
            raise QueryError("empty query")
        node = self.expr()
        t = self.peek()
        if t is not None:
            raise QueryError("unexpected %r at offset %d" % (t[1], t[2]))
        return node

    def expr(self):
        node = self.conj()
        while self.is_word("or"):
            self.pos += 1
            node = ("or", node, self.conj())
        return node

    def conj(self):
        node = self.unary()
        while self.is_word("and"):
            self.pos += 1
            node = ("and", node, self.unary())
        return node

    def unary(self):
        t = self.peek()
        if t is None:
            raise QueryError("unexpected end of query, expected a search term")
        if t == ("word", "not", t[2]):
            self.pos += 1
            return ("not", self.unary())
        if t[0] == "punct" and t[1] == "(":
            self.pos += 1
            node = self.expr()
            self.expect("punct", ")", "')'")
            return node
        return self.term()

    def string(self):
        return self.expect("str", what="a quoted string")[1]

    def term(self):
        t = self.next("a search term")
        if t[0] == "str":
            self.expect("word", "in", "'in'")
            coll = self.expect("word", what="'parents'")
            if coll[1] == "parents":
                return ("in_parents", t[1])
            if coll[1] == "owners":
                return ("in_owners", t[1])
            raise QueryError("unsupported collection %r at offset %d" % (coll[1], coll[2]))
        if t[0] != "word":
            raise QueryError("expected a search term at offset %d, got %r" % (t[2], t[1]))
        field = t[1]
        if field in ("name", "mimeType"):
            op = self.next("an operator")
            if op[0] == "op" and op[1] in ("=", "!="):
                return ("cmp", field, op[1], self.string())
            if op == ("word", "contains", op[2]):
                return ("contains", field, self.string())
            raise QueryError("operator %r not supported for %s at offset %d" % (op[1], field, op[2]))
        if field in ("trashed", "starred"):
            op = self.expect("op", what="'=' or '!='")
            if op[1] not in ("=", "!="):
                raise QueryError("operator %r not supported for %s" % (op[1], field))
            val = self.expect("word", what="true or false")
            if val[1] not in ("true", "false"):
                raise QueryError("expected true or false at offset %d, got %r" % (val[2], val[1]))
            return ("cmp", field, op[1], val[1] == "true")
        if field in ("createdTime", "modifiedTime"):
            op = self.expect("op", what="a comparison operator")
            s = self.expect("str", what="an RFC 3339 date-time")
            try:
                ms = parse_rfc3339(s[1])
            except ValueError:
                raise QueryError("invalid date-time %r at offset %d" % (s[1], s[2]))
            return ("cmp", field, op[1], ms)
        if field in ("appProperties", "properties"):
            self.expect("word", "has", "'has'")
            self.expect("punct", "{", "'{'")
            self.expect("word", "key", "'key'")
            self.expect("op", "=", "'='")
            key = self.string()
            self.expect("word", "and", "'and'")
            self.expect("word", "value", "'value'")
            self.expect("op", "=", "'='")
            value = self.string()
            self.expect("punct", "}", "'}'")
            return ("has", field, key, value)
        raise QueryError("unknown or unsupported field %r at offset %d" % (field, t[2]))


def parse_q(q):
    """Parse a q string into an AST; raises QueryError."""
    return _Parser(q).parse()


def _name_contains(name, needle):
    name, needle = name.lower(), needle.lower()
    if not needle:
        return True
    start = 0
    while True:
        i = name.find(needle, start)
        if i < 0:
            return False
        if i == 0 or not name[i - 1].isalnum():
            return True
        start = i + 1


def _compare(a, op, b):
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(node, rec, ctx):
    """ctx: object with resolve(id), is_trashed(rec), user_email."""
    kind = node[0]
    if kind == "and":
        return evaluate(node[1], rec, ctx) and evaluate(node[2], rec, ctx)
    if kind == "or":
        return evaluate(node[1], rec, ctx) or evaluate(node[2], rec, ctx)
    if kind == "not":
        return not evaluate(node[1], rec, ctx)
    if kind == "in_parents":
        return ctx.resolve(node[1]) in rec.get("parents", [])
    if kind == "in_owners":
        return node[1] in ("me", ctx.user_email)
    if kind == "contains":
        if node[1] == "name":
            return _name_contains(rec["name"], node[2])
        return node[2].lower() in rec["mimeType"].lower()
    if kind == "has":
        return rec.get(node[1], {}).get(node[2]) == node[3]
    if kind == "cmp":
        field, op, value = node[1], node[2], node[3]
        if field == "trashed":
            actual = ctx.is_trashed(rec)
        elif field == "starred":
            actual = bool(rec.get("starred"))
        else:
            actual = rec[field]
        return _compare(actual, op, value)
    raise AssertionError(node)


# -- orderBy ---------------------------------------------------------------

_ORDER_KEYS = {"name", "createdTime", "modifiedTime", "folder", "name_natural"}


def parse_order_by(text):
    """Parse orderBy into [(key, descending)]; raises QueryError."""
    out = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2 or words[0] not in _ORDER_KEYS:
            raise QueryError("unsupported sort key %r" % item.strip())
        if len(words) == 2 and words[1] not in ("asc", "desc"):
            raise QueryError("bad sort direction %r" % words[1])
        out.append((words[0], len(words) == 2 and words[1] == "desc"))
    return out


def _natural(name):
    import re
    return [(0, int(p), "") if p.isdigit() else (1, 0, p.lower())
            for p in re.findall(r"\d+|\D+", name)]


def sort_files(files, order, folder_mime):
    """Stable sort: creation order first, then each key from last to first."""
    files = sorted(files, key=lambda f: f["seq"])
    for key, desc in reversed(order):
        if key == "name":
            k = lambda f: f["name"]
        elif key == "name_natural":
            k = lambda f: _natural(f["name"])
        elif key == "folder":
            k = lambda f: 0 if f["mimeType"] == folder_mime else 1
        else:
            k = lambda f, key=key: f[key]
        files.sort(key=k, reverse=desc)
    return files


# -- page tokens -------------------------------------------------------------

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def query_digest(q, order_by):
    return hashlib.sha256(("%s\x00%s" % (q, order_by)).encode("utf-8")).hexdigest()[:16]


def make_page_token(secret, offset, digest):
    body = json.dumps({"o": offset, "h": digest}, separators=(",", ":")).encode("ascii")
    mac = hmac.new(secret, body, hashlib.sha256).digest()[:12]
    return _b64(body + mac)


def read_page_token(secret, token, digest):
    """Return the offset a token encodes; QueryError if forged or for another query."""
    try:
        raw = _unb64(token)
    except (ValueError, TypeError):
        raise QueryError("page token is not valid base64url")
    body, mac = raw[:-12], raw[-12:]
    if len(raw) <= 12 or not hmac.compare_digest(mac, hmac.new(secret, body, hashlib.sha256).digest()[:12]):
        raise QueryError("page token signature mismatch")
    try:
        obj = json.loads(body.decode("ascii"))
        offset, h = int(obj["o"]), obj["h"]
    except (ValueError, KeyError, TypeError):
        raise QueryError("page token is malformed")
    if h != digest:
        raise QueryError("page token belongs to a different query")
    if offset < 0:
        raise QueryError("page token offset is negative")
    return offset
