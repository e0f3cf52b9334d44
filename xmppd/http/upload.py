# -*- test-case-name: tests.test_upload_http -*-
"""
The HTTP side of HTTP File Upload (XEP-0363 §6): C{/upload/} on the HTTP
service takes the PUT of a slot the upload service signed and serves the
file back to whoever has its GET URL.  How slots, URLs and files relate
is the store's (L{xmppd.features.upload.store}), handed in by
L{xmppd.tap}: this layer imports no feature.

  - C{PUT /upload/put/<token>/<name>}: refused before its body is read
    when the token is forged (403), expired (403), the slot already
    filled (409), the Content-Length not the slot's size (413 when larger,
    400 when smaller) or the Content-Type not the slot's (415); the body is
    streamed to disk and the file put in place only when whole (201);
  - C{GET}/C{HEAD /upload/<owner>/<id>/<signature>/<name>}: the file, with
    the slot's content type only when it is safe to show
    (L{INLINE_TYPES}), otherwise
    C{application/octet-stream} as an attachment, and always
    C{X-Content-Type-Options: nosniff} and a C{Content-Security-Policy}
    that lets nothing run; 404 for anything else;
  - C{OPTIONS}: the CORS preflight of a browser's PUT; every answer
    carries C{Access-Control-Allow-Origin: *} so web clients (Converse.js)
    can upload and download.

L{UploadSweeper} removes expired files every so often.
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote_to_bytes

from twisted.application import internet
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer
from twisted.internet.interfaces import IPushProducer


CORS = (
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Allow-Methods", b"GET, HEAD, PUT, OPTIONS"),
    (b"Access-Control-Allow-Headers", b"Content-Type, Authorization"),
    (b"Access-Control-Max-Age", b"86400"),
)
CORS_LINES = b"".join(name + b": " + value + b"\r\n" for name, value in CORS)
CSP = b"default-src 'none'; frame-ancestors 'none'; sandbox"

#: Types a browser may show in place (they run no script): everything else
#: is served as C{application/octet-stream} and as an attachment.
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif",
                "text/plain")
INLINE_PREFIXES = ("audio/", "video/")


def isInline(contentType: str) -> bool:
    """Whether a download of this type may be shown in place (see L{INLINE_TYPES})."""
    main = contentType.split(";", 1)[0].strip().lower()
    return main in INLINE_TYPES or main.startswith(INLINE_PREFIXES)


def segments(target: bytes) -> list[str] | None:
    """The decoded path segments after C{/upload/}, or C{None} if not UTF-8."""
    path = target.split(b"?", 1)[0]
    try:
        return [unquote_to_bytes(s).decode("utf-8") for s in path.split(b"/")[2:]]
    except UnicodeDecodeError:
        return None


class UploadBodies:
    """
    The body handler of C{/upload/} (L{xmppd.http.service}): decides on a
    PUT as soon as its head is complete, and gives the upload its sink.
    """

    def __init__(self, store):
        self.store = store

    @property
    def maxBody(self) -> int:
        return self.store.settings.max_file_size

    def openBody(self, request, method: bytes, target: bytes, length):
        if method != b"PUT":
            return None
        parts = segments(target)
        slot = self.store.putSlot(parts) if parts else None
        if slot is None:
            return (b"403 Forbidden", CORS_LINES)
        if self.store.clock.seconds() > slot.expires:
            return (b"403 Forbidden", CORS_LINES)
        if length is not None and length > slot.size:
            return (b"413 Content Too Large", CORS_LINES)
        if length is not None and length < slot.size:
            return (b"400 Bad Request", CORS_LINES)
        given = request.requestHeaders.getRawHeaders(b"content-type", [b""])[-1]
        if given.decode("latin-1").strip().lower() != slot.contentType.strip().lower():
            return (b"415 Unsupported Media Type", CORS_LINES)
        if self.store.exists(slot):
            return (b"409 Conflict", CORS_LINES)
        used = self.store.used(slot.owner) + self.store.pending(slot.owner)
        if used + slot.size > self.store.settings.quota:
            # Other slots of the same owner were filled (or are being filled)
            # since this one was given.
            return (b"413 Content Too Large", CORS_LINES)
        try:
            return self.store.open(slot)
        except OSError:
            UploadResource.log.failure("Could not store an upload")
            return (b"500 Internal Server Error", CORS_LINES)


class UploadResource(resource.Resource):
    """C{/upload/}: see the module docstring."""

    isLeaf = True
    log = Logger()

    def __init__(self, store):
        resource.Resource.__init__(self)
        self.store = store

    def render(self, request):
        for name, value in CORS:
            request.setHeader(name, value)
        return resource.Resource.render(self, request)

    def render_OPTIONS(self, request):
        request.setResponseCode(204)
        return b""

    def render_PUT(self, request):
        upload = request.bodySink
        if upload is None:
            request.setResponseCode(400)
            return b""
        outcome = upload.finish()
        if outcome == "ok":
            request.setResponseCode(201)
        elif outcome == "used":
            request.setResponseCode(409)
        else:
            request.setResponseCode(400)
        return b""

    def render_GET(self, request):
        parts = [p.decode("utf-8", "replace") for p in request.postpath]
        found = self.store.getFile(parts)
        if found is None:
            return self.notFound(request)
        owner, id = found
        meta = self.store.meta(owner, id)
        if meta is None:
            return self.notFound(request)
        contentType = str(meta.get("type", ""))
        filename = str(meta.get("filename", "file"))
        inline = isInline(contentType)
        disposition = "inline" if inline else "attachment"
        request.setHeader(b"Content-Disposition", "%s; filename*=UTF-8''%s" % (
            disposition, quote(filename, safe="")))
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", CSP)
        request.setHeader(b"Cache-Control", b"private, max-age=86400, immutable")
        try:
            f = open(self.store.filePath(owner, id), "rb")
        except OSError:
            return self.notFound(request)
        request.setHeader(b"Content-Type", contentType if inline else "application/octet-stream")
        request.setHeader(b"Content-Length", b"%d" % os.fstat(f.fileno()).st_size)
        if request.method == b"HEAD":
            f.close()
            return b""
        FileProducer(f, request).start()
        return server.NOT_DONE_YET

    render_HEAD = render_GET

    def notFound(self, request):
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"text/plain")
        return b"Not found\n"


@implementer(IPushProducer)
class FileProducer:
    """
    Writes a file to a response a piece at a time, as fast as the client
    reads it: the connection pauses it when its buffer is full, so memory
    stays bounded however large the file.
    """

    CHUNK = 65536

    def __init__(self, f, request):
        self.file = f
        self.request = request
        self.paused = False
        self.done = False
        request.notifyFinish().addBoth(self.stop)

    def start(self) -> None:
        self.request.registerProducer(self, True)
        self.produce()

    def produce(self) -> None:
        while not self.paused and not self.done:
            data = self.file.read(self.CHUNK)
            if not data:
                self.done = True
                self.file.close()
                self.request.unregisterProducer()
                self.request.finish()
                return
            self.request.write(data)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self.produce()

    def stopProducing(self) -> None:
        self.stop(None)

    def stop(self, _) -> None:
        """The response ended (finished, or the client went away)."""
        if not self.done:
            self.done = True
            self.file.close()
        return _


class UploadSweeper(internet.TimerService):
    """Calls the store's C{sweep} every C{interval} seconds (first at start)."""

    name = "upload-sweeper"

    def __init__(self, store, interval: float, clock=None):
        internet.TimerService.__init__(self, interval, self.sweep)
        if clock is not None:
            self.clock = clock
        self.store = store

    def sweep(self) -> None:
        try:
            removed = self.store.sweep()
        except OSError:
            UploadResource.log.failure("Removing expired uploads failed")
            return
        if removed:
            UploadResource.log.info("Removed {count} expired uploads", count=removed)


def sweepInterval(expire: int) -> float:
    """How often to look for expired files: a quarter of their life, 1 to 60 minutes."""
    return float(max(60, min(3600, expire // 4 if expire else 3600)))


def addUpload(web, store, path: str, clock=None) -> UploadSweeper:
    """
    Serve C{store}'s uploads at C{/path/} on the HTTP service C{web}; the
    sweeper, for the caller to start.
    """
    web.putChild(path, UploadResource(store))
    web.putBodyHandler(path, UploadBodies(store))
    return UploadSweeper(store, sweepInterval(store.settings.expire), clock)
