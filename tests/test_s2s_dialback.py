"""
Tests for L{xmppd.s2s.dialback}: XEP-0185 keys and the XEP-0220 elements.
"""

from __future__ import annotations

import hashlib
import hmac

from tests.s2shelpers import S2SReply
from xmppd.s2s.dialback import (dialbackKey, errorCondition, featureElement, keyMatches,
                                resultElement, verifyElement)
from xmppd.s2s.streams import serialize

SECRET = b"s3cr3tf0rd14lb4ck"


def test_keyIsXEP0185():
    """The key is HMAC-SHA256 keyed with the hex SHA-256 of the secret over 'receiving originating id'."""
    expected = hmac.new(hashlib.sha256(SECRET).hexdigest().encode(),
                        b"example.net example.com D60000229F", hashlib.sha256).hexdigest()
    assert dialbackKey(SECRET, "example.net", "example.com", "D60000229F") == expected
    assert len(expected) == 64 and expected == expected.lower()


def test_keyDependsOnEveryInput():
    """Changing the secret, either domain or the stream id changes the key."""
    base = dialbackKey(SECRET, "a.example", "b.example", "id1")
    assert len({base,
                dialbackKey(b"other", "a.example", "b.example", "id1"),
                dialbackKey(SECRET, "b.example", "a.example", "id1"),
                dialbackKey(SECRET, "a.example", "c.example", "id1"),
                dialbackKey(SECRET, "a.example", "b.example", "id2")}) == 5


def test_keyMatches():
    """A key is recognized in any case and with whitespace around it; another is not."""
    key = dialbackKey(SECRET, "a.example", "b.example", "id1")
    assert keyMatches(SECRET, "a.example", "b.example", "id1", " %s\n" % key.upper())
    assert not keyMatches(SECRET, "a.example", "b.example", "id2", key)
    assert not keyMatches(SECRET, "a.example", "b.example", "id1", "")
    assert not keyMatches(SECRET, "a.example", "b.example", "id1", "é" * 64)


def test_elementsSerialized():
    """Dialback elements go out with the db: prefix the stream header declares."""
    request = serialize(resultElement("b.example", "a.example", "k3y"))
    assert request == "<db:result from='b.example' to='a.example'>k3y</db:result>"
    answer = serialize(verifyElement("a.example", "b.example", "id1", verifyType="valid"))
    assert answer == "<db:verify from='a.example' to='b.example' id='id1' type='valid'/>"


def test_errorElement():
    """A dialback error carries a stanza error condition that can be read back."""
    element = resultElement("a.example", "b.example", resultType="error",
                            condition="remote-server-not-found")
    [parsed] = S2SReply(serialize(element).encode()).elements
    assert errorCondition(parsed) == "remote-server-not-found"
    assert errorCondition(resultElement("a", "b", resultType="invalid")) is None


def test_feature():
    """The dialback stream feature announces error support (XEP-0220 §8)."""
    feature = featureElement()
    assert (feature.uri, feature.name) == ("urn:xmpp:features:dialback", "dialback")
    assert [child.name for child in feature.elements()] == ["errors"]
