# -*- test-case-name: tests.test_muc_room -*-
"""
The hooks a room fires at its decision points, and their payloads.  Room
options (L{muc.features}) subscribe on the MUC service's own
L{xmppd.core.hooks.Hooks} (C{service.hooks}), so a room option never touches the
room model's code.

Each is declared in the node's hook catalogue (L{xmppd.core.events}) like
the core's, with its payload; room options register at the priority bands
of L{xmppd.core.hooks} (vetoes at C{POLICY}).  Room callbacks answer
synchronously: the room model is pure, and its callers take a result, never
a chain that waits.

Vetoes (C{fire}; a callback returns an L{Refusal} to refuse, C{None} to let
the next one decide):

  - C{"room/join"} (L{JoinEvent}): someone enters (§7.2): password,
    members-only, room size...
  - C{"room/message"} (L{MessageEvent}): an occupant's groupchat message
    with a body (§7.4): moderation, rate limits.
  - C{"room/subject"} (L{MessageEvent}): an occupant who is not a moderator
    changes the subject (§8.1); here a callback returns C{True} to B{allow}
    it, and nobody allowing it refuses it.
  - C{"room/pm"} (L{MessageEvent} with C{target}): a private message (§7.5).
  - C{"room/invite"} (L{MessageEvent} with C{target} the invitee's JID, §7.8).
  - C{"room/nick"} (L{MessageEvent} with C{target} the new nick, §7.6).

Notifications (C{notify}):

  - C{"room/occupant-stanza"} (L{StanzaOutEvent}): a presence or message is
    about to go out on an occupant's behalf (XEP-0421 adds the occupant id).
  - C{"room/groupchat"} (L{StanzaOutEvent}): a groupchat message accepted,
    before it is serialized for the occupants (the archive adds its
    stanza-id, XEP-0359).
  - C{"room/disco"} (L{DiscoEvent}): the room's disco#info is being built.
  - C{"room/configured"} (L{ConfiguredEvent}): the configuration changed;
    options react (members-only removes non-members, §9.3).
  - C{"room/iq"} (L{IQEvent}, C{fire}): an IQ to the room that the core does
    not know; a feature that answers it returns C{True} (MAM, XEP-0313).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xmppd.core.events import CATALOGUE


@dataclass(frozen=True)
class Refusal:
    """A veto: the stanza error condition, and a text for the user."""

    condition: str
    text: str | None = None
    errorType: str | None = None


@dataclass
class JoinEvent:
    room: object
    jid: object          # the real full JID
    nick: str
    affiliation: str
    stanza: object       # the join presence
    password: str | None


@dataclass
class MessageEvent:
    room: object
    occupant: object
    stanza: object
    target: object = None


@dataclass
class StanzaOutEvent:
    room: object
    occupant: object
    stanza: object


@dataclass
class DiscoEvent:
    room: object
    features: list = field(default_factory=list)
    #: muc#roominfo fields: var -> (label, value or list of values)
    info: dict = field(default_factory=dict)


@dataclass
class ConfiguredEvent:
    room: object
    old: dict
    statuses: list = field(default_factory=list)


@dataclass
class IQEvent:
    room: object
    stanza: object
    sender: object
    occupant: object


ROOM_JOIN = CATALOGUE.declare("room/join", JoinEvent, True, "someone enters a room")
ROOM_MESSAGE = CATALOGUE.declare("room/message", MessageEvent, True,
                                 "an occupant's groupchat message with a body")
ROOM_SUBJECT = CATALOGUE.declare("room/subject", MessageEvent, True,
                                 "a non-moderator changes the subject (True allows)")
ROOM_PM = CATALOGUE.declare("room/pm", MessageEvent, True, "a private message in a room")
ROOM_INVITE = CATALOGUE.declare("room/invite", MessageEvent, True, "an invitation")
ROOM_NICK = CATALOGUE.declare("room/nick", MessageEvent, True, "a nick change")
ROOM_OCCUPANT_STANZA = CATALOGUE.declare("room/occupant-stanza", StanzaOutEvent, False,
                                         "a stanza goes out on an occupant's behalf")
ROOM_GROUPCHAT = CATALOGUE.declare("room/groupchat", StanzaOutEvent, False,
                                   "a groupchat message was accepted")
ROOM_DISCO = CATALOGUE.declare("room/disco", DiscoEvent, False,
                               "the room's disco#info is being built")
ROOM_CONFIGURED = CATALOGUE.declare("room/configured", ConfiguredEvent, False,
                                    "the room's configuration changed")
ROOM_IQ = CATALOGUE.declare("room/iq", IQEvent, True, "an IQ to the room the core does not know")
