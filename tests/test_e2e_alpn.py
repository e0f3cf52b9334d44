"""
ALPN on client TLS (XEP-0368 §3): clients that offer C{xmpp-client}, as
Conversations does, get through the handshake on direct TLS and STARTTLS,
and are answered with C{xmpp-client}; clients that offer something else get
no protocol and no error.
"""

from __future__ import annotations

import socket
import ssl

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.e2e import DOMAIN, TIMEOUT


def handshake(port: int, offered: list[str], starttls: bool) -> str | None:
    """Connect (blocking, in a thread) and return the ALPN protocol the server chose."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(offered)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        if starttls:
            raw.sendall(("<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
                         "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
                         "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" % DOMAIN).encode())
            received = b""
            while b"<proceed" not in received:
                chunk = raw.recv(4096)
                assert chunk, "the server closed the stream before <proceed/>"
                received += chunk
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            return tls.selected_alpn_protocol()


@pytest.mark.parametrize("starttls", [False, True], ids=["direct-tls", "starttls"])
@pytest_twisted.ensureDeferred
async def test_xmppClientOffered(server, starttls):
    """A client offering ALPN xmpp-client completes the handshake and is answered with it."""
    port = server.starttlsPort if starttls else server.directTLSPort
    chosen = await threads.deferToThread(handshake, port, ["xmpp-client"], starttls)
    assert chosen == "xmpp-client"


@pytest_twisted.ensureDeferred
async def test_otherProtocolOffered(server):
    """A client offering only another protocol still gets TLS, with no protocol chosen."""
    chosen = await threads.deferToThread(handshake, server.directTLSPort, ["h2"], False)
    assert chosen is None
