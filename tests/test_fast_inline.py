"""
FAST (XEP-0484) inline in SASL2 (L{xmppd.features.fast}), in memory: the
offer, a token requested with a password login and given in the
C{<success/>}, a login with that token in one round trip, rotation and
invalidation, and every bad request answered with its SASL2 failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tests.streamhelpers import DOMAIN, Node
from tests.test_sasl2 import (AGENT, NS_SASL2, authenticate, b64, child, failureOf, only,
                              start)
from xmppd.c2s.fast import tokenHash

NS_FAST = "urn:xmpp:fast:0"
LIMITS = {"auth_failure_delay": 0}
REQUEST = "<request-token xmlns='%s' mechanism='HT-SHA-256-NONE'/>" % NS_FAST


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path, features=("fast",), limits=LIMITS)


def htResponse(token: str, user: str = "juliet") -> str:
    proof = hmac.new(token.encode(), b"Initiator", hashlib.sha256).digest()
    return b64(user.encode() + b"\0" + proof)


def tokenLogin(node, token, fast="<fast xmlns='%s'/>" % NS_FAST, agent=AGENT, inline="",
               user="juliet", mechanism="HT-SHA-256-NONE"):
    client, _ = start(node)
    return client.exchange(authenticate(mechanism, htResponse(token, user),
                                        inline=fast + inline, agent=agent))


def firstToken(node, agent=AGENT) -> tuple[str, str]:
    """A password login that asks for a token; the token and its expiry."""
    client, _ = start(node)
    reply = client.exchange(authenticate(inline=REQUEST, agent=agent))
    assert reply.names == ["success", "features"]
    token = child(reply.elements[0], NS_FAST, "token")
    return token["token"], token["expiry"]


def storedTokens(node, user="juliet"):
    result = []
    node.server.storage.fast.list(user, DOMAIN).addCallback(result.extend)
    return result


def test_offered(node):
    """SASL2's inline features list <fast/> with HT-SHA-256-NONE (no TLS here, so nothing to bind to)."""
    client, reply = start(node)
    inline = child(child(reply.features(), NS_SASL2, "authentication"), NS_SASL2, "inline")
    fast = child(inline, NS_FAST, "fast")
    assert [str(m) for m in fast.elements(NS_FAST, "mechanism")] == ["HT-SHA-256-NONE"]
    assert fast.getAttribute("tls-0rtt") is None
    # Not among the password mechanisms, nor in RFC 6120 SASL.
    assert "HT-SHA-256-NONE" not in reply.mechanisms()


def test_notOfferedWithoutTLS(tmp_path):
    """Like PLAIN, FAST waits for TLS unless plain_without_tls allows it."""
    node = Node(tmp_path, features=("fast",), c2s={"plain_without_tls": False})
    client, reply = start(node)
    authentication = child(reply.features(), NS_SASL2, "authentication")
    inline = authentication and child(authentication, NS_SASL2, "inline")
    assert inline is None or child(inline, NS_FAST, "fast") is None


def test_tokenRequested(node):
    """A password login with <request-token/> gets a <token/> with an XEP-0082 expiry; only its hash is stored."""
    token, expiry = firstToken(node)
    assert expiry == "1970-01-22T00:00:00Z"  # 21 days after the test clock's 0
    [stored] = storedTokens(node)
    assert stored.hash == tokenHash(token)
    assert (stored.userAgent, stored.mechanism, stored.slot) == (AGENT, "HT-SHA-256-NONE",
                                                                 "new")


def test_noTokenUnlessRequested(node):
    """A password login without <request-token/> gets no token."""
    client, _ = start(node)
    reply = client.exchange(authenticate())
    assert child(reply.elements[0], NS_FAST, "token") is None
    assert storedTokens(node) == []


def test_noTokenWithoutUserAgent(node):
    """A token is bound to the user agent id: without one, the login succeeds with no token."""
    client, _ = start(node)
    reply = client.exchange(authenticate(inline=REQUEST, agent=None))
    assert reply.names == ["success", "features"]
    assert child(reply.elements[0], NS_FAST, "token") is None


def test_noTokenForMechanismNotOffered(node):
    """A request for a mechanism this connection cannot use gets no token."""
    client, _ = start(node)
    reply = client.exchange(authenticate(
        inline="<request-token xmlns='%s' mechanism='HT-SHA-256-EXPR'/>" % NS_FAST))
    assert reply.names == ["success", "features"]
    assert child(reply.elements[0], NS_FAST, "token") is None


def test_tokenLogin(node):
    """The token logs in in one round trip, the server proves it knows it, and Bind 2 works as with a password."""
    token, _ = firstToken(node)
    reply = tokenLogin(node, token, inline="<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag></bind>")
    assert reply.names == ["success", "features"]
    success = reply.elements[0]
    data = base64.b64decode(str(child(success, NS_SASL2, "additional-data")))
    assert data == hmac.new(token.encode(), b"Responder", hashlib.sha256).digest()
    assert str(child(success, NS_SASL2, "authorization-identifier")).startswith(
        "juliet@%s/Phone." % DOMAIN)
    assert child(success, NS_FAST, "token") is None
    assert [t.slot for t in storedTokens(node)] == ["current"]


def test_rotation(node):
    """After fast_rotate_after, a token login gets a new token; the old one works until the new one is used."""
    old, _ = firstToken(node)
    node.clock.advance(86400)
    reply = tokenLogin(node, old)
    new = child(reply.elements[0], NS_FAST, "token")["token"]
    assert new != old
    assert tokenLogin(node, old).names == ["success", "features"]
    rotated = child(tokenLogin(node, old).elements[0], NS_FAST, "token")["token"]
    assert tokenLogin(node, rotated).names == ["success", "features"]
    assert failureOf(tokenLogin(node, old)) == ("not-authorized", None)


def test_invalidate(node):
    """<fast invalidate='true'/> logs in once more and ends the token."""
    token, _ = firstToken(node)
    reply = tokenLogin(node, token, fast="<fast xmlns='%s' invalidate='true'/>" % NS_FAST)
    assert reply.names == ["success", "features"]
    assert child(reply.elements[0], NS_FAST, "token") is None
    assert failureOf(tokenLogin(node, token)) == ("not-authorized", None)


def test_revokedToken(node):
    """A token revoked in the store (xmppctl fast revoke) fails with not-authorized."""
    token, _ = firstToken(node)
    node.server.storage.fast.revoke("juliet", DOMAIN, AGENT)
    assert failureOf(tokenLogin(node, token)) == ("not-authorized", None)


def test_expiredToken(node):
    """An expired token fails like a wrong one."""
    token, _ = firstToken(node)
    node.clock.advance(21 * 86400)
    assert failureOf(tokenLogin(node, token)) == ("not-authorized", None)


@pytest.mark.parametrize("change", ["user", "agent", "token"])
def test_wrongAnythingLooksAlike(node, change):
    """Another user, another client's id or a wrong token: the same failure, bytes for bytes."""
    token, _ = firstToken(node)
    kwargs = {"user": dict(user="romeo"),
              "agent": dict(agent="0b3c2a84-4a5e-4f4e-9d1e-3f1b2c3d4e5f"),
              "token": dict(token=token[:-1] + ("A" if token[-1] != "A" else "B"))}[change]
    kwargs.setdefault("token", token)
    reply = tokenLogin(node, **kwargs)
    assert failureOf(reply) == ("not-authorized", None)
    assert reply.data == tokenLogin(node, "x" * 86, user="nobody").data


def test_tokenLoginNeedsFastElement(node):
    """A token mechanism without <fast/> in the request is malformed."""
    token, _ = firstToken(node)
    condition, text = failureOf(tokenLogin(node, token, fast=""))
    assert condition == "malformed-request" and "fast" in text


def test_badCount(node):
    """A count that is not a positive integer is malformed."""
    token, _ = firstToken(node)
    for count in ("0", "-1", "x", "1e3", "\u0661"):
        fast = "<fast xmlns='%s' count='%s'/>" % (NS_FAST, count)
        assert failureOf(tokenLogin(node, token, fast=fast))[0] == "malformed-request"
    fast = "<fast xmlns='%s' count='123'/>" % NS_FAST
    assert tokenLogin(node, token, fast=fast).names == ["success", "features"]


def test_mechanismNotOffered(node):
    """A token mechanism that needs a channel binding this connection lacks is not offered."""
    token, _ = firstToken(node)
    condition, _ = failureOf(tokenLogin(node, token, mechanism="HT-SHA-256-EXPR"))
    assert condition == "invalid-mechanism"


def test_notInRFC6120SASL(node):
    """The token mechanisms exist only in SASL2, as XEP-0484 defines them."""
    token, _ = firstToken(node)
    client = node.connect()
    client.start()
    reply = client.exchange("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                            "mechanism='HT-SHA-256-NONE'>%s</auth>" % htResponse(token))
    assert [c.name for c in only(reply.elements, "urn:ietf:params:xml:ns:xmpp-sasl",
                                 "failure").elements()] == ["invalid-mechanism"]


def test_passwordChangeEndsTokens(node):
    """A new password (in-band, xmppctl or anywhere) ends every token of the account."""
    from xmppd.core.scram import makeCredentials
    token, _ = firstToken(node)
    node.server.storage.users.setCredentials("juliet", DOMAIN, makeCredentials("new"))
    assert failureOf(tokenLogin(node, token)) == ("not-authorized", None)
