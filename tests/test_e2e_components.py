"""
End-to-end tests of external components (XEP-0114): slixmpp's
C{ComponentXMPP} against a real node built by L{xmppd.tap.makeService},
with slixmpp clients as the users (see L{tests.e2e}).
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted
import slixmpp

from tests.e2e import DOMAIN, TIMEOUT, LoginFailed, SlixmppPeer, _deferred, sleep

COMPONENT = "echo." + DOMAIN
SECRET = "the echo component's secret"


class Component(SlixmppPeer):
    """
    A slixmpp component with bounded waits whose results are Deferreds;
    C{streamErrors} collects the conditions of the stream errors received.
    By default it echoes every message with a body back to its sender.
    """

    def __init__(self, port: int, secret: str = SECRET, echo: bool = True):
        self.port = port
        xmpp = slixmpp.ComponentXMPP(COMPONENT, secret)
        xmpp.whitespace_keepalive = False
        self.watch(xmpp)
        self.echo = echo
        self._pending = asyncio.get_running_loop().create_future()
        xmpp.add_event_handler("session_start", self._onSessionStart)

    @_deferred
    async def connect(self) -> None:
        """Connect and hand-shake; fails with L{LoginFailed} when the server refuses."""
        self.xmpp.connect("127.0.0.1", self.port)
        try:
            await asyncio.wait_for(asyncio.shield(self._pending), TIMEOUT)
        except asyncio.TimeoutError:
            raise LoginFailed("timeout", f"no handshake after {TIMEOUT} s") from None
        finally:
            self.xmpp.cancel_connection_attempt()

    def send(self, to: str, body: str, sender: str) -> None:
        self.xmpp.send_message(mto=to, mbody=body, mfrom=sender)

    async def close(self) -> None:
        """Teardown: close the stream, stop slixmpp's background send task."""
        await self._close()

    def _onSessionStart(self, event) -> None:
        self._settle()

    def _onMessage(self, message) -> None:
        SlixmppPeer._onMessage(self, message)
        if self.echo:
            self.xmpp.send_message(mto=message["from"], mfrom=message["to"],
                                   mbody="echo: " + message["body"], mtype=message["type"])


@pytest_twisted.async_yield_fixture
async def components(makeServer):
    """
    C{await components(onConflict="replace")} starts a node accepting the
    echo component on an ephemeral port and returns (node, make), where
    C{make(secret=SECRET, echo=True)} builds a L{Component} for it; all of
    them are closed after the test, before the node.
    """
    made: list[Component] = []

    async def start(onConflict: str = "replace"):
        node = await makeServer({"components": {
            "listen": "tcp:0:interface=127.0.0.1", "secrets": {COMPONENT: SECRET},
            "on_conflict": onConflict}})
        service = node.service.getServiceNamed("components")
        port = (await service.ready).getHost().port
        assert port == service.port.getHost().port

        def make(secret: str = SECRET, echo: bool = True) -> Component:
            component = Component(port, secret, echo)
            made.append(component)
            return component

        return node, make

    yield start
    # As in makeServer: continue from inside the loop, as the test did.
    await sleep(0)
    errors = []
    for component in made:
        try:
            await _deferred(component.close)()
        except Exception as e:  # noqa: BLE001 - close the others, then report
            errors.append(e)
    if errors:
        raise errors[0]


@pytest_twisted.ensureDeferred
async def test_messageToComponentAndBack(components):
    """A user's message reaches a connected component, and the component's answer reaches the user."""
    node, make = await components()
    component = make()
    await component.connect()
    await node.addUser("romeo")
    romeo = await node.login("romeo", "orchard")
    romeo.send(f"bot@{COMPONENT}", "hello")
    received = await component.nextMessage()
    assert received["from"] == romeo.jid
    assert received["body"] == "hello"
    reply = await romeo.nextMessage()
    assert reply["from"] == f"bot@{COMPONENT}"
    assert reply["body"] == "echo: hello"


@pytest_twisted.ensureDeferred
async def test_wrongSecretRefused(components):
    """A component with the wrong secret is refused with not-authorized."""
    node, make = await components()
    component = make(secret="not the secret")
    with pytest.raises(LoginFailed) as raised:
        await component.connect()
    assert raised.value.condition == "not-authorized"
    assert node.service.getServiceNamed("components").connections() == []


@pytest_twisted.ensureDeferred
async def test_disconnectedComponentUnavailable(components):
    """A message to a configured component that is not connected bounces with service-unavailable."""
    node, make = await components()
    await node.addUser("romeo")
    romeo = await node.login("romeo", "orchard")
    errors: asyncio.Queue = asyncio.Queue(maxsize=10)
    romeo.xmpp.add_event_handler("message_error", errors.put_nowait)
    romeo.send(f"bot@{COMPONENT}", "anyone there?")
    error = await _deferred(lambda: asyncio.wait_for(errors.get(), TIMEOUT))()
    assert error["error"]["condition"] == "service-unavailable"
    assert error["error"]["type"] == "wait"


@pytest_twisted.ensureDeferred
async def test_spoofedFromClosesStream(components):
    """A component sending from a JID outside its domain is closed with invalid-from."""
    node, make = await components()
    await node.addUser("juliet")
    juliet = await node.login("juliet", "balcony")
    component = make()
    await component.connect()
    component.send(str(juliet.jid), "it is Romeo, honest", sender=f"romeo@{DOMAIN}")
    assert await component.closedByServer() == ["invalid-from"]
    assert node.service.getServiceNamed("components").connections() == []


@pytest_twisted.ensureDeferred
async def test_secondConnectionReplaces(components):
    """By default a second connection of a component replaces the first, closed with conflict."""
    node, make = await components()
    first, second = make(), make()
    await first.connect()
    await second.connect()
    assert await first.closedByServer() == ["conflict"]
    await node.addUser("romeo")
    romeo = await node.login("romeo", "orchard")
    romeo.send(f"bot@{COMPONENT}", "who is there?")
    assert (await second.nextMessage())["body"] == "who is there?"
    assert (await romeo.nextMessage())["body"] == "echo: who is there?"
    [(domain, _, _)] = node.service.getServiceNamed("components").connections()
    assert domain == COMPONENT


@pytest_twisted.ensureDeferred
async def test_secondConnectionRefused(components):
    """With on_conflict = "refuse", a second connection of a component is refused with conflict."""
    node, make = await components(onConflict="refuse")
    first, second = make(), make()
    await first.connect()
    with pytest.raises(LoginFailed) as raised:
        await second.connect()
    assert raised.value.condition == "conflict"
    assert first.connected
    await node.addUser("romeo")
    romeo = await node.login("romeo", "orchard")
    romeo.send(f"bot@{COMPONENT}", "still there?")
    assert (await romeo.nextMessage())["body"] == "echo: still there?"
