"""
Tests for L{xmppd.http.upload}: the PUT and GET of HTTP File Upload
(XEP-0363 §6) on the node's own HTTP site (L{xmppd.http.service}) over
fake transports, with slots from the upload service (L{tests.uploadhelpers}):
signatures, expiry, exact size and type, one use per slot, bodies streamed
to disk within the upload limit only, broken uploads leaving nothing,
path tricks, safe downloads and CORS.
"""

from __future__ import annotations

import os

import pytest
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionLost
from twisted.web.resource import Resource

from tests.uploadhelpers import (
    ALICE, Response, Service, Web, condition, makeStore, path)
from xmppd.http.upload import UploadSweeper, sweepInterval

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def slot(service: Service, size: int = len(PNG), contentType: str = "image/png",
         filename: str = "cat.png", sender: str = ALICE) -> tuple[str, str]:
    reply = service.request(sender, filename, str(size), contentType)
    assert reply["type"] == "result", reply.toXml()
    return reply.slot.put["url"], reply.slot.get["url"]


def everything(root) -> list[str]:
    """Every file under C{root}, relative."""
    found = []
    for directory, _, files in os.walk(root):
        found.extend(os.path.relpath(os.path.join(directory, f), root) for f in files)
    return sorted(found)


@pytest.fixture
def env(tmp_path):
    store = makeStore(tmp_path / "data", max_file_size=100_000, quota=10_000_000)
    return store, Service(store), Web(store, max_request_size=1024)


def test_putThenGet(env):
    """The file PUT to a slot comes back from its GET URL, byte for byte."""
    store, service, web = env
    put, get = slot(service)
    response = web.put(put, PNG)
    assert response.status == 201
    assert response.header(b"access-control-allow-origin") == b"*"
    response = web.get(get)
    assert response.status == 200
    assert response.body == PNG
    assert response.header(b"content-type") == b"image/png"
    assert response.header(b"content-disposition") == b"inline; filename*=UTF-8''cat.png"
    assert response.header(b"x-content-type-options") == b"nosniff"
    assert b"default-src 'none'" in response.header(b"content-security-policy")
    assert response.header(b"access-control-allow-origin") == b"*"
    head = web.get(get, b"HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header(b"content-length") == b"%d" % len(PNG)


@pytest.mark.parametrize("contentType", ["text/html", "image/svg+xml",
                                         "application/javascript", "application/pdf"])
def test_unsafeTypesAreAttachments(env, contentType):
    """A type a browser could run is served as application/octet-stream, as an attachment."""
    store, service, web = env
    put, get = slot(service, 5, contentType, "page one.html")
    assert web.put(put, b"<b>x", contentType.encode()).status == 400  # 4 bytes, not 5
    put, get = slot(service, 5, contentType, "page one.html")
    assert web.put(put, b"<b>xx", contentType.encode()).status == 201
    response = web.get(get)
    assert response.header(b"content-type") == b"application/octet-stream"
    assert response.header(b"content-disposition") == (
        b"attachment; filename*=UTF-8''page%20one.html")
    assert response.header(b"x-content-type-options") == b"nosniff"


def test_preflight(env):
    """A browser's CORS preflight for the PUT is answered with what it may send."""
    store, service, web = env
    put, _ = slot(service)
    response = web.request(b"OPTIONS", path(put), headers={
        b"Origin": b"https://chat.example.org", b"Access-Control-Request-Method": b"PUT",
        b"Access-Control-Request-Headers": b"content-type"})
    assert response.status == 204
    assert response.header(b"access-control-allow-origin") == b"*"
    assert b"PUT" in response.header(b"access-control-allow-methods")
    assert b"Content-Type" in response.header(b"access-control-allow-headers")


def test_forgedPut(env, tmp_path):
    """A PUT URL changed in any way, or signed by another node's secret: 403, nothing stored."""
    store, service, web = env
    put, _ = slot(service)
    base, token, name = put.rsplit("/", 2)
    payload, signature = token.split(".")
    forged = [base + "/" + payload + "." + "f" * 32 + "/" + name,
              base + "/" + payload + "x." + signature + "/" + name,
              base + "/" + token]
    other = Service(makeStore(tmp_path / "other", secret=b"o" * 32))
    forged.append(slot(other)[0])
    for url in forged:
        response = web.put(url, PNG)
        assert response.status in (403, 404), url
    assert everything(store.root) == []


def test_expiredPut(env):
    """A PUT after slot_lifetime: 403."""
    store, service, web = env
    put, get = slot(service)
    store.clock.advance(store.settings.slot_lifetime + 1)
    assert web.put(put, PNG).status == 403
    assert web.get(get).status == 404


def test_sizeMustMatch(env):
    """Content-Length over the slot's size: 413; under it: 400; both before the body is read."""
    store, service, web = env
    put, _ = slot(service, 100)
    assert web.put(put, b"x" * 101).status == 413
    assert web.put(put, b"x" * 99).status == 400
    assert everything(store.root) == []
    assert web.put(put, b"x" * 100).status == 201


def test_chunkedSizeMustMatch(env):
    """A chunked PUT is counted as it comes: past the slot's size 413, short of it 400."""
    store, service, web = env
    put, _ = slot(service, 100)
    for body, status in ((b"x" * 101, 413), (b"x" * 99, 400)):
        channel, transport = web.connect()
        channel.dataReceived(b"PUT %s HTTP/1.1\r\nHost: example.org\r\nContent-Type: image/png\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" % path(put))
        channel.dataReceived(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        assert Response(transport.value()).status == status
        channel.connectionLost(Failure(ConnectionLost()))
    assert everything(store.root) == []


def test_typeMustMatch(env):
    store, service, web = env
    put, _ = slot(service)
    assert web.put(put, PNG, b"image/jpeg").status == 415
    assert web.put(put, PNG, b"text/html").status == 415
    assert web.request(b"PUT", path(put), PNG).status == 415
    assert web.put(put, PNG, b"IMAGE/PNG").status == 201


def test_secondPut(env):
    """A slot is filled once: a second PUT gets 409 and the file stays as it was."""
    store, service, web = env
    put, get = slot(service, 4, "text/plain")
    assert web.put(put, b"one!", b"text/plain").status == 201
    assert web.put(put, b"two!", b"text/plain").status == 409
    assert web.get(get).body == b"one!"


def test_racingPuts(env):
    """Two uploads of one slot at once: the first to finish wins, the other gets 409."""
    store, service, web = env
    put, get = slot(service, 4, "text/plain")
    channels = []
    for body in (b"one!", b"two!"):
        channel, transport = web.connect()
        channel.dataReceived(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 4\r\n\r\n%s" % (path(put), body[:2]))
        channels.append((channel, transport, body))
    for channel, transport, body in reversed(channels):
        channel.dataReceived(body[2:])
    assert Response(channels[1][1].value()).status == 201
    assert Response(channels[0][1].value()).status == 409
    assert web.get(get).body == b"two!"
    assert [f for f in everything(store.root) if ".part" in f] == []


def test_streamedToDisk(env):
    """The body goes to disk as it arrives, not to memory; a broken upload leaves nothing."""
    store, service, web = env
    put, get = slot(service, 50_000, "video/mp4", "film.mp4")
    channel, transport = web.connect()
    channel.dataReceived(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\n"
                         b"Content-Length: 50000\r\n\r\n" % path(put))
    channel.dataReceived(b"x" * 20_000)
    [request] = channel.requests
    assert request.content.getvalue() == b""
    [partial] = everything(store.root)
    assert ".part" in partial
    request.bodySink.file.flush()
    assert os.path.getsize(os.path.join(store.root, partial)) == 20_000
    channel.connectionLost(Failure(ConnectionLost()))
    assert everything(store.root) == []
    assert web.get(get).status == 404
    assert web.put(put, b"y" * 50_000, b"video/mp4").status == 201  # the slot is still usable


def test_uploadNotBoundByTheHeadDeadline(tmp_path):
    """
    An upload's body may take longer than C{http.header_timeout} (a large
    file on a slow link): only silence (C{http.request_timeout}) ends it.
    """
    store = makeStore(tmp_path)
    service = Service(store)
    web = Web(store, header_timeout=10.0, request_timeout=30.0)
    put, get = slot(service, 3000, "application/octet-stream", "slow.bin")
    channel, transport = web.connect()
    channel.dataReceived(b"PUT %s HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3000\r\n"
                         b"Content-Type: application/octet-stream\r\n\r\n" % path(put))
    for _ in range(29):
        store.clock.advance(10)
        channel.dataReceived(b"x" * 100)
    assert transport.value() == b""
    store.clock.advance(10)
    channel.dataReceived(b"x" * 100)
    assert Response(transport.value()).status == 201
    assert web.get(get).body == b"x" * 3000


def test_uploadLimitOnlyForUploads(env):
    """Bodies up to max_file_size reach /upload/ only; elsewhere http.max_request_size holds."""
    store, service, web = env
    assert web.request(b"POST", b"/elsewhere", b"x" * 2000).status == 413
    put, _ = slot(service, 100_000, "application/octet-stream", "big.bin")
    assert web.put(put, b"x" * 100_000, b"application/octet-stream").status == 201
    response = web.request(b"PUT", path(put), headers={b"Content-Length": b"100001"})
    assert response.status == 413


def test_quotaAtPut(env, tmp_path):
    """Slots given within the quota, filled beyond it: the upload that would exceed it gets 413."""
    store = makeStore(tmp_path / "q", quota=1500)
    service, web = Service(store), Web(store)
    first, _ = slot(service, 1000, "text/plain")
    second, _ = slot(service, 1000, "text/plain")
    assert web.put(first, b"x" * 1000, b"text/plain").status == 201
    assert web.put(second, b"x" * 1000, b"text/plain").status == 413
    assert condition(service.request(size="1000")) == "resource-constraint"


def test_quotaCountsUploadsUnderWay(env, tmp_path):
    """Two uploads at once that together exceed the quota: the second is refused (413)."""
    store = makeStore(tmp_path / "q", quota=1500)
    service, web = Service(store), Web(store)
    first, _ = slot(service, 1000, "text/plain")
    second, _ = slot(service, 1000, "text/plain")
    channel, transport = web.connect()
    channel.dataReceived(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 1000\r\n\r\n%s" % (path(first), b"x" * 10))
    assert web.put(second, b"x" * 1000, b"text/plain").status == 413
    channel.dataReceived(b"x" * 990)
    assert Response(transport.value()).status == 201


@pytest.mark.parametrize("target", [
    b"/upload/../server-secret",
    b"/upload/%2e%2e/%2e%2e/server-secret",
    b"/upload/%2e%2e%2fserver-secret",
    b"/upload//etc/passwd",
    b"/upload/%2fetc%2fpasswd",
    b"/upload/a%00b/c/d/e",
    b"/upload/" + b"a" * 4000,
    b"/upload/put/x/y",
    b"/upload/",
    b"/upload",
])
def test_pathTricks(env, target):
    """Nothing but a signed URL reaches a file; no path leads outside (404)."""
    store, service, web = env
    secretPath = os.path.join(os.path.dirname(store.root), "server-secret")
    os.makedirs(os.path.dirname(secretPath), exist_ok=True)
    with open(secretPath, "wb") as f:
        f.write(b"TOP SECRET")
    response = web.request(b"GET", target)
    assert response.status in (400, 404), response.status
    assert b"TOP SECRET" not in response.body
    response = web.request(b"PUT", target, b"x", {b"Content-Type": b"image/png"})
    assert response.status in (400, 403, 404), response.status
    with open(secretPath, "rb") as f:
        assert f.read() == b"TOP SECRET"
    assert everything(store.root) == []


def test_nameInURLIsNotThePath(env):
    """A GET URL's last segment is only a name: tricks there change nothing."""
    store, service, web = env
    put, get = slot(service)
    assert web.put(put, PNG).status == 201
    base = get.rsplit("/", 1)[0]
    for name in ("..%2f..%2fserver-secret", "%2e%2e", "..", "%00"):
        response = web.get(base + "/" + name)
        assert response.status == 200 and response.body == PNG
        assert response.header(b"content-disposition").endswith(b"cat.png")


def test_forgedGet(env):
    """A GET URL with another signature, owner or id: 404."""
    store, service, web = env
    put, get = slot(service)
    assert web.put(put, PNG).status == 201
    prefix, owner, id, signature, name = get.rsplit("/", 4)
    for url in (f"{prefix}/{owner}/{id}/{'0' * 32}/{name}",
                f"{prefix}/{owner}/{'0' * 32}/{signature}/{name}",
                f"{prefix}/{'0' * 32}/{id}/{signature}/{name}",
                f"{prefix}/{owner}/{id}/{name}"):
        assert web.get(url).status == 404, url


def test_sweeperExpiresFiles(env):
    """The sweeper runs every so often on the clock; an expired file's URL then gives 404."""
    store, service, web = env
    put, get = slot(service)
    assert web.put(put, PNG).status == 201
    interval = sweepInterval(store.settings.expire)
    assert interval == 3600
    sweeper = UploadSweeper(store, interval, clock=store.clock)
    sweeper.startService()
    try:
        store.clock.advance(store.settings.expire - interval)
        assert web.get(get).status == 200
        store.clock.advance(interval)
        assert web.get(get).status == 404
        assert everything(store.root) == []
    finally:
        sweeper.stopService()
    assert store.clock.getDelayedCalls() == []
    assert sweepInterval(600) == 150 and sweepInterval(0) == 3600


def test_servedOnTheHTTPService(tmp_path):
    """The wiring: the node's HTTP service serves /upload/ and tells the upload service its URL."""
    from xmppd.config import configFromDict
    from xmppd.features.upload.service import baseURLOf
    from xmppd.tap import makeService
    config = configFromDict({"server": {"domains": ["example.org"],
                                        "data_dir": str(tmp_path)},
                             "http": {"endpoint": "tcp:0:interface=127.0.0.1",
                                      "tls_endpoint": "tcp:0:interface=127.0.0.1"}})
    server = makeService(config, clock=Clock())
    web = server.getServiceNamed("http")
    assert isinstance(web.root.children[b"upload"], Resource)
    assert b"upload" in web.site.bodyHandlers
    assert web.publicURL("example.org") is None  # not listening

    class Port:
        def __init__(self, port):
            self.port = port

        def getHost(self):
            return self

    web.ports = [Port(5280), Port(5443)]  # in the order of listeners(): plain, then TLS
    assert web.publicURL("example.org") == "https://example.org:5443"
    baseURL = baseURLOf(server)
    assert baseURL("example.org") == "https://example.org:5443"
    upload = [s for s in server if getattr(s, "name", None) == "upload.example.org"]
    assert len(upload) == 1


def test_refusedBeforeContinue(env):
    """A client that waits for 100 Continue (curl) is refused without sending its body."""
    store, service, web = env
    put, _ = slot(service)
    channel, transport = web.connect()
    channel.dataReceived(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                         b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                         % (path(put), len(PNG)))
    assert transport.value().startswith(b"HTTP/1.1 415 ")
    assert b"100 Continue" not in transport.value()
    assert b"Access-Control-Allow-Origin: *" in transport.value()
    channel, transport = web.connect()
    channel.dataReceived(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                         % (path(put), len(PNG)))
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    channel.dataReceived(PNG)
    assert Response(transport.value().split(b"\r\n\r\n", 1)[1]).status == 201
