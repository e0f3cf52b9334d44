"""
End-to-end tests of push notifications (XEP-0357) and external service
discovery (XEP-0215) on a real node: slixmpp clients as the users (slixmpp
has no plugin for either, so they send the XEPs' IQs raw), and a slixmpp
external component (XEP-0114) as the app server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import pytest_twisted
import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e import DOMAIN, TIMEOUT, SlixmppPeer, _deferred, sleep, wait

APP = "push." + DOMAIN
SECRET = "the app server's secret"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
TURN_SECRET = "a shared TURN secret"


class AppServer(SlixmppPeer):
    """
    A push app server as an external component: queues every publish it
    gets as (node, summary fields, publish-options fields), and answers the
    nodes in C{failing} with item-not-found, the others with a result.
    """

    def __init__(self, port: int):
        self.port = port
        xmpp = slixmpp.ComponentXMPP(APP, SECRET)
        xmpp.whitespace_keepalive = False
        self.watch(xmpp)
        self.failing: set[str] = set()
        self.publishes: asyncio.Queue = asyncio.Queue(maxsize=100)
        self._pending = asyncio.get_running_loop().create_future()
        xmpp.add_event_handler("session_start", lambda event: self._settle())
        xmpp.register_handler(Callback(
            "push publish",
            MatchXPath("{jabber:component:accept}iq/{%s}pubsub" % NS_PUBSUB), self.onPublish))

    @_deferred
    async def connect(self) -> None:
        self.xmpp.connect("127.0.0.1", self.port)
        try:
            await asyncio.wait_for(asyncio.shield(self._pending), TIMEOUT)
        finally:
            self.xmpp.cancel_connection_attempt()

    def onPublish(self, iq) -> None:
        pubsub = iq.xml.find("{%s}pubsub" % NS_PUBSUB)
        publish = pubsub.find("{%s}publish" % NS_PUBSUB)
        node = publish.get("node")
        summary = publish.find("{%s}item/{urn:xmpp:push:0}notification/{%s}x" % (
            NS_PUBSUB, NS_DATA))
        options = pubsub.find("{%s}publish-options/{%s}x" % (NS_PUBSUB, NS_DATA))
        self.publishes.put_nowait((str(iq["from"]), node, fields(summary), fields(options)))
        reply = iq.reply(clear=True)
        if node in self.failing:
            reply["type"] = "error"
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = "item-not-found"
        reply.send()

    @_deferred
    async def nextPublish(self):
        return await asyncio.wait_for(self.publishes.get(), TIMEOUT)

    async def close(self) -> None:
        await self._close()


def fields(form) -> dict:
    if form is None:
        return {}
    return {field.get("var"): [value.text for value in field.findall("{%s}value" % NS_DATA)]
            for field in form.findall("{%s}field" % NS_DATA)}


def enablePush(client, node: str) -> object:
    """XEP-0357 Example 9: enable with a publish-options form carrying the app server's secret."""
    iq = client.xmpp.make_iq_set()
    iq.append(ET.fromstring(
        "<enable xmlns='urn:xmpp:push:0' jid='%s' node='%s'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value>"
        "</field><field var='secret'><value>eruio234vzxc2kla-91</value></field></x></enable>"
        % (APP, node)))
    return wait(iq.send(timeout=TIMEOUT))


async def registrations(server) -> str | None:
    return await server.service.storage.accountData.get("juliet", DOMAIN, "push")


@pytest_twisted.async_yield_fixture
async def pushNode(makeServer):
    """A node accepting the app server component, with the app server connected."""
    node = await makeServer({
        "components": {"listen": "tcp:0:interface=127.0.0.1", "secrets": {APP: SECRET}},
        "push": {"include_sender": True, "min_interval": 0},
    })
    port = (await node.service.getServiceNamed("components").ready).getHost().port
    app = AppServer(port)
    await app.connect()
    yield node, app
    await sleep(0)
    await _deferred(app.close)()


@pytest_twisted.ensureDeferred
async def test_pushToOfflineUserAndDisabledOnError(pushNode):
    """
    A user enables push and goes offline; a message to them reaches the app
    server as a summary with the publish options; the registration whose
    app server answers with an error is removed and gets no more pushes.
    """
    node, app = pushNode
    await node.addUser("juliet")
    await node.addUser("romeo")
    juliet = node.client("juliet")
    juliet.xmpp.register_plugin("xep_0030")
    await juliet.login()
    info = await wait(juliet.xmpp.plugin["xep_0030"].get_info(jid=juliet.jid.bare))
    assert "urn:xmpp:push:0" in info["disco_info"]["features"]
    await enablePush(juliet, "bad")
    await enablePush(juliet, "good")
    await juliet.disconnect()

    romeo = await node.login("romeo")
    romeo.send(f"juliet@{DOMAIN}", "Wherefore art thou?")
    app.failing.add("bad")
    first = {}
    for _ in range(2):
        sender, pushed, summary, options = await app.nextPublish()
        assert sender == f"juliet@{DOMAIN}"
        first[pushed] = summary
        assert options["secret"] == ["eruio234vzxc2kla-91"]
    assert sorted(first) == ["bad", "good"]
    assert first["good"]["FORM_TYPE"] == ["urn:xmpp:push:summary"]
    assert first["good"]["message-count"] == ["1"]
    assert first["good"]["last-message-sender"] == [str(romeo.jid)]
    assert "last-message-body" not in first["good"]

    # The app server's error disables "bad" (bounded wait for the write).
    for _ in range(int(TIMEOUT / 0.05)):
        stored = await registrations(node)
        if stored is not None and '"bad"' not in stored:
            break
        await sleep(0.05)
    assert '"bad"' not in stored and '"good"' in stored

    romeo.send(f"juliet@{DOMAIN}", "Still there?")
    # Pushes go out in registration order on one stream: had "bad" been
    # kept, its publish would have come first.
    sender, pushed, summary, _ = await app.nextPublish()
    assert pushed == "good"
    assert app.publishes.empty()

    # Both messages wait for Juliet.
    juliet = await node.login("juliet")
    juliet.xmpp.send_presence()
    assert [(await juliet.nextMessage())["body"] for _ in range(2)] == [
        "Wherefore art thou?", "Still there?"]


@pytest_twisted.ensureDeferred
async def test_pushToDetachedSession(makeServer):
    """
    A phone that enabled push loses its connection while the server keeps
    its session for resumption: a message for it reaches the app server, and
    the resumed session still gets the message.
    """
    node = await makeServer({
        "components": {"listen": "tcp:0:interface=127.0.0.1", "secrets": {APP: SECRET}},
        "sm": {"resume_timeout": 60},
    })
    port = (await node.service.getServiceNamed("components").ready).getHost().port
    app = AppServer(port)
    await app.connect()
    try:
        await node.addUser("juliet")
        await node.addUser("romeo")
        juliet = node.client("juliet", "phone")
        juliet.xmpp.register_plugin("xep_0198")
        await juliet.login()
        juliet.xmpp.send_presence()
        await enablePush(juliet, "phone")
        gone = asyncio.get_running_loop().create_future()
        juliet.xmpp.add_event_handler(
            "disconnected", lambda reason: gone.done() or gone.set_result(None),
            disposable=True)
        juliet.xmpp.transport.abort()  # No footer: the session is kept.
        await wait(asyncio.shield(gone))

        romeo = await node.login("romeo")
        romeo.send(f"juliet@{DOMAIN}/phone", "Are you asleep?")
        sender, pushed, summary, _ = await app.nextPublish()
        assert (sender, pushed) == (f"juliet@{DOMAIN}", "phone")
        assert summary["message-count"] == ["1"]
        assert "last-message-sender" not in summary and "last-message-body" not in summary

        resumed = asyncio.get_running_loop().create_future()
        juliet.xmpp.add_event_handler(
            "session_resumed", lambda event: resumed.done() or resumed.set_result(None),
            disposable=True)
        juliet.xmpp.connect("127.0.0.1", node.starttlsPort)
        try:
            await wait(asyncio.shield(resumed))
        finally:
            juliet.xmpp.cancel_connection_attempt()
        assert (await juliet.nextMessage())["body"] == "Are you asleep?"
    finally:
        await sleep(0)
        await _deferred(app.close)()


@pytest_twisted.ensureDeferred
async def test_tooManyRegistrations(pushNode):
    """Past push.max_registrations the user's enable is refused with policy-violation."""
    node, app = pushNode
    await node.addUser("juliet")
    juliet = await node.login("juliet")
    for number in range(5):
        await enablePush(juliet, "node%d" % number)
    # slixmpp 1.17 cannot parse RFC 6120's policy-violation into an IqError
    # (its list of conditions is RFC 3920's): read the answer raw.
    answers: asyncio.Queue = asyncio.Queue(maxsize=10)
    juliet.xmpp.register_handler(Callback(
        "raw enable answer", MatchXPath("{jabber:client}iq"),
        lambda iq: answers.put_nowait(iq.xml) if iq["id"] == "too-many" else None))
    juliet.xmpp.send_raw(
        "<iq type='set' id='too-many'><enable xmlns='urn:xmpp:push:0' jid='%s' "
        "node='one-too-many'/></iq>" % APP)
    answer = await wait(answers.get())
    assert answer.get("type") == "error"
    error = answer.find("{jabber:client}error")
    assert error.get("type") == "modify"
    assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None


@pytest_twisted.ensureDeferred
async def test_externalServices(makeServer):
    """A user asks the server for its STUN/TURN services and gets TURN REST credentials."""
    node = await makeServer({"extdisco": {"ttl": 600, "services": [
        {"type": "stun", "host": "turn.example.org"},
        {"type": "turn", "host": "turn.example.org", "secret": TURN_SECRET},
    ]}})
    await node.addUser("juliet")
    juliet = node.client("juliet")
    juliet.xmpp.register_plugin("xep_0030")
    await juliet.login()
    info = await wait(juliet.xmpp.plugin["xep_0030"].get_info(jid=DOMAIN))
    assert "urn:xmpp:extdisco:2" in info["disco_info"]["features"]

    iq = juliet.xmpp.make_iq_get(ito=DOMAIN)
    iq.append(ET.fromstring("<services xmlns='urn:xmpp:extdisco:2'/>"))
    reply = await wait(iq.send(timeout=TIMEOUT))
    services = reply.xml.findall("{urn:xmpp:extdisco:2}services/{urn:xmpp:extdisco:2}service")
    assert [(s.get("type"), s.get("port")) for s in services] == [("stun", "3478"),
                                                                    ("turn", "3478")]
    turn = services[1]
    expiry, user = turn.get("username").split(":", 1)
    assert user == f"juliet@{DOMAIN}"
    assert turn.get("password") == base64.b64encode(hmac.new(
        TURN_SECRET.encode(), turn.get("username").encode(), hashlib.sha1).digest()).decode()
    assert turn.get("expires").endswith("Z") and int(expiry) > 0

    iq = juliet.xmpp.make_iq_get(ito=DOMAIN)
    iq.append(ET.fromstring("<credentials xmlns='urn:xmpp:extdisco:2'>"
                            "<service type='turn' host='elsewhere.example.org'/></credentials>"))
    try:
        await wait(iq.send(timeout=TIMEOUT))
    except IqError as e:
        condition = e.iq["error"]["condition"]
    else:
        condition = None
    assert condition == "item-not-found"
