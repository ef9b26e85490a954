#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""treecmp.py [OPTIONS] A B: compare two file trees by a walk.

For every path (the roots included, shown as "."), compares: the type, the
mode bits (setuid, setgid and sticky included), uid, gid, mtime (whole
seconds; --mtime-ns for exact), and per type: size and content of regular
files (a hash of the non-zero 64 KiB blocks with their offsets, found with
SEEK_DATA/SEEK_HOLE, so holes are never read and a file reads the same
whether its zeros are holes or written), symlink targets, device
major:minor; xattrs (name and value, read without following symlinks); the
names in each directory; and the hard-link partition (for each path, the
set of paths that share its inode must be the same in A and B). atime,
ctime, nlink and directory sizes are not compared.

Prints one line per difference, "KIND 'PATH': A ... | B ...", with PATH
relative to the roots and escaped: printable UTF-8 as is, backslash as \\\\,
quote as \\', newline/tab as \\n/\\t, other control characters and invalid
UTF-8 bytes as \\xNN. Exit 0 and "identical: N entries" when nothing
differs, 1 when something does, 2 on a usage error or an unreadable root.
Standard library only; paths are bytes throughout.
"""
import argparse
import errno
import hashlib
import os
import stat
import sys

BLK = 1 << 16
READ = 1 << 20
ZERO = bytes(BLK)


def esc(b):
    """A bytes path as readable, unambiguous text."""
    out = []
    for ch in b.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02x" % (o - 0xDC00))
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable() and ch != " ":
            out.append("\\x%02x" % o if o < 0x100 else
                       "\\u%04x" % o if o < 0x10000 else "\\U%08x" % o)
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def show_path(rel):
    return esc(rel if rel else b".")


def short(v, n=100):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "...(%d bytes)" % len(v)


TYPES = [(stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
         (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"), (stat.S_ISFIFO, "fifo"),
         (stat.S_ISSOCK, "socket")]


def kind(mode):
    for test, name in TYPES:
        if test(mode):
            return name
    return "type-%o" % stat.S_IFMT(mode)


def data_ranges(fd, size):
    """The 64 KiB-aligned ranges that may hold non-zero bytes."""
    ranges, off = [], 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            return [(0, size)]   # no SEEK_DATA here: read it all
        h = os.lseek(fd, d, os.SEEK_HOLE)
        s, e = d // BLK * BLK, min(size, -(-h // BLK) * BLK)
        if ranges and s <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(e, ranges[-1][1]))
        else:
            ranges.append((s, e))
        off = h
    return ranges


def content_hash(path, size):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY)
    try:
        h = hashlib.sha256(size.to_bytes(8, "little"))
        for s, e in data_ranges(fd, size):
            pos = s
            while pos < e:
                buf = os.pread(fd, min(READ, e - pos), pos)
                if not buf:
                    break
                mv = memoryview(buf)
                for i in range(0, len(buf), BLK):
                    blk = mv[i:i + BLK]
                    if blk != ZERO[:len(blk)]:
                        h.update((pos + i).to_bytes(8, "little"))
                        h.update(blk)
                pos += len(buf)
        return h.hexdigest()
    finally:
        os.close(fd)


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out = {}
    for n in names:
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            if e.errno != errno.ENODATA:   # vanished between list and get
                raise
    return out


class Tree:
    def __init__(self, root):
        self.root = root
        self.hashes = {}   # (dev, ino) -> content hash
        self.inodes = {}   # (dev, ino) -> set of rel paths
        self.ino_of = {}   # rel -> (dev, ino)

    def path(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def hash(self, rel, st):
        key = (st.st_dev, st.st_ino)
        if key not in self.hashes:
            self.hashes[key] = content_hash(self.path(rel), st.st_size)
        return self.hashes[key]

    def note_inode(self, rel, st):
        key = (st.st_dev, st.st_ino)
        self.inodes.setdefault(key, set()).add(rel)
        self.ino_of[rel] = key

    def group(self, rel, common):
        return frozenset(p for p in self.inodes[self.ino_of[rel]] if p in common)


class Cmp:
    def __init__(self, args):
        self.args = args
        self.a = Tree(os.path.realpath(os.fsencode(args.A)))
        self.b = Tree(os.path.realpath(os.fsencode(args.B)))
        self.ignore = set()
        for p in args.ignore:
            p = os.path.normpath(os.fsencode(p))
            while p.startswith(b"./"):
                p = p[2:]
            self.ignore.add(b"" if p == b"." else p.strip(b"/"))
        self.xprefixes = list(args.ignore_xattr)
        self.ndiff = 0
        self.entries = 0
        self.out = sys.stdout.buffer

    def diff(self, what, rel, va, vb=None):
        self.ndiff += 1
        if self.args.max_diffs and self.ndiff > self.args.max_diffs:
            return
        if vb is None:
            line = "%s %s: %s" % (what, show_path(rel), va)
        else:
            line = "%s %s: A %s | B %s" % (what, show_path(rel), va, vb)
        self.out.write(line.encode("utf-8", "backslashreplace") + b"\n")

    def one(self, rel):
        """Compare one path; returns the child names to descend into."""
        self.entries += 1
        try:
            sa = os.lstat(self.a.path(rel))
            sb = os.lstat(self.b.path(rel))
        except OSError as e:
            self.diff("error", rel, "lstat: %s" % e)
            return []
        ka, kb = kind(sa.st_mode), kind(sb.st_mode)
        if ka != kb:
            self.diff("type", rel, ka, kb)
            return []
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            self.diff("mode", rel, "%04o" % stat.S_IMODE(sa.st_mode),
                      "%04o" % stat.S_IMODE(sb.st_mode))
        if sa.st_uid != sb.st_uid:
            self.diff("uid", rel, sa.st_uid, sb.st_uid)
        if sa.st_gid != sb.st_gid:
            self.diff("gid", rel, sa.st_gid, sb.st_gid)
        if not (ka == "dir" and self.args.no_mtime_dirs):
            ma, mb = sa.st_mtime_ns, sb.st_mtime_ns
            if self.args.mtime_ns:
                if ma != mb:
                    self.diff("mtime", rel, "%d.%09d" % divmod(ma, 10**9),
                              "%d.%09d" % divmod(mb, 10**9))
            elif ma // 10**9 != mb // 10**9:
                self.diff("mtime", rel, ma // 10**9, mb // 10**9)
        try:
            if ka == "file":
                if sa.st_size != sb.st_size:
                    self.diff("size", rel, sa.st_size, sb.st_size)
                elif self.a.hash(rel, sa) != self.b.hash(rel, sb):
                    self.diff("content", rel, "sha256 " + self.a.hash(rel, sa)[:16],
                              "sha256 " + self.b.hash(rel, sb)[:16])
            elif ka == "symlink":
                ta, tb = os.readlink(self.a.path(rel)), os.readlink(self.b.path(rel))
                if ta != tb:
                    self.diff("symlink", rel, esc(ta), esc(tb))
            elif ka in ("char", "block"):
                da = "%d:%d" % (os.major(sa.st_rdev), os.minor(sa.st_rdev))
                db = "%d:%d" % (os.major(sb.st_rdev), os.minor(sb.st_rdev))
                if da != db:
                    self.diff("rdev", rel, da, db)
            xa, xb = xattrs(self.a.path(rel)), xattrs(self.b.path(rel))
            for n in sorted(set(xa) | set(xb)):
                if any(n.startswith(p) for p in self.xprefixes):
                    continue
                if n not in xb:
                    self.diff("xattr", rel, "%s=%s" % (n, short(xa[n])), "(none)")
                elif n not in xa:
                    self.diff("xattr", rel, "(none)", "%s=%s" % (n, short(xb[n])))
                elif xa[n] != xb[n]:
                    self.diff("xattr", rel, "%s=%s" % (n, short(xa[n])),
                              "%s=%s" % (n, short(xb[n])))
            if ka != "dir":
                self.a.note_inode(rel, sa)
                self.b.note_inode(rel, sb)
                return []
            na = set(os.listdir(self.a.path(rel)))
            nb = set(os.listdir(self.b.path(rel)))
        except OSError as e:
            self.diff("error", rel, str(e))
            return []
        kids = []
        for n in sorted(na | nb):
            r = os.path.join(rel, n) if rel else n
            if r in self.ignore:
                continue
            if n not in nb:
                self.diff("only-in-A", r, self.what(self.a, r))
            elif n not in na:
                self.diff("only-in-B", r, self.what(self.b, r))
            else:
                kids.append(r)
        return kids

    def what(self, tree, rel):
        try:
            return kind(os.lstat(tree.path(rel)).st_mode)
        except OSError as e:
            return str(e)

    def run(self):
        for t in (self.a, self.b):
            if not os.path.isdir(t.root):
                print("treecmp: %s is not a directory" % os.fsdecode(t.root), file=sys.stderr)
                return 2
        stack = [] if b"" in self.ignore else [b""]
        while stack:
            rel = stack.pop()
            stack.extend(reversed(self.one(rel)))
        # Hard links: the partition of the paths present in both trees.
        common = set(self.a.ino_of) & set(self.b.ino_of)
        seen = set()
        for rel in sorted(common):
            ga, gb = self.a.group(rel, common), self.b.group(rel, common)
            if ga != gb and (ga, gb) not in seen:
                seen.add((ga, gb))
                self.diff("hardlinks", rel, "[%s]" % ", ".join(show_path(p) for p in sorted(ga)),
                          "[%s]" % ", ".join(show_path(p) for p in sorted(gb)))
        if self.ndiff:
            if self.args.max_diffs and self.ndiff > self.args.max_diffs:
                print("(%d more not shown)" % (self.ndiff - self.args.max_diffs))
            print("%d differences in %d entries" % (self.ndiff, self.entries))
            return 1
        print("identical: %d entries" % self.entries)
        return 0


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="exit 0: identical, 1: differences, 2: usage error or unreadable root")
    ap.add_argument("A")
    ap.add_argument("B")
    ap.add_argument("--ignore", action="append", default=[], metavar="PATH",
                    help="skip this path (relative to the roots) and what is under it; repeatable")
    ap.add_argument("--ignore-xattr", action="append", default=[], metavar="PREFIX",
                    help="skip xattrs whose name starts with PREFIX, e.g. system.posix_acl_; repeatable")
    ap.add_argument("--mtime-ns", action="store_true", help="compare mtimes to the nanosecond")
    ap.add_argument("--no-mtime-dirs", action="store_true", help="do not compare directory mtimes")
    ap.add_argument("--max-diffs", type=int, default=0, metavar="N",
                    help="print at most N differences (all are counted); 0: no limit")
    sys.exit(Cmp(ap.parse_args()).run())


if __name__ == "__main__":
    main()
