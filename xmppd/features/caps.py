# -*- test-case-name: tests.test_caps -*-
"""
The server's own entity capabilities (XEP-0115).

The verification string is computed (§5.1, SHA-1) from the domain's
disco#info as the domain's handlers give it (see L{xmppd.features.disco}):
identities, features and extended forms, so it changes exactly when the
features a node runs change.  It is advertised as a stream feature
(§6.3), C{<c xmlns='http://jabber.org/protocol/caps' hash='sha-1'
node='https://xmppd.example/caps' ver='...'/>}, through the hook
C{"c2s/features"}, on streams to this domain, and a disco#info query for
the node C{node#ver} is answered with the domain's own information
(§6.2).  The domain announces the caps feature itself.

The string is computed once, the first time it is needed (all handlers are
in place by then), and kept: a node's features are fixed by its
configuration for as long as it runs.

Implements: XEP-0115 1.6.0
"""

from __future__ import annotations

import base64
import hashlib

from wokkel.data_form import Form
from wokkel.disco import DiscoFeature, DiscoIdentity
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import DELIVER
from xmppd.features.disco import gatherInfo
from xmppd.core.jid import makeJID

NS_CAPS = "http://jabber.org/protocol/caps"
#: Names the software in caps (§4: a URI for the software, not for a node).
NODE = "https://xmppd.example/caps"


def _identityParts(identity) -> tuple[str, str, str, str]:
    if isinstance(identity, DiscoIdentity):
        return (identity.category or "", identity.type or "",
                getattr(identity, "lang", None) or "", identity.name or "")
    category, idType, lang, name = identity
    return category or "", idType or "", lang or "", name or ""


def _valueText(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "full"):
        return value.full()
    return str(value)


def verificationString(identities, features, forms=()) -> str:
    """
    The string S of XEP-0115 §5.1 (steps 1-7).  C{identities} are
    L{DiscoIdentity}s or C{(category, type, lang, name)} tuples; C{forms}
    are wokkel data forms, and forms without a C{FORM_TYPE} are left out.
    Sorting by code point is the "i;octet" collation the XEP asks for, as
    UTF-8 keeps code point order.
    """
    parts = []
    for category, idType, lang, name in sorted(set(map(_identityParts, identities))):
        parts.append("%s/%s/%s/%s<" % (category, idType, lang, name))
    for feature in sorted(set(map(str, features))):
        parts.append(feature + "<")
    typed = sorted((form for form in forms if form.formNamespace),
                   key=lambda form: form.formNamespace)
    for form in typed:
        parts.append(form.formNamespace + "<")
        fields = sorted((f for f in form.fieldList if f.var and f.var != "FORM_TYPE"),
                        key=lambda f: f.var)
        for field in fields:
            parts.append(field.var + "<")
            for value in sorted(map(_valueText, field.values)):
                parts.append(value + "<")
    return "".join(parts)


def capsHash(info) -> str:
    """The C{ver} (§5.1 steps 8-10, SHA-1) of a disco#info answer, as from L{gatherInfo}."""
    identities = [item for item in info if isinstance(item, DiscoIdentity)]
    features = [item for item in info if isinstance(item, DiscoFeature)]
    forms = [item for item in info if isinstance(item, Form)]
    text = verificationString(identities, features, forms)
    return base64.b64encode(hashlib.sha1(text.encode("utf-8")).digest()).decode("ascii")


@implementer(IDisco)
class CapsHandler(XMPPHandler):
    """See the module docstring."""

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.domainJID = makeJID(None, domain.domain)
        self.ver: str | None = None
        self.computing = None

    def register(self) -> None:
        self.domain.hooks.add("c2s/features", self.onFeatures, DELIVER)

    def currentVer(self) -> str | None:
        """
        The domain's C{ver}, computed on first use; C{None} only while a
        handler is still answering asynchronously.
        """
        if self.ver is None and self.computing is None:
            self.computing = gatherInfo(self.parent, self.domainJID, self.domainJID, "")
            self.computing.addCallback(self.computed)
        return self.ver

    def computed(self, info) -> None:
        self.ver = capsHash(info)
        self.computing = None

    def onFeatures(self, event) -> None:
        if event.stream.domain != self.domain.domain:
            return
        ver = self.currentVer()
        if ver is None:
            # Offered as soon as it is known: do not keep features without it.
            event.cacheable = False
            return
        c = event.features.addElement((NS_CAPS, "c"))
        c["hash"] = "sha-1"
        c["node"] = NODE
        c["ver"] = ver

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is not None:
            return []
        if not nodeIdentifier:
            return [DiscoFeature(NS_CAPS)]
        ver = self.currentVer() if nodeIdentifier.startswith(NODE + "#") else None
        if ver is not None and nodeIdentifier == NODE + "#" + ver:
            # §6.2: the node#ver answer is the domain's own information.
            return gatherInfo(self.parent, requestor, target, "")
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> CapsHandler:
    handler = CapsHandler(domain)
    handler.register()
    return handler
