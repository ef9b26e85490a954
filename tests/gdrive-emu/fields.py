# SPDX-License-Identifier: MIT
"""The `fields` partial-response selector of Google APIs.

Syntax: a comma-separated list of selections; `a/b` selects b inside a;
`a(b,c)` selects b and c inside a; `*` selects everything at its level.
Selections apply through arrays (``files(id)`` picks id in each file).
Unknown names are rejected against a schema, as Drive rejects them.
"""


class FieldsError(ValueError):
    pass


ALL = "ALL"

# Every top-level property of the File resource in the v3 discovery document.
FILE_FIELDS = frozenset("""
appProperties capabilities contentHints contentRestrictions copyRequiresWriterPermission
createdTime description downloadRestrictions driveId explicitlyTrashed exportLinks
fileExtension folderColorRgb fullFileExtension hasAugmentedPermissions hasThumbnail
headRevisionId iconLink id imageMediaMetadata inheritedPermissionsDisabled isAppAuthorized
kind labelInfo lastModifyingUser linkShareMetadata md5Checksum mimeType modifiedByMe
modifiedByMeTime modifiedTime name originalFilename ownedByMe owners parents permissionIds
permissions properties quotaBytesUsed resourceKey sha1Checksum sha256Checksum shared
sharedWithMeTime sharingUser shortcutDetails size spaces starred teamDriveId thumbnailLink
thumbnailVersion trashed trashedTime trashingUser version videoMediaMetadata viewedByMe
viewedByMeTime viewersCanCopyContent webContentLink webViewLink writersCanShare
""".split())

# Schemas: dict name -> sub-schema, or None for "anything below".
FILE_SCHEMA = {name: None for name in FILE_FIELDS}
FILE_LIST_SCHEMA = {"kind": None, "nextPageToken": None, "incompleteSearch": None,
                    "files": FILE_SCHEMA}
ABOUT_SCHEMA = {name: None for name in (
    "kind user storageQuota maxUploadSize appInstalled canCreateDrives importFormats "
    "exportFormats maxImportSizes folderColorPalette driveThemes canCreateTeamDrives "
    "teamDriveThemes").split()}
GENERATED_IDS_SCHEMA = {"kind": None, "space": None, "ids": None}

DEFAULT_FILE = "kind,id,name,mimeType"
DEFAULT_FILE_LIST = "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)"


def _merge(a, b):
    if a is ALL or b is ALL:
        return ALL
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if k in out else v
    return out


class _Parser:
    def __init__(self, text):
        self.s = text
        self.i = 0

    def error(self, msg):
        raise FieldsError("Invalid field selection %s: %s" % (self.s, msg))

    def name(self):
        j = self.i
        if self.s.startswith("*", j):
            self.i += 1
            return "*"
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] in "_-.@#$"):
            j += 1
        if j == self.i:
            self.error("expected a field name at offset %d" % self.i)
        name, self.i = self.s[self.i:j], j
        return name

    def selection(self):
        path = [self.name()]
        while self.s.startswith("/", self.i):
            self.i += 1
            path.append(self.name())
        leaf = ALL
        if self.s.startswith("(", self.i):
            self.i += 1
            leaf = self.items()
            if not self.s.startswith(")", self.i):
                self.error("expected ')' at offset %d" % self.i)
            self.i += 1
        tree = leaf
        for part in reversed(path):
            tree = ALL if part == "*" and tree is ALL else {part: tree}
        return tree

    def items(self):
        tree = {}
        while True:
            while self.i < len(self.s) and self.s[self.i] == " ":
                self.i += 1
            tree = _merge(tree, self.selection())
            while self.i < len(self.s) and self.s[self.i] == " ":
                self.i += 1
            if not self.s.startswith(",", self.i):
                return tree
            self.i += 1


def parse(text):
    """Parse a fields string into a selection tree (dict or ALL)."""
    p = _Parser(text.strip())
    if not p.s:
        raise FieldsError("Invalid field selection: empty")
    tree = p.items()
    if p.i != len(p.s):
        p.error("unexpected %r at offset %d" % (p.s[p.i], p.i))
    return tree


def validate(tree, schema, prefix=""):
    if tree is ALL or schema is None:
        return
    for name, sub in tree.items():
        if name == "*":
            continue
        if name not in schema:
            raise FieldsError("Invalid field selection %s%s" % (prefix, name))
        validate(sub, schema[name], prefix + name + "/")


def apply(tree, value):
    if tree is ALL:
        return value
    if isinstance(value, list):
        return [apply(tree, v) for v in value]
    if not isinstance(value, dict):
        return value
    out = dict(value) if "*" in tree else {}
    for name, sub in tree.items():
        if name != "*" and name in value:
            out[name] = apply(sub, value[name])
    return out


def select(text, default, schema, value):
    """Parse, validate and apply `text` (or `default` when None) to value."""
    tree = parse(default if text is None else text)
    validate(tree, schema)
    return apply(tree, value)
