"""
Fuzzing the stanza handlers with Hypothesis: an authenticated client of a
node in memory (L{tests.streamhelpers.Node}, every feature of the default
set but HTTP upload, the MUC and publish-subscribe services beside it) sends
generated stanzas whose shape follows the protocols xmppd serves
(message, presence and IQ of random types, addressed to valid and invalid
JIDs, carrying roster, disco, MAM queries with RSM and data forms, MUC
admin and owner queries, pubsub and PEP requests, vCard, private XML,
blocking, privacy lists, carbons, push, stream management nonzas...), with
random values where the protocol has values; and an unauthenticated client
runs SASL and SASL2 exchanges with random payloads.

Properties:
  - no unhandled exception: nothing is logged as a failure;
  - every IQ get or set gets exactly one result or error, unless it was
    routed to a client (which then received it);
  - never an error in reply to an error (nor any reply to an IQ result);
  - the stream stays open, unless a stream error is the defined answer to
    what was sent (then it is closed with that error, never silently);
  - bounded state: sessions, rooms and pubsub nodes stay within what the
    examples could create.
"""

from __future__ import annotations

import base64
import functools
from unittest import mock

from hypothesis import example, given, strategies as st
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from muc.service import makeService as makeMUCService
from tests.fuzzhelpers import profile
from tests import streamhelpers
from tests.streamhelpers import DOMAIN, PASSWORDS, Node, header
from xmppd.config.registry import DEFAULT_FEATURES
from xmppd.core.local import LocalDomain
from xmppd.features.pubsub.service import makeService as makePubSubService

MUC = "conference." + DOMAIN
PUBSUB = "pubsub." + DOMAIN
JULIET = "juliet@%s/balcony" % DOMAIN
ROMEO = "romeo@%s/orchard" % DOMAIN
ROOMS = ["room@" + MUC, "other@" + MUC]
#: Everything the node runs: the default features but upload (it needs HTTP).
FEATURES = tuple(f for f in DEFAULT_FEATURES if f != "upload")

NS_SM = "urn:xmpp:sm:3"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"
NS_DATA = "jabber:x:data"
NS_MUC = "http://jabber.org/protocol/muc"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"


class Logged:
    """Collects failures logged through Twisted's logging while active."""

    def __init__(self):
        self.failures: list = []

    def __call__(self, event) -> None:
        failure = event.get("log_failure")
        if isinstance(failure, Failure) or event.get("isError"):
            self.failures.append(event)

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc) -> None:
        # A Deferred that failed with nobody to handle it logs when freed:
        # most are freed at once, by reference counting (a full collection
        # per example would cost more than the example).
        globalLogPublisher.removeObserver(self)

    def check(self) -> None:
        assert not self.failures, [
            (e.get("log_format"), e.get("log_failure") and e["log_failure"].getTraceback())
            for e in self.failures]


# -- values ---------------------------------------------------------------------

ODD = st.sampled_from(["", " ", "-1", "0", "1", "3", "99999999999999999999", "abc", "\u00e9\u4e2d",
                       "x" * 300, "1970-01-01T00:00:00Z", "2026-13-45T99:99:99Z", "NaN", "true",
                       "&lt;b&gt;", "\u202e", "a/b", "@"])
SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
TEXT = st.one_of(ODD, SAFE_TEXT.map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;")
                                    .replace("'", "&apos;")))
JIDS = st.sampled_from([
    DOMAIN, "juliet@" + DOMAIN, JULIET, "romeo@" + DOMAIN, ROMEO, "romeo@%s/gone" % DOMAIN,
    "nobody@" + DOMAIN, MUC, ROOMS[0], ROOMS[0] + "/jul", ROOMS[0] + "/rom", ROOMS[1], PUBSUB,
    "remote.example", "user@remote.example/r", "@" + DOMAIN, "a@b@c", "juliet@" + DOMAIN + "/",
    "/res", "x" * 1100 + "@" + DOMAIN, "UPPER@EXAMPLE.ORG", "juliet@%s/\u2028" % DOMAIN,
    "[::1]", "example.org.", "\u00e9l\u00e8ve@" + DOMAIN])
#: Where a client's stanza may go: mostly the server and its services.
TARGETS = st.one_of(st.none(), st.sampled_from([DOMAIN, "juliet@" + DOMAIN, MUC, PUBSUB,
                                                ROOMS[0], ROMEO]), JIDS)
NODES = st.sampled_from(["urn:xmpp:microblog:0", "eu.siacs.conversations.axolotl.devicelist",
                         "urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata", "storage:bookmarks",
                         "urn:xmpp:bookmarks:1", "n", "", "x" * 300, "http://jabber.org/protocol/nick"])


def attr(name: str, values=TEXT):
    """An optional attribute C{name}."""
    return st.one_of(st.just(""), values.map(lambda v: " %s='%s'" % (name, v)))


def element(name: str, ns: str | None = None, attrs=(), children=None, text=None):
    """An element with optional attributes C{attrs} (strategies), children or text."""
    @st.composite
    def build(draw) -> str:
        xmlns = " xmlns='%s'" % ns if ns is not None else ""
        attributes = "".join(draw(a) for a in attrs)
        body = ""
        if children is not None:
            body = "".join(draw(st.lists(children, max_size=3)))
        elif text is not None:
            body = draw(text)
        return "<%s%s%s>%s</%s>" % (name, xmlns, attributes, body, name)
    return build()


def forms(formType=None):
    """A data form (XEP-0004), often a submission with a FORM_TYPE of C{formType}."""
    value = element("value", text=TEXT)
    field = element("field", attrs=[attr("var", st.one_of(TEXT, st.sampled_from([
        "FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids", "muc#roomconfig_roomname",
        "muc#roomconfig_persistentroom", "muc#roomconfig_whois", "muc#roomconfig_maxusers",
        "muc#roomconfig_membersonly", "muc#roomconfig_roomowners", "muc#roomconfig_passwordprotectedroom",
        "muc#roomconfig_roomsecret", "pubsub#access_model", "pubsub#max_items",
        "pubsub#persist_items", "pubsub#publish_model", "pubsub#notify_retract", "secret",
        "muc#register_roomnick", "pubsub#deliver_payloads"]))),
        attr("type", st.sampled_from(["boolean", "text-single", "list-multi", "jid-multi", "hidden",
                                       "fixed", "bogus"]))],
        children=value)
    formTypes = st.sampled_from([formType or "urn:xmpp:mam:2", NS_MUC + "#roomconfig",
                                 NS_PUBSUB + "#node_config", NS_PUBSUB + "#publish-options",
                                 NS_MUC + "#register", "urn:xmpp:push:summary"])
    formTypeField = formTypes.map(
        lambda t: "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % t)
    return element("x", NS_DATA, attrs=[attr("type", st.sampled_from(
        ["submit", "cancel", "form", "result", "bogus"]))],
        children=st.one_of(formTypeField, field))


RSM = element("set", "http://jabber.org/protocol/rsm", children=st.one_of(
    element("max", text=TEXT), element("before", text=TEXT), element("after", text=TEXT),
    element("index", text=TEXT), st.just("<before/>")))
ITEM = element("item", attrs=[attr("id"), attr("publisher", JIDS)], children=st.sampled_from([
    "<entry xmlns='http://www.w3.org/2005/Atom'><title>t</title></entry>",
    "<nick xmlns='http://jabber.org/protocol/nick'>n</nick>",
    "<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>",
    "<data xmlns='urn:xmpp:avatar:data'>aGVsbG8=</data>",
    "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='x' bytes='5' type='image/png'/></metadata>",
    "<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/>", "<x/>", "text"]))
PUBSUB_ACTIONS = st.one_of(
    element("publish", attrs=[attr("node", NODES)], children=ITEM),
    element("publish-options", children=forms(NS_PUBSUB + "#publish-options")),
    element("retract", attrs=[attr("node", NODES), attr("notify", st.sampled_from(["1", "true", "x"]))],
            children=ITEM),
    element("items", attrs=[attr("node", NODES), attr("max_items", TEXT), attr("subid")], children=ITEM),
    element("subscribe", attrs=[attr("node", NODES), attr("jid", JIDS)]),
    element("unsubscribe", attrs=[attr("node", NODES), attr("jid", JIDS), attr("subid")]),
    element("subscriptions", attrs=[attr("node", NODES)]),
    element("affiliations", attrs=[attr("node", NODES)]),
    element("options", attrs=[attr("node", NODES), attr("jid", JIDS)], children=forms()),
    element("create", attrs=[attr("node", NODES)]),
    element("configure", attrs=[attr("node", NODES)], children=forms(NS_PUBSUB + "#node_config")),
    element("default"))
PUBSUB_OWNER = st.one_of(
    element("configure", attrs=[attr("node", NODES)], children=forms(NS_PUBSUB + "#node_config")),
    element("delete", attrs=[attr("node", NODES)]), element("purge", attrs=[attr("node", NODES)]),
    element("default"),
    element("affiliations", attrs=[attr("node", NODES)], children=element(
        "affiliation", attrs=[attr("jid", JIDS), attr("affiliation", st.sampled_from(
            ["owner", "publisher", "member", "none", "outcast", "bogus"]))])),
    element("subscriptions", attrs=[attr("node", NODES)], children=element(
        "subscription", attrs=[attr("jid", JIDS), attr("subscription", st.sampled_from(
            ["subscribed", "none", "pending", "bogus"]))])))
MUC_ITEM = element("item", attrs=[
    attr("affiliation", st.sampled_from(["owner", "admin", "member", "none", "outcast", "bogus"])),
    attr("role", st.sampled_from(["moderator", "participant", "visitor", "none", "bogus"])),
    attr("jid", JIDS), attr("nick", TEXT)], children=element("reason", text=TEXT))

#: IQ payloads, by what they exercise.
IQ_PAYLOADS = st.one_of(
    element("query", "jabber:iq:roster", attrs=[attr("ver")], children=element(
        "item", attrs=[attr("jid", JIDS), attr("name"), attr("subscription", st.sampled_from(
            ["remove", "both", "none", "from", "to", "bogus"])), attr("ask")],
        children=element("group", text=TEXT))),
    element("query", "http://jabber.org/protocol/disco#info", attrs=[attr("node", NODES)]),
    element("query", "http://jabber.org/protocol/disco#items", attrs=[attr("node", NODES)]),
    element("query", "urn:xmpp:mam:2", attrs=[attr("queryid"), attr("node", NODES)],
            children=st.one_of(forms("urn:xmpp:mam:2"), RSM, st.just("<flip-page/>"))),
    element("prefs", "urn:xmpp:mam:2", attrs=[attr("default", st.sampled_from(
        ["always", "never", "roster", "bogus"]))], children=st.one_of(
        element("always", children=element("jid", text=JIDS)),
        element("never", children=element("jid", text=JIDS)))),
    element("metadata", "urn:xmpp:mam:2"),
    element("query", NS_MUC + "#admin", children=MUC_ITEM),
    element("query", NS_MUC + "#owner", children=st.one_of(
        forms(NS_MUC + "#roomconfig"),
        element("destroy", attrs=[attr("jid", JIDS)], children=element("reason", text=TEXT)))),
    element("query", "jabber:iq:register", children=st.one_of(
        element("username", text=TEXT), element("password", text=TEXT), forms(NS_MUC + "#register"),
        st.just("<remove/>"))),
    element("unique", NS_MUC + "#unique"),
    element("pubsub", NS_PUBSUB, children=PUBSUB_ACTIONS),
    element("pubsub", NS_PUBSUB + "#owner", children=PUBSUB_OWNER),
    element("vCard", "vcard-temp", children=st.one_of(
        element("FN", text=TEXT), element("NICKNAME", text=TEXT),
        element("PHOTO", children=st.one_of(element("TYPE", text=TEXT), element("BINVAL", text=st.one_of(
            TEXT, st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()))))))),
    element("query", "jabber:iq:private", children=st.sampled_from([
        "<storage xmlns='storage:bookmarks'><conference jid='%s' autojoin='1'/></storage>" % ROOMS[0],
        "<storage xmlns='storage:rosternotes'/>", "<x/>", "<x xmlns='jabber:client'/>",
        "<exodus xmlns='exodus:prefs'><defaultnick>x</defaultnick></exodus>"])),
    element("blocklist", "urn:xmpp:blocking"),
    element("block", "urn:xmpp:blocking", children=element("item", attrs=[attr("jid", JIDS)])),
    element("unblock", "urn:xmpp:blocking", children=element("item", attrs=[attr("jid", JIDS)])),
    element("query", "jabber:iq:privacy", children=st.one_of(
        element("active", attrs=[attr("name")]), element("default", attrs=[attr("name")]),
        element("list", attrs=[attr("name")], children=element("item", attrs=[
            attr("type", st.sampled_from(["jid", "group", "subscription", "bogus"])),
            attr("value", st.one_of(JIDS, st.sampled_from(["both", "none", "to", "from"]))),
            attr("action", st.sampled_from(["allow", "deny", "bogus"])),
            attr("order", TEXT)], children=st.sampled_from(
                ["<message/>", "<iq/>", "<presence-in/>", "<presence-out/>", "<bogus/>"]))))),
    st.sampled_from(["<enable xmlns='urn:xmpp:carbons:2'/>", "<disable xmlns='urn:xmpp:carbons:2'/>",
                     "<ping xmlns='urn:xmpp:ping'/>", "<query xmlns='jabber:iq:version'/>",
                     "<query xmlns='jabber:iq:last'/>", "<time xmlns='urn:xmpp:time'/>",
                     "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>",
                     "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind>",
                     "<unknown xmlns='urn:unknown'/>", "", "<a/><b/>",
                     "<services xmlns='urn:xmpp:extdisco:2'/>",
                     "<services xmlns='urn:xmpp:extdisco:2' type='turn'/>",
                     "<credentials xmlns='urn:xmpp:extdisco:2'><service host='x' type='turn'/></credentials>",
                     "<disable xmlns='urn:xmpp:push:0' jid='push.example'/>"]),
    element("enable", "urn:xmpp:push:0", attrs=[attr("jid", JIDS), attr("node")],
            children=forms("http://jabber.org/protocol/pubsub#publish-options")),
)

FORWARDED = element("forwarded", "urn:xmpp:forward:0", children=st.one_of(
    st.just("<delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/>"),
    element("message", "jabber:client", attrs=[attr("from", JIDS), attr("to", JIDS)],
            children=element("body", text=TEXT))))
MESSAGE_CHILDREN = st.one_of(
    element("body", text=TEXT), element("subject", text=TEXT), element("thread", text=TEXT),
    st.sampled_from(["<active xmlns='http://jabber.org/protocol/chatstates'/>",
                     "<request xmlns='urn:xmpp:receipts'/>", "<private xmlns='urn:xmpp:carbons:2'/>",
                     "<no-copy xmlns='urn:xmpp:hints'/>", "<store xmlns='urn:xmpp:hints'/>",
                     "<markable xmlns='urn:xmpp:chat-markers:0'/>"]),
    element("received", "urn:xmpp:carbons:2", children=FORWARDED),
    element("sent", "urn:xmpp:carbons:2", children=FORWARDED),
    element("result", "urn:xmpp:mam:2", attrs=[attr("queryid"), attr("id")], children=FORWARDED),
    element("x", NS_MUC + "#user", children=st.one_of(
        element("invite", attrs=[attr("to", JIDS)], children=element("reason", text=TEXT)),
        element("decline", attrs=[attr("to", JIDS)]), element("password", text=TEXT))),
    element("x", "jabber:x:conference", attrs=[attr("jid", JIDS), attr("password")]),
    element("event", NS_PUBSUB + "#event", children=element("items", attrs=[attr("node", NODES)],
                                                            children=ITEM)),
    forms(NS_MUC + "#request"))
PRESENCE_CHILDREN = st.one_of(
    element("show", text=st.one_of(TEXT, st.sampled_from(["away", "chat", "dnd", "xa"]))),
    element("status", text=TEXT), element("priority", text=TEXT),
    element("c", "http://jabber.org/protocol/caps", attrs=[
        attr("hash", st.sampled_from(["sha-1", "md5", "bogus"])), attr("node"), attr("ver")]),
    element("x", "vcard-temp:x:update", children=element("photo", text=TEXT)),
    element("x", NS_MUC, children=st.one_of(
        element("password", text=TEXT),
        element("history", attrs=[attr("maxstanzas"), attr("maxchars"), attr("seconds"),
                                  attr("since")]))),
    element("x", NS_MUC + "#user"), element("nick", "http://jabber.org/protocol/nick", text=TEXT))
NONZAS = st.one_of(
    element("enable", NS_SM, attrs=[attr("resume", st.sampled_from(["true", "1", "false", "x"])),
                                    attr("max")]),
    st.sampled_from(["<r xmlns='%s'/>" % NS_SM, "<active xmlns='urn:xmpp:csi:0'/>",
                     "<inactive xmlns='urn:xmpp:csi:0'/>"]),
    element("a", NS_SM, attrs=[attr("h", st.one_of(TEXT, st.integers(0, 5).map(str)))]),
    element("resume", NS_SM, attrs=[attr("h"), attr("previd")]))

TYPES = {"message": st.sampled_from([None, "chat", "normal", "groupchat", "headline", "error", "bogus"]),
         "presence": st.sampled_from([None, None, "unavailable", "subscribe", "subscribed",
                                      "unsubscribe", "unsubscribed", "probe", "error", "bogus"]),
         "iq": st.sampled_from(["get", "set", "get", "set", "result", "error", None, "bogus"])}
ERROR = st.sampled_from(["<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:"
                         "xmpp-stanzas'/></error>", "<error/>", ""])


@st.composite
def stanzas(draw, number: int):
    """
    One thing a client sends: a stanza (name, type, id, to, maybe from,
    children) or a nonza; returns (xml, kind, type, id, to, spoofed).
    """
    if draw(st.integers(0, 12)) == 0:
        return draw(NONZAS), "nonza", None, None, None, False
    kind = draw(st.sampled_from(["message", "presence", "iq", "iq", "iq"]))
    kindType = draw(TYPES[kind])
    ident = "s%d" % number if draw(st.integers(0, 15)) else None
    to = draw(TARGETS)
    if kind == "presence" and draw(st.booleans()):
        to = draw(st.sampled_from(ROOMS)) + "/" + draw(st.sampled_from(["jul", "rom", "x" * 50, ""]))
    sender = draw(st.sampled_from([None] * 8 + [JULIET, "juliet@" + DOMAIN, ROMEO, "evil@remote.example"]))
    if kind == "iq":
        body = draw(IQ_PAYLOADS) if kindType != "result" or draw(st.booleans()) else ""
    elif kind == "message":
        body = "".join(draw(st.lists(MESSAGE_CHILDREN, max_size=3)))
    else:
        body = "".join(draw(st.lists(PRESENCE_CHILDREN, max_size=3)))
    if kindType == "error":
        body += draw(ERROR)
    attrs = ""
    for name, value in (("type", kindType), ("id", ident), ("to", to), ("from", sender)):
        if value is not None:
            attrs += " %s='%s'" % (name, value)
    spoofed = sender is not None and sender not in (JULIET, "juliet@" + DOMAIN)
    return "<%s%s>%s</%s>" % (kind, attrs, body, kind), kind, kindType, ident, to, spoofed


@st.composite
def sessions(draw):
    return [draw(stanzas(n)) for n in range(draw(st.integers(1, 6)))]


class FuzzNode:
    """A node with every feature, MUC and pubsub, Juliet and Romeo logged in and available."""

    def __init__(self, tmp_path):
        self.node = quickNode(tmp_path)
        self.server = self.node.server
        LocalDomain(DOMAIN, self.server, features=FEATURES).startService()
        self.muc = makeMUCService(self.server, DOMAIN)
        self.muc.startService()
        self.pubsub = makePubSubService(self.server, DOMAIN)
        self.pubsub.startService()
        self.juliet = self.node.connect().login("juliet", "balcony")
        self.romeo = self.node.connect().login("romeo", "orchard")
        for client in (self.juliet, self.romeo):
            client.send("<presence/>")
        self.node.clock.advance(1)
        self.juliet.received()
        self.romeo.received()


#: Stream errors that are the defined answer to something a client may send:
#: a spoofed 'from' (RFC 6120 §8.1.2.1), stream management misuse (XEP-0198
#: §3, §5: an ack for more than was sent), a nonza out of place.
EXPECTED_STREAM_ERRORS = {"invalid-from", "undefined-condition", "unsupported-stanza-type",
                          "policy-violation", "not-authorized", "bad-format", "conflict"}


def tmpDir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def quickNode(tmp_path, **kwargs) -> Node:
    """
    A L{Node}, its accounts' SCRAM credentials computed once per password
    (the key derivation would otherwise cost more than the example).
    """
    with mock.patch.object(streamhelpers, "makeCredentials", _credentials):
        return Node(tmp_path, **kwargs)


_credentials = functools.lru_cache(maxsize=None)(streamhelpers.makeCredentials)


@profile()
@given(sent=sessions())
@example(sent=[("<iq type='get' id='s0' to='%s'><query xmlns='urn:xmpp:mam:2'><set xmlns="
                "'http://jabber.org/protocol/rsm'><max>-1</max></set></query></iq>" % DOMAIN,
                "iq", "get", "s0", DOMAIN, False)])
def test_stanzas(tmp_path_factory, sent):
    """
    Juliet sends generated stanzas and nonzas; see the module's docstring for
    the properties checked after each one.
    """
    with Logged() as logged:
        world = FuzzNode(tmpDir(tmp_path_factory))
        juliet, romeo = world.juliet, world.romeo
        for xml, kind, kindType, ident, to, spoofed in sent:
            juliet.send(xml)
            world.node.clock.advance(0.5)
            logged.check()
            reply = juliet.received()
            routed = romeo.received()
            if reply.closed or juliet.transport.disconnecting:
                # Only a spoofed sender, a nonza or the account's removal
                # may close the stream, and only with a stream error.
                assert spoofed or kind == "nonza" or "<remove/>" in xml, (xml, reply)
                assert reply.streamError in EXPECTED_STREAM_ERRORS, (xml, reply)
                assert reply.closed, (xml, reply)
                break
            assert reply.streamError is None, (xml, reply)
            # (A stanza Juliet addressed to herself comes back as it was.)
            answers = [e for e in reply.elements if e.name == "iq" and e.getAttribute("id") == ident
                       and e.getAttribute("type") in ("result", "error")
                       and e.getAttribute("from") != JULIET]
            if kind == "iq" and kindType in ("get", "set") and ident is not None and not spoofed:
                forwarded = [e for e in routed.elements + reply.elements
                             if e.name == "iq" and e.getAttribute("type") in ("get", "set")]
                assert len(answers) == 1 or (not answers and forwarded), (xml, reply, routed)
            if kindType == "error" or (kind == "iq" and kindType == "result"):
                # Never an error in reply to an error (RFC 6120 §8.3.1), nor
                # any answer to an IQ result.
                assert not [e for e in reply.elements if e.getAttribute("type") == "error"
                            and ident is not None and e.getAttribute("id") == ident
                            and e.getAttribute("from") != JULIET], (xml, reply)
                if kind == "iq":
                    assert not answers, (xml, reply)
            # Bounded state: two users' sessions (and what stream management
            # keeps for a detached one), the rooms and nodes named above.
            assert len(world.server.sessions) <= 3
            assert len(world.muc.rooms) <= len(ROOMS)
        logged.check()


# -- SASL and SASL2 ----------------------------------------------------------------

MECHANISMS = st.sampled_from(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                              "SCRAM-SHA-256-PLUS", "EXTERNAL", "ANONYMOUS", "DIGEST-MD5", "", "plain"])
PAYLOADS = st.one_of(
    st.just(""), st.just("="), st.just("!!notbase64"), TEXT,
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["\0juliet\0wrong", "juliet\0juliet\0" + PASSWORDS["juliet"],
                     "\0juliet\0" + PASSWORDS["juliet"], "n,,n=juliet,r=abc", "p=tls-unique,,n=juliet,r=x",
                     "n,a=romeo,n=juliet,r=x", "c=biws,r=x,p=AAAA", "\0\0", "n,,n=,r="]).map(
        lambda s: base64.b64encode(s.encode()).decode()))
SASL_STEPS = st.one_of(
    element("auth", NS_SASL, attrs=[attr("mechanism", MECHANISMS)], text=PAYLOADS),
    element("response", NS_SASL, text=PAYLOADS), element("abort", NS_SASL),
    element("authenticate", NS_SASL2, attrs=[attr("mechanism", MECHANISMS)], children=st.one_of(
        element("initial-response", text=PAYLOADS),
        element("user-agent", attrs=[attr("id")], children=st.one_of(
            element("software", text=TEXT), element("device", text=TEXT))),
        element("bind", "urn:xmpp:bind:0", children=element("tag", text=TEXT)),
        st.just("<enable xmlns='urn:xmpp:sm:3'/>"),
        element("resume", NS_SM, attrs=[attr("h"), attr("previd")]))),
    element("response", NS_SASL2, text=PAYLOADS), element("abort", NS_SASL2),
    st.just("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
    st.just("<iq type='get' id='x'><query xmlns='jabber:iq:version'/></iq>"),
    st.just("<message to='romeo@example.org'><body>hi</body></message>"))
#: The PLAIN responses that carry Juliet's password.
RIGHT = [base64.b64encode(s.encode()).decode() for s in (
    "juliet\0juliet\0" + PASSWORDS["juliet"], "\0juliet\0" + PASSWORDS["juliet"])]
SASL_REPLIES = {"success", "failure", "challenge", "continue", "features", "proceed", "error"}


@profile()
@given(steps=st.lists(SASL_STEPS, min_size=1, max_size=6))
@example(steps=["<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (
    NS_SASL, base64.b64encode(b"\0juliet\0" + PASSWORDS["juliet"].encode()).decode())])
def test_saslExchanges(tmp_path_factory, steps):
    """
    An unauthenticated client runs SASL and SASL2 exchanges with random
    mechanisms and payloads: nothing is logged as a failure, every answer is
    one the protocols define (or a stream error, which closes the stream),
    and only the right password authenticates.
    """
    with Logged() as logged:
        node = quickNode(tmpDir(tmp_path_factory))
        client = node.connect()
        client.exchange(header())
        for step in steps:
            reply = client.exchange(step)
            node.clock.advance(0.5)
            logged.check()
            if reply.closed or client.transport.disconnecting:
                assert reply.streamError is not None, (step, reply)
                break
            for element in reply.elements:
                assert element.name in SASL_REPLIES, (step, reply)
                if element.name == "success":
                    assert any(right in step for right in RIGHT), step
        logged.check()
