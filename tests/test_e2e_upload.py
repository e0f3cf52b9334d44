"""
End-to-end: HTTP File Upload (XEP-0363) on a real node with real clients.
slixmpp's C{xep_0363} plugin finds C{upload.localhost} through service
discovery, asks for a slot and PUTs the file over HTTPS with aiohttp (the
HTTP client slixmpp uses for it); a second user, told the URL in a
message, GETs it back with aiohttp.  Both trust the node's self-signed
certificate, which names C{localhost}, the host of the upload URLs.
"""

from __future__ import annotations

import ssl

import pytest
import pytest_twisted

from tests.e2e import contacts, wait

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp (slixmpp's HTTP client for "
                              "XEP-0363) is in the test extras")

ensureDeferred = pytest_twisted.ensureDeferred

#: A file with every byte value, so any mangling shows.
CONTENT = bytes(range(256)) * 300


def trusting(server):
    """An SSL context that trusts the node's self-signed certificate (and checks the host)."""
    return ssl.create_default_context(cafile=str(server.certificatePath))


def uploadsTrusting(monkeypatch, context) -> None:
    """slixmpp's upload opens its own aiohttp session: make it trust C{context}."""
    from slixmpp.plugins.xep_0363 import http_upload

    def session(**kwargs):
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), **kwargs)

    monkeypatch.setattr(http_upload, "ClientSession", session)


async def fetch(url: str, context, method: str = "GET", **kwargs):
    """(status, headers, body) of one request with aiohttp."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.request(method, url, **kwargs) as response:
            return response.status, response.headers, await response.read()


async def uploader(server, user: str):
    client = server.client(user)
    for plugin in ("xep_0030", "xep_0128", "xep_0363"):
        client.xmpp.register_plugin(plugin)
    await client.login()
    return client


@ensureDeferred
async def test_uploadWithSlixmppThenAnotherUserDownloads(makeServer, tmp_path, monkeypatch):
    """alice uploads over HTTPS with slixmpp's xep_0363; bob GETs the same bytes back."""
    server = await makeServer({"upload": {"max_file_size": 1_000_000}})
    await contacts(server, "alice", "bob")
    context = trusting(server)
    uploadsTrusting(monkeypatch, context)
    alice = await uploader(server, "alice")
    bob = await server.login("bob")
    path = tmp_path / "holiday photo.jpg"
    path.write_bytes(CONTENT)

    url = await wait(alice.xmpp.plugin["xep_0363"].upload_file(path, timeout=10))
    assert str(alice.xmpp.plugin["xep_0363"].upload_service) == "upload.localhost"
    assert url.startswith("https://localhost:%d/upload/" % server.node.httpsPort)
    assert url.endswith("/holiday%20photo.jpg")
    alice.send(str(bob.jid), url)
    message = await bob.nextMessage()

    status, headers, body = await wait(fetch(message["body"], context))
    assert status == 200
    assert body == CONTENT
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Access-Control-Allow-Origin"] == "*"
    stored = list((server.dataDir / "upload").glob("*/*/file"))
    assert [p.read_bytes() for p in stored] == [CONTENT]


@ensureDeferred
async def test_abuseSeenByClients(makeServer, monkeypatch):
    """
    What a client sees of the limits: the advertised maximum stops slixmpp
    before it asks; a slot over it is refused with file-too-large; a PUT of
    another size, a second PUT and a forged URL are refused over HTTPS.
    """
    from slixmpp.exceptions import IqError
    from slixmpp.plugins.xep_0363.http_upload import FileTooBig

    server = await makeServer({"upload": {"max_file_size": 1000}})
    await server.addUser("alice")
    context = trusting(server)
    uploadsTrusting(monkeypatch, context)
    alice = await uploader(server, "alice")
    upload = alice.xmpp.plugin["xep_0363"]
    with pytest.raises(FileTooBig):
        await wait(upload.upload_file("big.bin", input_file=_Bytes(b"x" * 1001), timeout=10))
    assert upload.max_file_size == 1000

    with pytest.raises(IqError) as caught:
        await wait(upload.request_slot("upload.localhost", "big.bin", 1001, timeout=10))
    assert caught.value.iq["error"]["condition"] == "not-acceptable"
    assert caught.value.iq["error"].xml.find(
        "{urn:xmpp:http:upload:0}file-too-large/{urn:xmpp:http:upload:0}max-file-size"
    ).text == "1000"

    with pytest.raises(IqError) as caught:
        await wait(upload.request_slot("upload.localhost", "../../etc/passwd", 10, timeout=10))
    assert caught.value.iq["error"]["condition"] == "bad-request"

    iq = await wait(upload.request_slot("upload.localhost", "a.txt", 10, "text/plain",
                                        timeout=10))
    put = iq["http_upload_slot"]["put"]["url"]
    get = iq["http_upload_slot"]["get"]["url"]
    headers = {"Content-Type": "text/plain"}
    status, _, _ = await wait(fetch(put, context, "PUT", data=b"x" * 11, headers=headers))
    assert status == 413
    status, _, _ = await wait(fetch(put, context, "PUT", data=b"x" * 10,
                                    headers={"Content-Type": "text/html"}))
    assert status == 415
    status, _, _ = await wait(fetch(put[:-12] + "0" * 6 + put[-6:], context, "PUT",
                                    data=b"x" * 10, headers=headers))
    assert status in (403, 404)
    status, _, _ = await wait(fetch(get, context))
    assert status == 404
    status, _, _ = await wait(fetch(put, context, "PUT", data=b"0123456789", headers=headers))
    assert status == 201
    status, _, _ = await wait(fetch(put, context, "PUT", data=b"9876543210", headers=headers))
    assert status == 409
    status, headers, body = await wait(fetch(get, context))
    assert (status, body) == (200, b"0123456789")
    assert headers["Content-Type"] == "text/plain"


class _Bytes:
    """A file-like object slixmpp measures by seeking (upload_file's input_file)."""

    def __init__(self, data: bytes):
        import io
        self.io = io.BytesIO(data)

    def seek(self, *args):
        return self.io.seek(*args)

    def read(self, *args):
        return self.io.read(*args)
