# -*- test-case-name: tests.test_contact -*-
"""
Contact addresses for the service (XEP-0157).

The addresses in C{[contact]} (URIs such as C{mailto:abuse@example.org} or
C{xmpp:admin@example.org}) are published in the domain's disco#info as an
extended form (XEP-0128) of type C{http://jabber.org/network/serverinfo},
one field C{<kind>-addresses} per kind that has any (XEP-0157 §2-§3;
C{status} is the kind version 1.1 added).  With no
address at all the form is left out.

With no C{contact.admin} addresses, the administrators are the server's own,
C{server.admins}, as C{xmpp:} URIs: an operator who named the admins once
need not repeat them, and clients that show "contact the admin" find them.

Implements: XEP-0157 1.1
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from wokkel.data_form import Field, Form
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppd.config import ConfigError, describe, option, section

NS_SERVERINFO = "http://jabber.org/network/serverinfo"
#: RFC 3986 §3.1: a URI starts with a scheme and a colon.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def uriList():
    """A list of URIs (C{mailto:}, C{xmpp:}, C{https:}...)."""

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of URIs like "
                              f"[\"mailto:abuse@example.org\"], got {describe(value)}")
        for item in value:
            if not isinstance(item, str) or not _SCHEME.match(item):
                raise ConfigError(f"{key}: {describe(item)} is not a URI; write "
                                  f"\"mailto:...\", \"xmpp:...\" or \"https://...\"")
        return tuple(value)

    return check


@section("contact")
@dataclasses.dataclass(frozen=True)
class ContactConfig:
    abuse: tuple[str, ...] = option(
        (), uriList(), "where to report abuse of the service (XEP-0157), as URIs")
    admin: tuple[str, ...] = option(
        (), uriList(), "the service's administrators, as URIs")
    feedback: tuple[str, ...] = option(
        (), uriList(), "where to send feedback about the service, as URIs")
    sales: tuple[str, ...] = option(
        (), uriList(), "sales contacts, as URIs")
    security: tuple[str, ...] = option(
        (), uriList(), "where to report security issues, as URIs")
    status: tuple[str, ...] = option(
        (), uriList(), "where the service's status (outages, maintenance) is published, as URIs")
    support: tuple[str, ...] = option(
        (), uriList(), "where users get help, as URIs")


#: The kinds of address; each is the option C{kind} and the field C{kind-addresses}.
KINDS = ("abuse", "admin", "feedback", "sales", "security", "status", "support")


def addressesOf(config: ContactConfig, admins: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Kind -> URIs; C{admin} falls back to the server admins (bare JIDs) as C{xmpp:} URIs."""
    addresses = {kind: list(getattr(config, kind)) for kind in KINDS}
    if not addresses["admin"]:
        addresses["admin"] = ["xmpp:%s" % (jid,) for jid in admins]
    return addresses


def serverInfoForm(config: ContactConfig, admins: tuple[str, ...] = ()) -> Form | None:
    """The XEP-0157 form for C{config}, or C{None} when it has no address."""
    addresses = addressesOf(config, admins)
    # list-multi, as the XMPP Registrar's entry for the FORM_TYPE has it.
    fields = [Field("list-multi", var="%s-addresses" % kind, values=addresses[kind])
              for kind in KINDS if addresses[kind]]
    if not fields:
        return None
    return Form("result", formNamespace=NS_SERVERINFO, fields=fields)


@implementer(IDisco)
class ContactHandler(XMPPHandler):
    """Adds the contact form to the domain's disco#info."""

    def __init__(self, form: Form):
        XMPPHandler.__init__(self)
        self.form = form

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is None and not nodeIdentifier:
            return [self.form]
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> ContactHandler | None:
    form = serverInfoForm(domain.config.contact, domain.config.server.admins)
    return ContactHandler(form) if form is not None else None
