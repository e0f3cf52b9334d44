"""
Tests for L{xmppd.features.pubsub.engine} used directly, as PEP (XEP-0163)
will use it: a service on an account's bare JID, nodes created by the
first publish with the publish-options as configuration, the last item
sent on request, errors raised as XEP-0060 stanza errors.
"""

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from tests.helpers import parse
from tests.pubsubhelpers import NS_EVENT, RecordingRoute
from xmppd.core.router import Router
from xmppd.features.pubsub.engine import PubSubEngine
from xmppd.features.pubsub.fanout import Fanout
from xmppd.features.pubsub.settings import PubSubConfig
from xmppd.storage.memory import MemoryStorage

JULIET = JID("juliet@example.org/balcony")
ROMEO = JID("romeo@example.org/orchard")


def engine(**kwargs):
    router = Router()
    users = RecordingRoute()
    router.addRoute("example.org", users)
    store = MemoryStorage().pubsub
    made = PubSubEngine(JID("juliet@example.org"), store, PubSubConfig(),
                        Fanout(router, Clock()), **kwargs)
    return made, users


def run(coroutine):
    d = defer.ensureDeferred(coroutine)
    failures = []
    d.addErrback(failures.append)
    if failures:
        raise failures[0].value
    return d.result


def item(itemId="current", payload="<nick xmlns='http://jabber.org/protocol/nick'>J</nick>"):
    made = domish.Element((None, "item"))
    made["id"] = itemId
    made.addChild(parse(payload))
    return made


def test_autoCreateWithPublishOptions():
    """On a bare-JID service, the first publish creates the node with the publish-options."""
    e, _ = engine()
    run(e.publish(JULIET, "urn:xmpp:bookmarks:1", [item()],
                  {"pubsub#access_model": "whitelist", "pubsub#persist_items": "true"},
                  autoCreate=True))
    record = run(e.store.getNode("juliet@example.org", "urn:xmpp:bookmarks:1"))
    assert record.config["pubsub#access_model"] == "whitelist"
    assert run(e.affiliationOf("urn:xmpp:bookmarks:1", JULIET)) == "owner"


def test_autoCreateThenPreconditions():
    """Once the node exists, publish-options are preconditions (§7.1.5)."""
    e, _ = engine()
    run(e.publish(JULIET, "n", [item()], None, autoCreate=True))
    with pytest.raises(Exception) as caught:
        run(e.publish(JULIET, "n", [item()], {"pubsub#access_model": "whitelist"},
                      autoCreate=True))
    assert caught.value.condition == "conflict"


def test_sendLastItem():
    """PEP can send a node's last item to one contact (on its presence)."""
    e, users = engine()
    run(e.publish(JULIET, "n", [item("a")], None, autoCreate=True))
    run(e.publish(JULIET, "n", [item("b")], None, autoCreate=True))
    run(e.sendLastItem("n", e.config(run(e.node("n"))), ROMEO.full()))
    e.fanout.clock.advance(0)
    [message] = users.received[ROMEO.full()]
    assert message["from"] == "juliet@example.org"
    assert message.firstChildElement().uri == NS_EVENT
    assert message.event.items.item["id"] == "b"


def test_accessIsPluggable():
    """The access decision comes from the object given to the engine."""
    class Nobody:
        async def check(self, *args, **kwargs):
            from xmppd.features.pubsub.errors import error
            raise error("not-authorized", "presence-subscription-required")

    e, _ = engine(access=Nobody())
    run(e.publish(JULIET, "n", [item()], None, autoCreate=True))
    with pytest.raises(Exception) as caught:
        run(e.items(ROMEO, "n"))
    assert caught.value.condition == "not-authorized"
    assert len(run(e.items(JULIET, "n"))) == 1


def test_newIdIsPluggable():
    """Item ids the publisher left out come from the engine's id maker."""
    e, _ = engine(newId=lambda: "fixed")
    bare = domish.Element((None, "item"))
    bare.addChild(parse("<x xmlns='urn:x'/>"))
    assert run(e.publish(JULIET, "n", [bare], None, autoCreate=True)) == ["fixed"]


def test_badFirstPublishCreatesNothing():
    """A first publish whose item is refused does not leave a node behind."""
    e, _ = engine()
    with pytest.raises(Exception) as caught:
        run(e.publish(JULIET, "n", [item(payload="<a xmlns='u'/>"), item("x")], None,
                      autoCreate=True))
    assert caught.value.condition == "bad-request"
    assert run(e.store.getNode("juliet@example.org", "n")) is None


def test_publicationTime():
    """A stored item carries its publication time from the service's clock."""
    e, _ = engine()
    e.fanout.clock.advance(1234)
    run(e.publish(JULIET, "n", [item()], None, autoCreate=True))
    [stored] = run(e.items(JULIET, "n"))
    assert stored.published == 1234 and stored.publisher == JULIET.full()


def test_resourcePerAddress():
    """A resource that picks the engine by the address asked (as PEP will) creates a node on first publish."""
    from xmppd.features.pubsub.protocol import Service
    from xmppd.features.pubsub.resource import Resource

    e, _ = engine()

    class PerAccount(Resource):
        autoCreate = True

        def engineFor(self, target):
            assert target.userhost() == "juliet@example.org"
            return e

    sent = []

    class Parent:
        def send(self, stanza):
            sent.append(stanza)

    handler = Service(PerAccount(None))
    handler.parent = Parent()
    handler.handleRequest(parse(
        "<iq type='set' id='p1' from='juliet@example.org/balcony' to='juliet@example.org'>"
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'>"
        "<item id='abc'><data xmlns='urn:xmpp:avatar:data'>AAAA</data></item></publish>"
        "</pubsub></iq>"))
    [reply] = sent
    assert reply["type"] == "result" and reply.pubsub.publish.item["id"] == "abc"
    assert run(e.store.getNode("juliet@example.org", "urn:xmpp:avatar:data")) is not None
