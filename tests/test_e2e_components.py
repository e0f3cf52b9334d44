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

from tests.e2e import DOMAIN, TIMEOUT, LoginFailed, _deferred, sleep

COMPONENT = "echo." + DOMAIN
SECRET = "the echo component's secret"


class Component:
    """
    A slixmpp component with bounded waits whose results are Deferreds;
    C{streamErrors} collects the conditions of the stream errors received.
    By default it echoes every message with a body back to its sender.
    """

    def __init__(self, port: int, secret: str = SECRET, echo: bool = True):
        self.port = port
        xmpp = slixmpp.ComponentXMPP(COMPONENT, secret)
        xmpp.whitespace_keepalive = False
        self.xmpp = xmpp
        self.echo = echo
        self.streamErrors: list[str] = []
        self.messages: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self.connected = False
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._closed = loop.create_future()
        xmpp.add_event_handler("connected", self._onConnected)
        xmpp.add_event_handler("session_start", self._onSessionStart)
        xmpp.add_event_handler("stream_error", self._onStreamError)
        xmpp.add_event_handler("disconnected", self._onDisconnected)
        xmpp.add_event_handler("message", self._onMessage)

    @_deferred
    async def connect(self) -> None:
        """Connect and hand-shake; fails with L{LoginFailed} when the server refuses."""
        self.xmpp.connect("127.0.0.1", self.port)
        try:
            await asyncio.wait_for(asyncio.shield(self._started), TIMEOUT)
        except asyncio.TimeoutError:
            raise LoginFailed("timeout", f"no handshake after {TIMEOUT} s") from None
        finally:
            self.xmpp.cancel_connection_attempt()

    @_deferred
    async def closedByServer(self) -> list[str]:
        """Fires with the stream error conditions received, once the connection is gone."""
        await asyncio.wait_for(asyncio.shield(self._closed), TIMEOUT)
        return self.streamErrors

    @_deferred
    async def nextMessage(self) -> slixmpp.Message:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    def send(self, to: str, body: str, sender: str) -> None:
        self.xmpp.send_message(mto=to, mbody=body, mfrom=sender)

    async def close(self) -> None:
        """Teardown: close the stream, stop slixmpp's background send task."""
        if self.connected:
            self.xmpp.disconnect(wait=2.0)
            await asyncio.wait_for(asyncio.shield(self._closed), TIMEOUT)
        self.xmpp.cancel_connection_attempt()
        sender = self.xmpp._run_out_filters
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.wait([sender], timeout=TIMEOUT)

    def _settle(self, error: Exception | None = None) -> None:
        if not self._started.done():
            if error is None:
                self._started.set_result(None)
            else:
                self._started.set_exception(error)

    def _onConnected(self, event) -> None:
        self.connected = True

    def _onSessionStart(self, event) -> None:
        self._settle()

    def _onStreamError(self, error) -> None:
        self.streamErrors.append(error["condition"])
        self._settle(LoginFailed(error["condition"], error["text"]))

    def _onDisconnected(self, reason) -> None:
        self.connected = False
        self._settle(LoginFailed("disconnected", str(reason or "")))
        if not self._closed.done():
            self._closed.set_result(None)

    def _onMessage(self, message) -> None:
        self.messages.put_nowait(message)
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
