# -*- test-case-name: tests.test_upload -*-
"""
The files of HTTP File Upload (XEP-0363) on disk, and the signed URLs that
lead to them; shared by the upload service that hands out slots
(L{xmppd.features.upload.service}) and the resource that takes and serves
the files (L{xmppd.http.upload}, given a store by L{xmppd.tap}, since the
HTTP layer imports no feature).  No C{twisted.web} here: the feature is
imported on every node, with or without HTTP.

Nothing on disk is named from what a client sends.  A slot is a signed
token (HMAC-SHA256 with the node's secret, L{xmppd.core.server.loadSecret})
holding who may upload (the owner's key, an HMAC of the bare JID, so URLs
do not show who uploaded), a random id, the PUT deadline, the exact size and
content type, and the file name; the file lives at
C{data_dir/upload/<owner key>/<random id>/file} with its facts in
C{meta.json} beside it.  Both keys are lowercase hex checked before use, so
C{../}, encoded or not, absolute paths and NUL never reach the file system;
the name a client gave is only ever repeated in headers and URLs.

An upload is written to a directory of its own (C{.<id>.<nonce>.part}) and
renamed into place only when every byte arrived: a broken upload leaves
nothing, and since a directory cannot be renamed onto a non-empty one, a
slot is filled once even when two uploads race.  L{UploadStore.sweep}
removes expired files and leftovers of uploads that did not finish.

The tokens need no state, so a slot handed out by one node of a cluster can
be filled on another sharing the same data directory and secret.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import unicodedata
from urllib.parse import quote

#: Where uploads live under C{server.data_dir}.
UPLOAD_DIR = "upload"
#: The first path segment of every upload URL on the HTTP service.
PATH = "upload"
#: The segment after it that marks a PUT URL (owner keys are hex, never this).
PUT = "put"
#: The longest file name accepted, in UTF-8 bytes (a common file system limit).
MAX_FILENAME = 255
#: The longest content type accepted.
MAX_CONTENT_TYPE = 255

KEY = re.compile(r"[0-9a-f]{32}\Z")
CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
                          r"(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=(\"[^\"\\\x00-\x1f]*\"|[A-Za-z0-9!#$&^_.+-]+))*\Z")


class SlotRefused(Exception):
    """
    A slot request or an upload that cannot be granted; C{reason} is one
    of C{"filename"}, C{"size"}, C{"content-type"} (malformed), C{"too-large"}
    (over C{max_file_size}) and C{"quota"} (over the owner's quota).
    """

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclasses.dataclass(frozen=True)
class Slot:
    """One granted upload: see the module docstring."""

    owner: str
    id: str
    expires: int
    size: int
    contentType: str
    filename: str


def checkFilename(filename: object) -> str:
    """
    C{filename} if it is a plain file name, else L{SlotRefused}: no path
    separators, no C{.} or C{..}, no control characters (NUL included), not
    empty and at most L{MAX_FILENAME} bytes.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise SlotRefused("filename", "the filename is missing")
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME:
        raise SlotRefused("filename", f"the filename is longer than {MAX_FILENAME} bytes")
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        raise SlotRefused("filename", "the filename may not contain a path")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in filename):
        raise SlotRefused("filename", "the filename contains control characters")
    return filename


def checkSize(size: object) -> int:
    """The size attribute as bytes, else L{SlotRefused}."""
    if not isinstance(size, str) or not size.isascii() or not size.isdigit() or len(size) > 18:
        raise SlotRefused("size", "the size must be a number of bytes")
    return int(size)


def checkContentType(contentType: object) -> str:
    """The content type (C{application/octet-stream} when missing), else L{SlotRefused}."""
    if contentType is None or contentType == "":
        return "application/octet-stream"
    if (not isinstance(contentType, str) or len(contentType) > MAX_CONTENT_TYPE
            or not CONTENT_TYPE.match(contentType)):
        raise SlotRefused("content-type", "the content-type is not a media type")
    return contentType


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UploadStore:
    """
    The upload directory of one node, the slots it signs and the files in
    it; see the module docstring.

    @ivar root: C{data_dir/upload}.
    @ivar clock: gives C{seconds()}: a reactor, or a L{Clock} in tests.
    """

    def __init__(self, dataDir: str, secret: bytes, clock, settings):
        self.root = os.path.join(dataDir, UPLOAD_DIR)
        self.secret = secret
        self.clock = clock
        self.settings = settings
        #: The partial directories being written now (the sweep spares
        #: them) and the slot of each (their sizes count against quotas).
        self.writing: dict[str, Slot] = {}

    # -- signatures ------------------------------------------------------------------

    def sign(self, purpose: bytes, text: str) -> str:
        mac = hmac.new(self.secret, b"xmppd upload " + purpose + b"\0" + text.encode("utf-8"),
                       hashlib.sha256)
        return mac.hexdigest()[:32]

    def ownerKey(self, bareJID: str) -> str:
        """Whose files: a key of the bare JID that does not show it."""
        return self.sign(b"owner", bareJID)

    def putToken(self, slot: Slot) -> str:
        payload = _b64(json.dumps([slot.owner, slot.id, slot.expires, slot.size,
                                   slot.contentType, slot.filename],
                                  separators=(",", ":")).encode("utf-8"))
        return payload + "." + self.sign(b"put", payload)

    def slotOf(self, token: str) -> Slot | None:
        """
        The slot of a PUT token if this node signed it, else C{None}
        (expiry is the caller's to check: it answers differently).
        """
        payload, _, signature = token.partition(".")
        if not payload or not hmac.compare_digest(signature, self.sign(b"put", payload)):
            return None
        try:
            owner, id, expires, size, contentType, filename = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            return None
        if not (isinstance(owner, str) and KEY.match(owner)
                and isinstance(id, str) and KEY.match(id)):
            return None
        return Slot(owner, id, expires, size, contentType, filename)

    def getSignature(self, owner: str, id: str) -> str:
        return self.sign(b"get", owner + "/" + id)

    def validGet(self, owner: str, id: str, signature: str) -> bool:
        """Whether C{/upload/owner/id/signature/...} is a URL this node gave out."""
        return (bool(KEY.match(owner)) and bool(KEY.match(id))
                and hmac.compare_digest(signature, self.getSignature(owner, id)))

    # -- what the HTTP side asks (the segments of a path after /upload/) -------------

    def putSlot(self, parts: list[str]) -> Slot | None:
        """The slot of a PUT URL's segments (C{put/<token>/<name>}), if valid and signed here."""
        if len(parts) != 3 or parts[0] != PUT:
            return None
        return self.slotOf(parts[1])

    def getFile(self, parts: list[str]) -> tuple[str, str] | None:
        """
        The (owner, id) of a GET URL's segments (C{<owner>/<id>/<signature>/<name>})
        if this node signed it; what is there is L{meta}'s and L{filePath}'s.
        """
        if len(parts) != 4 or not self.validGet(parts[0], parts[1], parts[2]):
            return None
        return parts[0], parts[1]

    # -- slots -----------------------------------------------------------------------

    def newSlot(self, bareJID: str, filename, size, contentType) -> Slot:
        """
        A slot for C{bareJID}'s file, or L{SlotRefused} (the checks of
        XEP-0363 §4: a plain name, a size within C{max_file_size} and the
        owner's quota, a media type).
        """
        filename = checkFilename(filename)
        size = checkSize(size)
        contentType = checkContentType(contentType)
        if size > self.settings.max_file_size:
            raise SlotRefused("too-large", f"the file is larger than "
                              f"{self.settings.max_file_size} bytes")
        owner = self.ownerKey(bareJID)
        if self.used(owner) + size > self.settings.quota:
            raise SlotRefused("quota", f"your uploads would exceed your quota of "
                              f"{self.settings.quota} bytes")
        expires = int(self.clock.seconds()) + self.settings.slot_lifetime
        return Slot(owner, secrets.token_hex(16), expires, size, contentType, filename)

    def putPath(self, slot: Slot) -> str:
        """The URL path of C{slot}'s PUT."""
        return "/%s/%s/%s/%s" % (PATH, PUT, self.putToken(slot), quote(slot.filename, safe=""))

    def getPath(self, slot: Slot) -> str:
        """The URL path of C{slot}'s file once uploaded."""
        return "/%s/%s/%s/%s/%s" % (PATH, slot.owner, slot.id,
                                   self.getSignature(slot.owner, slot.id),
                                   quote(slot.filename, safe=""))

    # -- files -----------------------------------------------------------------------

    def directory(self, owner: str, id: str) -> str:
        # Both are checked hex (KEY): nothing here comes from URL text.
        assert KEY.match(owner) and KEY.match(id)
        return os.path.join(self.root, owner, id)

    def exists(self, slot: Slot) -> bool:
        return os.path.isdir(self.directory(slot.owner, slot.id))

    def meta(self, owner: str, id: str) -> dict | None:
        """What C{meta.json} says of an uploaded file, or C{None} if there is none."""
        try:
            with open(os.path.join(self.directory(owner, id), "meta.json"), "rb") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def filePath(self, owner: str, id: str) -> str:
        return os.path.join(self.directory(owner, id), "file")

    def files(self, owner: str):
        """(id, meta) of each file C{owner} uploaded."""
        try:
            names = os.listdir(os.path.join(self.root, owner))
        except OSError:
            return
        for name in names:
            if KEY.match(name):
                meta = self.meta(owner, name)
                if meta is not None:
                    yield name, meta

    def used(self, owner: str) -> int:
        """Bytes C{owner}'s files take (their quota's use)."""
        return sum(int(meta.get("size", 0)) for _, meta in self.files(owner))

    def pending(self, owner: str) -> int:
        """Bytes of C{owner}'s uploads under way (they count against the quota too)."""
        return sum(slot.size for slot in self.writing.values() if slot.owner == owner)

    def retryAt(self, owner: str) -> float | None:
        """When C{owner}'s oldest file expires (room in the quota again), if ever."""
        if not self.settings.expire:
            return None
        times = [float(meta.get("created", 0)) for _, meta in self.files(owner)]
        return min(times) + self.settings.expire if times else None

    def open(self, slot: Slot) -> "Upload":
        """Start writing C{slot}'s file (see L{Upload})."""
        ownerDir = os.path.join(self.root, slot.owner)
        os.makedirs(ownerDir, mode=0o700, exist_ok=True)
        partial = os.path.join(ownerDir, ".%s.%s.part" % (slot.id, secrets.token_hex(4)))
        os.mkdir(partial, 0o700)
        self.writing[partial] = slot
        return Upload(self, slot, partial)

    def sweep(self) -> int:
        """
        Remove files older than C{expire} seconds (never, with 0) and
        partial uploads nobody writes any more (a crash's); how many files
        went.
        """
        removed = 0
        now = self.clock.seconds()
        try:
            owners = os.listdir(self.root)
        except OSError:
            return 0
        for owner in owners:
            ownerDir = os.path.join(self.root, owner)
            if not KEY.match(owner) or not os.path.isdir(ownerDir):
                continue
            for name in os.listdir(ownerDir):
                path = os.path.join(ownerDir, name)
                if name.endswith(".part"):
                    if path not in self.writing:
                        shutil.rmtree(path, ignore_errors=True)
                    continue
                if not KEY.match(name) or not self.settings.expire:
                    continue
                meta = self.meta(owner, name)
                created = float(meta.get("created", 0)) if meta else 0.0
                if now >= created + self.settings.expire:
                    shutil.rmtree(path, ignore_errors=True)
                    removed += 1
            try:
                os.rmdir(ownerDir)  # Only when empty.
            except OSError:
                pass
        return removed


class Upload:
    """
    One file being written: L{write} each piece as it arrives (straight to
    disk, so memory stays bounded), then L{finish} or L{abort}.
    """

    def __init__(self, store: UploadStore, slot: Slot, partial: str):
        self.store = store
        self.slot = slot
        self.partial = partial
        self.received = 0
        self.file = open(os.path.join(partial, "file"), "wb")
        self.done = False

    def write(self, data: bytes) -> bool:
        """Write C{data}; C{False} (and nothing written) once it is more than the slot's size."""
        self.received += len(data)
        if self.received > self.slot.size:
            return False
        self.file.write(data)
        return True

    def finish(self) -> str:
        """
        Put the file in place: C{"ok"}, or why not: C{"size"} (not the
        slot's size), C{"used"} (the slot was filled meanwhile).  Either
        way the partial directory is gone afterwards.
        """
        if self.received != self.slot.size:
            self.abort()
            return "size"
        self.file.close()
        meta = {"filename": self.slot.filename, "type": self.slot.contentType,
                "size": self.slot.size, "created": self.store.clock.seconds()}
        with open(os.path.join(self.partial, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)
        try:
            os.rename(self.partial, self.store.directory(self.slot.owner, self.slot.id))
        except OSError:
            self.abort()
            return "used"
        self.done = True
        self.store.writing.pop(self.partial, None)
        return "ok"

    def abort(self) -> None:
        """Forget the partial file (a broken or refused upload leaves nothing)."""
        if self.done:
            return
        self.done = True
        self.file.close()
        shutil.rmtree(self.partial, ignore_errors=True)
        self.store.writing.pop(self.partial, None)
