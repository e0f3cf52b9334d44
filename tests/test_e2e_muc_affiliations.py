"""
End-to-end: affiliations, members-only removal and voice requests in
multi-user chat (XEP-0045 §9.3-9.4, §7.13, §8.6) through a real node, with
slixmpp's MUC client: an occupant is told of an absent account's new
affiliation, a member who loses membership leaves a members-only room with
status 321, and a visitor's voice request approved by a moderator makes it
a participant.  The clients and their inboxes are those of
L{tests.test_e2e_muc}.
"""

from __future__ import annotations

import pytest_twisted

from tests.e2e import DOMAIN, TIMEOUT
from tests.test_e2e_muc import asDeferred, cast, createRoom, join, muc, roomJID, say

ensureDeferred = pytest_twisted.ensureDeferred

NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DATA = "jabber:x:data"
NS_REQUEST = "http://jabber.org/protocol/muc#request"


def userItem(stanza):
    """The muc#user item of C{stanza} (an ElementTree element), or None."""
    return stanza.xml.find("{%s}x/{%s}item" % (NS_MUC_USER, NS_MUC_USER))


def formFields(stanza) -> dict | None:
    """The fields (var -> first value) of C{stanza}'s data form, if it has one."""
    x = stanza.xml.find("{%s}x" % NS_DATA)
    if x is None:
        return None
    return {f.get("var"): f.findtext("{%s}value" % NS_DATA)
            for f in x.findall("{%s}field" % NS_DATA)}


@ensureDeferred
async def test_absentAccountsAffiliationSeenByOccupant(server):
    """Juliet, in a non-anonymous room, is told by a message from the room that the absent nurse is now a member."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    await server.addUser("nurse")
    room = roomJID("capulet")
    await createRoom(romeo, room, "romeo", whois="anyone")
    await join(juliet, room, "juliet")

    await asDeferred(muc(romeo).set_affiliation(room, "member", jid="nurse@" + DOMAIN,
                                                timeout=TIMEOUT))

    notice = await juliet.inbox.next(lambda s: s.name == "message" and s["from"] == room
                                     and userItem(s) is not None)
    item = userItem(notice)
    assert (item.get("jid"), item.get("affiliation"), item.get("role")) == (
        "nurse@" + DOMAIN, "member", "none")


@ensureDeferred
async def test_lostMembershipLeavesMembersOnlyRoom(server):
    """Juliet, no longer a member of a members-only room, leaves it with status 321, and Romeo sees her go with 321."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("tomb")
    await createRoom(romeo, room, "romeo", membersonly="1")
    await asDeferred(muc(romeo).set_affiliation(room, "member", jid="juliet@" + DOMAIN,
                                                timeout=TIMEOUT))
    await join(juliet, room, "juliet")

    await asDeferred(muc(romeo).set_affiliation(room, "none", jid="juliet@" + DOMAIN,
                                                timeout=TIMEOUT))

    gone = await juliet.inbox.presence(room + "/juliet", "unavailable", code=321)
    assert 110 in gone["muc"]["status_codes"]
    assert (gone["muc"]["affiliation"], gone["muc"]["role"]) == ("none", "none")
    seen = await romeo.inbox.presence(room + "/juliet", "unavailable", code=321)
    assert 110 not in seen["muc"]["status_codes"]


@ensureDeferred
async def test_voiceRequestApproved(server):
    """Juliet, a visitor in a moderated room, asks for voice; Romeo approves the form he gets; she becomes a participant and speaks."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("court")
    await createRoom(romeo, room, "romeo", moderatedroom="1")
    joined, _, _, _ = await join(juliet, room, "juliet")
    assert joined["muc"]["role"] == "visitor"

    muc(juliet).request_voice(room, "participant")
    asked = await romeo.inbox.next(lambda s: s.name == "message" and s["from"] == room
                                   and (formFields(s) or {}).get("FORM_TYPE") == NS_REQUEST)
    fields = formFields(asked)
    assert fields["muc#roomnick"] == "juliet"
    assert fields["muc#jid"] == juliet.jid.full

    form = romeo.xmpp.plugin["xep_0004"].make_form("submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_REQUEST)
    for var in ("muc#role", "muc#jid", "muc#roomnick"):
        form.add_field(var=var, value=fields[var])
    form.add_field(var="muc#request_allow", ftype="boolean", value=True)
    approval = romeo.xmpp.make_message(room)
    approval.append(form)
    approval.send()

    voiced = await juliet.inbox.next(
        lambda s: s.name == "presence" and s["from"] == room + "/juliet"
        and s["muc"]["role"] == "participant")
    assert 110 in voiced["muc"]["status_codes"]
    await say(juliet, room, "juliet", "Thou art a moderator indeed")
