#!/bin/bash
# SPDX-License-Identifier: MIT
# mktree.sh [--small] [--with-unrepresentable] DIR
#
# Builds a hostile root-filesystem tree in DIR (created; must not exist or be
# empty) to prove POSIX fidelity of push/export/mount: compare the tree with
# what comes back using tests/fidelity/treecmp.py. Needs root (owners, device
# nodes, trusted.* xattrs); prints "SKIP: needs root" and exits 77 otherwise.
# Deterministic: every byte comes from Python's random.Random seeded with the
# file's name, and every mode, owner and mtime is set explicitly, so two runs
# give trees that treecmp.py --mtime-ns calls identical. Takes about a second;
# sparse files stay sparse (the whole tree uses about 10 MB of disk).
#
# What it makes, one folder per class (all of it survives squashfs 4.5.1 on
# kernel 6.18, checked by tests/fidelity/selftest.sh):
#   files/      regular files: empty, 1 byte, sizes at the 4 KiB page and
#               128 KiB squashfs block edges, 1 MiB incompressible, compressible
#               text, written (non-sparse) zeros, two files with the same bytes
#               (squashfs dedups data, the inodes must stay distinct)
#   links/      symlink chain chain-a -> chain-b -> chain-c -> target-file,
#               relative, absolute, dangling, to a directory, to itself, "." and
#               "..", a 4095-byte target (PATH_MAX - 1), targets with a newline,
#               invalid UTF-8 and non-ASCII
#   hardlinks/  a group of 3 names in 3 directories, a hard-linked executable
#               (bin/tool = sbin/tool-alias, 0755), hard-linked fifo and char
#               device pairs
#   perms/      setuid, setgid, both, sticky file, 07777, 0000, 0444, 0200, 0111,
#               setuid without x (4644); dirs: sticky 1777, setgid 2775, 0700,
#               0555, 0000 (with a file inside)
#   owners/     numeric ids with no /etc/passwd entry: 1001:1002, 65534:65534,
#               4242:777, 0:4242, 4294967294:4000000000, 2147483648:2147483648,
#               on files, a directory, a symlink (lchown) and a fifo
#   devices/    char 1:3 1:5 4:64 10:200 0:0 (an overlayfs whiteout's shape) and
#               4095:1048575 (the largest major:minor squashfs encodes); block
#               8:0 8:1 7:1048575 259:65536
#   special/    a fifo (0620) and a unix socket (bound with Python, left behind)
#   xattrs/     user.* (plain, empty value, all 256 byte values, name with a
#               space, non-ASCII name), trusted.*, an arbitrary security.foo
#               (skipped with a note on stderr if the kernel refuses it), a
#               3000-byte value, 30 names on one file, xattrs on a directory,
#               a symlink, a fifo and a device, security.capability via
#               `setcap cap_net_raw+ep` and a multi-capability file; and a
#               user.* xattr on the tree's root itself
#   sparse/     1g: 1 GiB apparent, ~2 MB written at 0, an unaligned offset near
#               300 MiB, 700 MiB and the last byte; 5g: 5 GiB apparent with data
#               at 0, 2.5 GiB, straddling the 4 GiB boundary and at the end;
#               hole at the start, hole at the end, all hole (10 MiB)
#   names/      255-byte ASCII and 255-byte UTF-8 names, a 255-byte directory
#               name, "çà-日本語-🙂", a newline, invalid UTF-8 (\xff\xfe and a
#               broken sequence), spaces (leading/trailing), quotes, backslash,
#               tab, control bytes, glob and shell metacharacters, -dash, .dot, ...
#   deep/       32 nested 50-byte directory names (~1.6 KB path) with a file and
#               a symlink back to the top at the bottom
#   empty/      empty file, empty dir, nested empty dirs, empty dir with mode 0
#   times/      mtimes 0 (1970), 2001-02-03 04:05:06, 2^31-1, 2^31, 2^32-1 (the
#               last second squashfs' unsigned 32-bit field holds), on files,
#               a symlink, a fifo and a directory
# Every other entry gets a fixed mtime (files 1700000000, directories
# 1650000000 + 3600 * their index in sorted order); directories are set last,
# deepest first, because creating entries changes a directory's mtime.
#
# --with-unrepresentable adds unrepresentable/, what squashfs cannot hold, so
# that push can be tested to report it (mksquashfs itself drops it silently or
# with a mere warning):
#   acl-file, acl-dir   POSIX ACLs (system.posix_acl_access, and _default on
#                       the dir), set with setfacl: mksquashfs drops them with
#                       "Unrecognised xattr prefix"
#   subsec-file, subsec-dir   mtime with nanoseconds: squashfs keeps seconds
#   pre-1970, pre-1970-link   mtime -14182940 (1969-07-20): wraps to 2105
#   after-2106          mtime 2^32: wraps to 0 (1970)
#   symlink-hardlink-a, -b   one symlink inode with two names: mksquashfs 4.5.1
#                       stores two separate symlinks (the link is split)
# --small leaves out sparse/1g and sparse/5g (mksquashfs reads holes at
# ~400 MB/s here, so those two cost ~15 s per image); other tests that push the
# tree through the whole pipeline may prefer it.
set -euo pipefail

small=0 unrep=0 dir=
while [ $# -gt 0 ]; do
	case $1 in
	--small) small=1 ;;
	--with-unrepresentable) unrep=1 ;;
	-h | --help) sed -n '3,4p' "$0" | sed 's/^# //'; exit 0 ;;
	-*) echo "mktree.sh: unknown option $1" >&2; exit 2 ;;
	*) [ -z "$dir" ] || { echo "mktree.sh: one DIR only" >&2; exit 2; }; dir=$1 ;;
	esac
	shift
done
[ -n "$dir" ] || { echo "usage: mktree.sh [--small] [--with-unrepresentable] DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v setcap >/dev/null 2>&1 || { echo "SKIP: needs setcap (libcap2-bin)"; exit 77; }
if [ "$unrep" = 1 ]; then
	command -v setfacl >/dev/null 2>&1 || { echo "SKIP: needs setfacl (acl)"; exit 77; }
fi
mkdir -p "$dir"
[ -z "$(ls -A "$dir")" ] || { echo "mktree.sh: $dir is not empty" >&2; exit 2; }

exec /usr/bin/python3 - "$dir" "$small" "$unrep" <<'PYEOF'
import os, random, socket, stat, subprocess, sys

ROOT = os.fsencode(os.path.abspath(sys.argv[1]))
SMALL = sys.argv[2] == "1"
UNREP = sys.argv[3] == "1"
os.umask(0o022)

def P(rel):
    rel = rel if isinstance(rel, bytes) else rel.encode()
    return os.path.join(ROOT, rel) if rel else ROOT

def rnd(name, n):
    return random.Random("gdroot-mktree:" + repr(name)).randbytes(n)

owners = {}   # rel -> (uid, gid), applied after creation (chown clears setuid)
modes = {}    # rel -> mode bits, applied after chown
mtimes = {}   # rel -> ns; everything else gets a default

def mkdir(rel, mode=None):
    os.makedirs(P(rel), exist_ok=True)
    if mode is not None:
        modes[rel] = mode

def mkfile(rel, data=None, mode=None, size=None):
    if data is None:
        data = rnd(rel, size or 0)
    with open(P(rel), "wb") as f:
        f.write(data)
    if mode is not None:
        modes[rel] = mode

def symlink(target, rel):
    os.symlink(target if isinstance(target, bytes) else target.encode(), P(rel))

def S(sec, ns=0):
    return sec * 10**9 + ns

# files/
mkdir("files")
for name, n in [("empty", 0), ("one-byte", 1), ("4095", 4095), ("4096", 4096),
                ("4097", 4097), ("131071", 131071), ("131072", 131072),
                ("131073", 131073), ("random-1m", 1 << 20)]:
    mkfile("files/" + name, size=n)
mkfile("files/text", b"".join(b"line %06d of a compressible text file\n" % i
                              for i in range(8000)))
mkfile("files/zeros-written", bytes(256 * 1024))
same = rnd("same-content", 200000)
mkfile("files/dup-a", same)
mkfile("files/dup-b", same)
mkfile("files/small", b"small file\n")

# links/
mkdir("links")
mkfile("links/target-file", b"end of the chain\n")
symlink("chain-b", "links/chain-a")
symlink("chain-c", "links/chain-b")
symlink("target-file", "links/chain-c")
symlink("../files/small", "links/relative")
symlink("/etc/hostname", "links/absolute")
symlink("does/not/exist", "links/dangling")
symlink("../files", "links/to-dir")
symlink("/usr", "links/to-dir-absolute")
symlink("self", "links/self")
symlink(".", "links/dot")
symlink("..", "links/dotdot")
symlink("long/" * 819, "links/long-target")          # 4095 bytes
symlink(b"new\nline/\xff\xfe target with space", "links/weird-target")
symlink("çà-日本語-🙂", "links/utf8-target")

# hardlinks/
for d in ["hardlinks/group", "hardlinks/a", "hardlinks/b/c", "hardlinks/bin",
          "hardlinks/sbin"]:
    mkdir(d)
mkfile("hardlinks/group/one", size=5000)
os.link(P("hardlinks/group/one"), P("hardlinks/a/two"))
os.link(P("hardlinks/group/one"), P("hardlinks/b/c/three"))
mkfile("hardlinks/bin/tool", b"#!/bin/sh\necho tool \"$@\"\n", mode=0o755)
os.link(P("hardlinks/bin/tool"), P("hardlinks/sbin/tool-alias"))
os.mkfifo(P("hardlinks/fifo-a"), 0o644)
os.link(P("hardlinks/fifo-a"), P("hardlinks/fifo-b"))
os.mknod(P("hardlinks/dev-a"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
os.link(P("hardlinks/dev-a"), P("hardlinks/dev-b"))
mkfile("hardlinks/single", size=5000)                 # same size, not linked

# perms/
mkdir("perms")
for name, m in [("setuid", 0o4755), ("setgid", 0o2755), ("setuid-setgid", 0o6755),
                ("sticky-file", 0o1644), ("all-bits", 0o7777), ("none", 0o000),
                ("read-only", 0o444), ("write-only", 0o200), ("exec-only", 0o111),
                ("setuid-no-exec", 0o4644)]:
    mkfile("perms/" + name, b"#!/bin/sh\necho %s\n" % name.encode(), mode=m)
for name, m in [("sticky-dir", 0o1777), ("setgid-dir", 0o2775), ("dir-0700", 0o700),
                ("dir-0555", 0o555), ("dir-0000", 0o000)]:
    mkdir("perms/" + name, m)
    mkfile("perms/%s/inside" % name, b"inside\n")
owners["perms/setgid-dir"] = (0, 777)
owners["perms/setuid"] = (1001, 1002)                 # setuid to a non-root owner

# owners/
mkdir("owners")
for name, ug in [("u1001-g1002", (1001, 1002)), ("nobody", (65534, 65534)),
                 ("u4242-g777", (4242, 777)), ("u0-g4242", (0, 4242)),
                 ("big-ids", (4294967294, 4000000000)),
                 ("2-pow-31", (2147483648, 2147483648))]:
    mkfile("owners/" + name, name.encode() + b"\n")
    owners["owners/" + name] = ug
mkdir("owners/dir-1001")
owners["owners/dir-1001"] = (1001, 1002)
mkfile("owners/dir-1001/file-4242", b"x\n")
owners["owners/dir-1001/file-4242"] = (4242, 777)
symlink("u1001-g1002", "owners/link-65534")
owners["owners/link-65534"] = (65534, 65534)
os.mkfifo(P("owners/fifo-4242"))
owners["owners/fifo-4242"] = (4242, 4242)

# devices/
mkdir("devices")
for name, kind, ma, mi, m in [
        ("char-1-3", stat.S_IFCHR, 1, 3, 0o666), ("char-1-5", stat.S_IFCHR, 1, 5, 0o644),
        ("char-4-64", stat.S_IFCHR, 4, 64, 0o620), ("char-10-200", stat.S_IFCHR, 10, 200, 0o600),
        ("char-0-0", stat.S_IFCHR, 0, 0, 0o000),
        ("char-4095-1048575", stat.S_IFCHR, 4095, 1048575, 0o640),
        ("block-8-0", stat.S_IFBLK, 8, 0, 0o660), ("block-8-1", stat.S_IFBLK, 8, 1, 0o660),
        ("block-7-1048575", stat.S_IFBLK, 7, 1048575, 0o600),
        ("block-259-65536", stat.S_IFBLK, 259, 65536, 0o640)]:
    os.mknod(P("devices/" + name), kind | m, os.makedev(ma, mi))
    modes["devices/" + name] = m
owners["devices/block-8-0"] = (0, 6)

# special/
mkdir("special")
os.mkfifo(P("special/fifo"))
modes["special/fifo"] = 0o620
cwd = os.getcwd()
os.chdir(P("special"))                                # sun_path is 108 bytes at most
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("socket")
s.close()
os.chdir(cwd)
modes["special/socket"] = 0o755

# xattrs/
mkdir("xattrs")
xattrs = []   # (rel, name, value), set after chown/chmod
mkfile("xattrs/file", b"file with xattrs\n")
for name, val in [("user.plain", b"value"), ("user.empty", b""),
                  ("user.binary", bytes(range(256))), ("user.with space", b"sp ace"),
                  ("user.çà", "日本語".encode()), ("trusted.t", b"trusted-value")]:
    xattrs.append(("xattrs/file", name, val))
mkfile("xattrs/long-value", b"long\n")
xattrs.append(("xattrs/long-value", "user.long", rnd("long-xattr", 3000)))
mkfile("xattrs/many", b"many\n")
for i in range(30):
    xattrs.append(("xattrs/many", "user.k%02d" % i, b"v%d" % i * (i + 1)))
mkdir("xattrs/dir")
xattrs += [("xattrs/dir", "user.dir", b"on a dir"), ("xattrs/dir", "trusted.dir", b"td")]
symlink("../files/small", "xattrs/symlink")
xattrs.append(("xattrs/symlink", "trusted.link", b"on a symlink"))
os.mkfifo(P("xattrs/fifo"))
xattrs.append(("xattrs/fifo", "trusted.fifo", b"on a fifo"))
os.mknod(P("xattrs/dev"), stat.S_IFCHR | 0o600, os.makedev(1, 7))
xattrs.append(("xattrs/dev", "trusted.dev", b"on a device"))
mkfile("xattrs/cap-ping", b"#!/bin/sh\necho ping\n", mode=0o755)
mkfile("xattrs/cap-multi", b"#!/bin/sh\necho multi\n", mode=0o750)
xattrs.append(("", "user.root", b"on the root"))

# sparse/
mkdir("sparse")
def sparse(rel, size, writes):
    fd = os.open(P(rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, size)
    for off, n in writes:
        os.pwrite(fd, rnd((rel, off), n), off)
    os.close(fd)
M, G = 1 << 20, 1 << 30
if not SMALL:
    sparse("sparse/1g", G, [(0, M), (300 * M + 12345, M), (700 * M, 65536), (G - 1, 1)])
    sparse("sparse/5g", 5 * G, [(0, 131072), (5 * G // 2, 65536),
                                (4 * G - 4096, 8192), (5 * G - 4096, 4096)])
sparse("sparse/hole-start", 4 * M + 100, [(4 * M, 100)])
sparse("sparse/hole-end", 3 * M, [(0, 70000)])
sparse("sparse/all-hole", 10 * M, [])

# names/
mkdir("names")
weird = ["çà-日本語-🙂", b"new\nline", b"\xff\xfe", b"bad-\xc3(-utf8", "with space",
         " leading space", "trailing space ", "single'quote", 'double"quote',
         "back\\slash", "tab\there", "-dash-first", ".hidden", "...",
         "*glob?[x]", "$dollar`tick`", "semi;colon&amp|pipe<>", b"\x01ctrl\x7f",
         "colon:eq=pct%", "Case", "case", "L" * 255, "語" * 85]
for n in weird:
    n = n if isinstance(n, bytes) else n.encode()
    assert len(n) <= 255
    mkfile(b"names/" + n, n + b"\n")
longdir = b"names/" + b"D" * 255
mkdir(longdir)
mkfile(longdir + b"/" + b"f" * 255, b"long dir, long name\n")
mkdir(b"names/dir-\xff")
mkfile(b"names/dir-\xff/inner\nfile", b"inner\n")

# deep/
rel = "deep"
for i in range(1, 33):
    rel += "/level-%02d-%s" % (i, "d" * 41)
mkdir(rel)
mkfile(rel + "/bottom", b"32 levels down\n")
symlink("../" * 32, rel + "/to-top")

# empty/
mkdir("empty/dir")
mkdir("empty/nested/inner/innermost")
mkdir("empty/dir-0000", 0o000)
mkfile("empty/file", b"")

# times/
mkdir("times")
for name, t in [("epoch-0", 0), ("2001-02-03", 981173106), ("2038-max", 2**31 - 1),
                ("2038-plus-1", 2**31), ("u32-max", 2**32 - 1)]:
    mkfile("times/" + name, name.encode() + b"\n")
    mtimes["times/" + name] = S(t)
symlink("epoch-0", "times/link")
mtimes["times/link"] = S(1234567890)
os.mkfifo(P("times/fifo"))
mtimes["times/fifo"] = S(1111111111)
mkdir("times/dir-old")
mkfile("times/dir-old/inside", b"x\n")
mtimes["times/dir-old"] = S(1000000000)

# unrepresentable/ (only with --with-unrepresentable)
acls = []
if UNREP:
    mkdir("unrepresentable")
    mkfile("unrepresentable/acl-file", b"acl\n")
    acls.append((["-m", "u:1001:r,g:777:rw,m::rw"], "unrepresentable/acl-file"))
    mkdir("unrepresentable/acl-dir")
    mkfile("unrepresentable/acl-dir/inside", b"x\n")
    acls.append((["-m", "u:1001:rx", "-d", "-m", "u:1001:rwx"], "unrepresentable/acl-dir"))
    mkfile("unrepresentable/subsec-file", b"subsec\n")
    mtimes["unrepresentable/subsec-file"] = S(1500000000, 123456789)
    mkdir("unrepresentable/subsec-dir")
    mtimes["unrepresentable/subsec-dir"] = S(1500000001, 987654321)
    mkfile("unrepresentable/pre-1970", b"1969\n")
    mtimes["unrepresentable/pre-1970"] = S(-14182940)
    symlink("pre-1970", "unrepresentable/pre-1970-link")
    mtimes["unrepresentable/pre-1970-link"] = S(-1)
    mkfile("unrepresentable/after-2106", b"2106\n")
    mtimes["unrepresentable/after-2106"] = S(2**32)
    symlink("after-2106", "unrepresentable/symlink-hardlink-a")
    os.link(P("unrepresentable/symlink-hardlink-a"),
            P("unrepresentable/symlink-hardlink-b"), follow_symlinks=False)

# Metadata, in the order that keeps it: owners (chown clears setuid and
# capabilities), modes, xattrs and capabilities, ACLs, then times, dirs last.
modes[""] = 0o755
for rel, (u, g) in owners.items():
    os.chown(P(rel), u, g, follow_symlinks=False)
for rel, m in modes.items():
    os.chmod(P(rel), m)
for rel, name, val in xattrs:
    os.setxattr(P(rel), name, val, follow_symlinks=False)
try:
    os.setxattr(P("xattrs/file"), "security.foo", b"sec", follow_symlinks=False)
except OSError as e:
    print("mktree.sh: note: kernel refused security.foo (%s); left out" % e.strerror,
          file=sys.stderr)
subprocess.run(["setcap", "cap_net_raw+ep", P("xattrs/cap-ping")], check=True)
subprocess.run(["setcap", "cap_net_bind_service,cap_sys_time=eip", P("xattrs/cap-multi")],
               check=True)
for args, rel in acls:
    subprocess.run(["setfacl"] + args + [P(rel)], check=True)

dirs, others = [], []
for top, dnames, fnames in os.walk(ROOT):
    r = os.path.relpath(top, ROOT)
    r = b"" if r == b"." else r
    dirs.append(r)
    for n in fnames:
        others.append(os.path.join(r, n) if r else n)
    for n in dnames:           # symlinks to directories are listed as dirs
        if os.path.islink(os.path.join(top, n)):
            others.append(os.path.join(r, n) if r else n)
bmtimes = {k.encode() if isinstance(k, str) else k: v for k, v in mtimes.items()}
for r in others:
    t = bmtimes.get(r, S(1700000000))
    os.utime(P(r), ns=(t, t), follow_symlinks=False)
dirs = [d for d in dirs if not os.path.islink(P(d))]
index = {d: i for i, d in enumerate(sorted(dirs))}
for d in sorted(dirs, key=lambda d: d.count(b"/") + (d != b""), reverse=True):
    t = bmtimes.get(d, S(1650000000 + 3600 * index[d]))
    os.utime(P(d), ns=(t, t), follow_symlinks=False)
PYEOF
