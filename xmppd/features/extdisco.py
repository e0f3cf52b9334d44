# -*- test-case-name: tests.test_extdisco -*-
"""
External service discovery (XEP-0215): the STUN and TURN servers a
client should use for audio and video calls (Jingle ICE-UDP, XEP-0176),
with temporary TURN credentials.

The services are the operator's, listed in C{[extdisco] services}; the
domain answers for them, to its own users only (a request from anyone else
is C{service-unavailable}: relays are not for strangers):

  - C{<services xmlns='urn:xmpp:extdisco:2'/>} (§3.1) lists them all, and
    with a C{type} attribute only those of that type (§3.2: a type nobody
    configured gives an empty list, as the XEP's "MUST return only services
    of that type" says);
  - C{<credentials><service type= host= [port=]/></credentials>} (§3.3)
    answers with that one service and fresh credentials; a request without
    a C{<service/>} with C{type} and C{host}, or with a port that is not
    one, is C{bad-request}, and one for a service not configured is
    C{item-not-found}.

Credentials follow the TURN REST API scheme (draft-uberti-behave-turn-rest
§2.2, what coturn's C{use-auth-secret} checks): the username is
C{"<expiry>:<user's bare JID>"} with the expiry in Unix seconds, the
password C{base64(HMAC-SHA1(secret, username))}, so the TURN server needs
only the shared C{secret} and no account database.  They are valid for
C{[extdisco] ttl} seconds, given as C{expires} (XEP-0082 DateTime), and
the service is marked C{restricted} (credentials are required).  Every
service with a secret gets credentials in the list too (as Prosody's
mod_turn_external and ejabberd's mod_stun_disco do), so one round trip
suffices.  A service without a secret is listed without credentials.

The domain announces C{urn:xmpp:extdisco:2} (§4) only when services are
configured.

Implements: XEP-0215 1.0.0 (External Service Discovery)
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.config import ConfigError, describe, integer, option, section
from xmppd.core.jid import InvalidJID, parseJID

NS_EXTDISCO = "urn:xmpp:extdisco:2"

SERVICES_GET = "/iq[@type='get']/services[@xmlns='%s']" % NS_EXTDISCO
CREDENTIALS_GET = "/iq[@type='get']/credentials[@xmlns='%s']" % NS_EXTDISCO

#: The service types this server lists, with their default port and
#: transport (RFC 7064, RFC 7065: 3478 for plain, 5349 over TLS).
TYPES = {"stun": (3478, "udp"), "stuns": (5349, "tcp"),
         "turn": (3478, "udp"), "turns": (5349, "tcp")}
TRANSPORTS = ("udp", "tcp")
SERVICE_KEYS = ("type", "host", "port", "transport", "name", "secret")


@dataclasses.dataclass(frozen=True)
class ExternalService:
    """One configured service (a row of C{[[extdisco.services]]})."""

    type: str
    host: str
    port: int
    transport: str
    name: str = ""
    secret: str = dataclasses.field(default="", repr=False)


def serviceList() -> Any:
    """The check of C{extdisco.services}: a list of tables, each one service."""

    def check(key: str, value: Any) -> tuple[ExternalService, ...]:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of tables like "
                              f'[{{type = "turn", host = "turn.example.org", secret = "..."}}], '
                              f"got {describe(value)}")
        services = []
        for number, table in enumerate(value, 1):
            where = f"{key}[{number}]"
            if isinstance(table, ExternalService):
                services.append(table)
                continue
            if not isinstance(table, Mapping):
                raise ConfigError(f"{where}: expected a table, got {describe(table)}")
            for name in table:
                if name not in SERVICE_KEYS:
                    raise ConfigError(f"{where}.{name}: unknown key (known: "
                                      f"{', '.join(SERVICE_KEYS)})")
            kind = table.get("type")
            if kind not in TYPES:
                raise ConfigError(f"{where}.type: expected one of "
                                  f"{', '.join(TYPES)}, got {describe(kind)}")
            host = table.get("host")
            if not isinstance(host, str) or not host or any(c.isspace() for c in host):
                raise ConfigError(f"{where}.host: expected a host name or address, "
                                  f"got {describe(host)}")
            defaultPort, defaultTransport = TYPES[kind]
            port = table.get("port", defaultPort)
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise ConfigError(f"{where}.port: expected a port from 1 to 65535, "
                                  f"got {describe(port)}")
            transport = table.get("transport", defaultTransport)
            if transport not in TRANSPORTS:
                raise ConfigError(f"{where}.transport: expected \"udp\" or \"tcp\", "
                                  f"got {describe(transport)}")
            name = table.get("name", "")
            if not isinstance(name, str):
                raise ConfigError(f"{where}.name: expected a string, got {describe(name)}")
            secret = table.get("secret", "")
            if not isinstance(secret, str):
                raise ConfigError(f"{where}.secret: expected a string")
            if secret and not kind.startswith("turn"):
                raise ConfigError(f"{where}.secret: only TURN services (turn, turns) "
                                  f"take credentials")
            services.append(ExternalService(kind, host, port, transport, name, secret))
        seen = set()
        for service in services:
            ident = (service.type, service.host, service.port, service.transport)
            if ident in seen:
                raise ConfigError(f"{key}: {service.type} {service.host}:{service.port} "
                                  f"({service.transport}) is listed twice")
            seen.add(ident)
        return tuple(services)

    return check


@section("extdisco")
@dataclasses.dataclass(frozen=True)
class ExtDiscoConfig:
    services: tuple = option(
        (), serviceList(),
        "STUN/TURN services for calls (XEP-0215), each a table with type (stun, stuns, "
        "turn, turns), host, and optionally port, transport (udp, tcp), name and secret "
        "(the TURN REST API shared secret, coturn's static-auth-secret)")
    ttl: int = option(
        86400, integer(minimum=60),
        "seconds the TURN credentials handed out stay valid")


def credentials(secret: str, user: str, expiry: int) -> tuple[str, str]:
    """
    TURN REST API credentials (draft-uberti-behave-turn-rest §2.2): the
    username C{"<expiry>:<user>"} and the password
    C{base64(HMAC-SHA1(secret, username))}.
    """
    username = "%d:%s" % (expiry, user)
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def dateTime(seconds: int) -> str:
    """XEP-0082 DateTime in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@implementer(IDisco)
class ExtDiscoHandler(XMPPHandler, IQHandlerMixin):
    """XEP-0215 for one served domain; see the module docstring."""

    iqHandlers = {SERVICES_GET: "onServices", CREDENTIALS_GET: "onCredentials"}

    def __init__(self, domain, settings: ExtDiscoConfig):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.services = settings.services
        self.ttl = settings.ttl

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)

    def user(self, iq: domish.Element) -> str:
        """
        The bare JID of the domain's user asking (to the domain itself);
        anyone else gets C{service-unavailable}.
        """
        try:
            sender = parseJID(iq.getAttribute("from") or "")
        except InvalidJID:
            raise StanzaError("service-unavailable") from None
        if sender.user is None or sender.host != self.host:
            raise StanzaError("service-unavailable")
        to = iq.getAttribute("to")
        if to is not None and to != self.host:
            raise StanzaError("service-unavailable")
        return sender.userhost()

    def element(self, service: ExternalService, user: str) -> domish.Element:
        """The C{<service/>} of §3.1, with credentials when it has a secret."""
        element = domish.Element((NS_EXTDISCO, "service"))
        element["type"] = service.type
        element["host"] = service.host
        element["port"] = str(service.port)
        element["transport"] = service.transport
        if service.name:
            element["name"] = service.name
        if service.secret:
            expiry = int(self.domain.clock.seconds()) + self.ttl
            username, password = credentials(service.secret, user, expiry)
            element["username"] = username
            element["password"] = password
            element["expires"] = dateTime(expiry)
            element["restricted"] = "1"
        return element

    def onServices(self, iq: domish.Element) -> domish.Element:
        """§3.1, §3.2: every service, or those of the requested type."""
        user = self.user(iq)
        query = next(iq.elements(NS_EXTDISCO, "services"))
        kind = query.getAttribute("type")
        if kind is not None and not kind:
            raise StanzaError("bad-request", text="an empty type")
        answer = domish.Element((NS_EXTDISCO, "services"))
        if kind is not None:
            answer["type"] = kind
        for service in self.services:
            if kind is None or service.type == kind:
                answer.addChild(self.element(service, user))
        return answer

    def onCredentials(self, iq: domish.Element) -> domish.Element:
        """§3.3: fresh credentials for one service."""
        user = self.user(iq)
        query = next(iq.elements(NS_EXTDISCO, "credentials"))
        requested = list(query.elements(NS_EXTDISCO, "service"))
        if len(requested) != 1:
            raise StanzaError("bad-request", text="ask for exactly one service")
        kind, host = requested[0].getAttribute("type"), requested[0].getAttribute("host")
        if not kind or not host:
            raise StanzaError("bad-request", text="the service needs a type and a host")
        port = requested[0].getAttribute("port")
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise StanzaError("bad-request", text="the port is not a port number")
        for service in self.services:
            if service.type == kind and service.host == host and (
                    port is None or int(port) == service.port):
                answer = domish.Element((NS_EXTDISCO, "credentials"))
                answer.addChild(self.element(service, user))
                return answer
        raise StanzaError("item-not-found", text="no such service")

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        """§4: the domain announces the feature."""
        if nodeIdentifier or target.user is not None or target.host != self.host:
            return []
        return [DiscoFeature(NS_EXTDISCO)]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> ExtDiscoHandler | None:
    """Nothing to do on a domain with no services configured."""
    settings = domain.config.extdisco
    if not settings.services:
        return None
    return ExtDiscoHandler(domain, settings)
