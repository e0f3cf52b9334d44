# -*- test-case-name: tests.test_muc_features -*-
"""
Occupant identifiers (XEP-0421): every presence and message the room sends
on an occupant's behalf carries an id that is the same for one account in
one room, across nicks and visits, and says nothing about who it is.  It is
an HMAC of the room and the real bare JID under the service's secret, so it
survives restarts without being stored.  Ids sent by clients are removed
(L{muc.room.FORGEABLE}).

Implements: XEP-0421 0.1.0
"""

import base64
import hashlib
import hmac

from twisted.words.xish import domish

from muc.protocol import NS_OCCUPANT_ID
from xmppd.core.hooks import DELIVER

OPTIONS = ()


def register(hooks):
    hooks.add("room/occupant-stanza", onStanza, DELIVER)
    hooks.add("room/disco", onDisco, DELIVER)


def occupantId(room, occupant) -> str:
    if occupant.occupantId is None:
        digest = hmac.new(room.service.secret, ("%s\0%s" % (room.jidText, occupant.bare)).encode(),
                          hashlib.sha256).digest()
        occupant.occupantId = base64.urlsafe_b64encode(digest[:18]).decode()
    return occupant.occupantId


def onStanza(event):
    tag = domish.Element((NS_OCCUPANT_ID, "occupant-id"))
    tag["id"] = occupantId(event.room, event.occupant)
    event.stanza.addChild(tag)


def onDisco(event):
    event.features.append(NS_OCCUPANT_ID)
