"""
Tests for L{xmppd.features.register}: XEP-0077 in-band registration before login,
and password change and account removal after, with clients on in-memory
streams.
"""

import pytest
from twisted.words.protocols.jabber.jid import JID

from tests.streamhelpers import DOMAIN, PASSWORDS, Node, plain
from tests.test_router import parse
from xmppd.core.hooks import OBSERVE
from xmppd.config import ConfigError, loadConfig
from xmppd.core.jid import parseJID
from xmppd.features.register import (NS_FEATURE_REGISTER, NS_REGISTER, RegisterConfig,
                            RegisterHandler)
from xmppd.storage.interfaces import RosterItem

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
JULIET = "juliet@%s" % DOMAIN
ROMEO = "romeo@%s" % DOMAIN
OPEN = RegisterConfig(allow=True)


class World:
    """A node with the register feature, configured by C{settings}."""

    def __init__(self, tmp_path, settings=OPEN, **nodeArgs):
        self.node = Node(tmp_path, **nodeArgs)
        self.domain = self.node.server.router.routes[DOMAIN]
        self.handler = RegisterHandler(self.domain, settings)
        self.domain.addHandler(self.handler)
        self.storage = self.node.server.storage
        self.presence = []
        self.removed = []
        self.domain.hooks.add("presence/bare", self.recordPresence, OBSERVE)
        self.domain.hooks.add("account/removed", self.removed.append)

    def recordPresence(self, event):
        self.presence.append(event.stanza)
        return True

    def exists(self, user):
        return self.storage.users.userExists(user, DOMAIN).result

    def login(self, user, resource):
        return self.node.connect().login(user, resource)

    def canLogin(self, user, password):
        client = self.node.connect()
        client.start()
        return client.exchange(plain(user, password)).names == ["success"]


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def only(reply):
    [element] = reply.elements
    return element


def condition(stanza):
    assert stanza["type"] == "error", stanza.toXml()
    [error] = [e for e in stanza.elements() if e.name == "error"]
    return [c.name for c in error.elements() if c.uri == NS_STANZAS][0]


def registration(username="bill", password="Calliope-2", id="reg2", extra=""):
    fields = ""
    if username is not None:
        fields += "<username>%s</username>" % username
    if password is not None:
        fields += "<password>%s</password>" % password
    return ("<iq type='set' id='%s'><query xmlns='%s'>%s%s</query></iq>"
            % (id, NS_REGISTER, fields, extra))


# -- registration before authentication -----------------------------------


def test_featureOffered(world):
    """An unauthenticated stream of a domain open for registration is offered <register/> (§8)."""
    client = world.node.connect()
    assert (NS_FEATURE_REGISTER, "register") in client.start().featureNames()


def test_featureNotOfferedAfterLogin(world):
    """After authentication the register feature is no longer offered."""
    client = world.node.connect()
    reply = client.authenticate("juliet")
    assert (NS_FEATURE_REGISTER, "register") not in reply.featureNames()


def test_featureNotOfferedWhenClosed(tmp_path):
    """With registration off (the default) the feature is not offered."""
    world = World(tmp_path, RegisterConfig())
    client = world.node.connect()
    assert (NS_FEATURE_REGISTER, "register") not in client.start().featureNames()


def test_featureNotOfferedBeforeTLS(tmp_path):
    """When TLS is required, registration waits for it: no feature, and an IQ closes the stream."""
    world = World(tmp_path, c2s={"require_tls": True})
    client = world.node.connect()
    assert client.start().featureNames() == [("urn:ietf:params:xml:ns:xmpp-tls", "starttls")]
    reply = client.exchange(registration())
    assert reply.streamError == "not-authorized"
    assert not world.exists("bill")


def test_registrationForm(world):
    """A get returns the fields to fill in (§3.1, Example 2)."""
    client = world.node.connect()
    client.start()
    reply = client.exchange("<iq type='get' id='reg1' to='%s'><query xmlns='%s'/></iq>"
                            % (DOMAIN, NS_REGISTER))
    result = only(reply)
    assert result["type"] == "result" and result["id"] == "reg1"
    [query] = result.elements()
    assert (query.uri, query.name) == (NS_REGISTER, "query")
    assert [c.name for c in query.elements()] == ["instructions", "username", "password"]


def test_registerThenLogin(world):
    """An entity registers (§3.1, Examples 4-5) and then logs in with SASL on the same stream."""
    client = world.node.connect()
    client.start()
    reply = client.exchange(registration("bill", "Calliope-2"))
    result = only(reply)
    assert result["type"] == "result" and result["id"] == "reg2"
    assert list(result.elements()) == []
    assert world.exists("bill")
    assert client.exchange(plain("bill", "Calliope-2")).names == ["success"]


def test_usernamePrepared(world):
    """The chosen username is stored in its canonical (lowercase) form."""
    client = world.node.connect()
    client.start()
    client.exchange(registration("Bill"))
    assert world.exists("bill")


def test_conflict(world):
    """Registering a taken username gets conflict, without the password echoed (§3.1, Example 6)."""
    client = world.node.connect()
    client.start()
    error = only(client.exchange(registration("juliet", "m1cro$oft!")))
    assert condition(error) == "conflict"
    assert "m1cro$oft" not in error.toXml()
    assert world.canLogin("juliet", PASSWORDS["juliet"])


@pytest.mark.parametrize("username, password", [
    (None, "Calliope-2"), ("bill", None), ("bill", ""), ("", "Calliope-2"),
])
def test_missingInformation(world, username, password):
    """A missing or empty field gets not-acceptable and creates nothing (§3.1, Example 7)."""
    client = world.node.connect()
    client.start()
    error = only(client.exchange(registration(username, password)))
    assert condition(error) == "not-acceptable"
    assert not world.exists("bill")


def test_shortPassword(world):
    """A password shorter than min_password_length is refused with a reason."""
    client = world.node.connect()
    client.start()
    error = only(client.exchange(registration("bill", "short")))
    assert condition(error) == "not-acceptable"
    assert "8" in str(error.error.text)
    assert not world.exists("bill")


def test_invalidUsername(world):
    """A username that cannot be a JID localpart is refused."""
    client = world.node.connect()
    client.start()
    error = only(client.exchange(registration("bill&amp;ben")))
    assert condition(error) == "not-acceptable"
    assert world.storage.users.listUsers(DOMAIN).result == [
        ("juliet", DOMAIN), ("romeo", DOMAIN)]


def test_closedRegistrationUnavailable(tmp_path):
    """With registration off, get and set get service-unavailable (§3.1) and the stream goes on."""
    world = World(tmp_path, RegisterConfig())
    client = world.node.connect()
    client.start()
    error = only(client.exchange("<iq type='get' id='reg1'><query xmlns='%s'/></iq>"
                                 % NS_REGISTER))
    assert condition(error) == "service-unavailable"
    reply = client.exchange(registration())
    assert condition(only(reply)) == "service-unavailable" and not reply.closed
    assert not world.exists("bill")
    assert client.exchange(plain("juliet", PASSWORDS["juliet"])).names == ["success"]


def test_otherDomainsOnly(tmp_path):
    """Registration open for other domains only is closed on this one."""
    world = World(tmp_path, RegisterConfig(allow=True, domains=("other.example",)))
    client = world.node.connect()
    assert (NS_FEATURE_REGISTER, "register") not in client.start().featureNames()
    assert condition(only(client.exchange(registration()))) == "service-unavailable"


def test_oneAccountPerStream(world):
    """A stream that registered an account cannot register a second one (§3.1.1)."""
    client = world.node.connect()
    client.start()
    client.exchange(registration("bill"))
    error = only(client.exchange(registration("ben", id="reg3")))
    assert condition(error) == "not-acceptable"
    assert not world.exists("ben")


def test_throttledPerAddress(world):
    """One address registers once per interval_per_ip; other addresses are not held up."""
    first = world.node.connect("10.0.0.1")
    first.start()
    assert only(first.exchange(registration("bill")))["type"] == "result"

    second = world.node.connect("10.0.0.1")
    second.start()
    error = only(second.exchange(registration("ben")))
    assert condition(error) == "not-acceptable"
    assert error.error["type"] == "wait"

    elsewhere = world.node.connect("10.0.0.2")
    elsewhere.start()
    assert only(elsewhere.exchange(registration("ben")))["type"] == "result"

    world.node.clock.advance(60)
    later = world.node.connect("10.0.0.1")
    later.start()
    assert only(later.exchange(registration("benvolio")))["type"] == "result"


def test_failedRegistrationNotThrottled(world):
    """A refused registration does not use up the address's turn."""
    client = world.node.connect("10.0.0.1")
    client.start()
    assert condition(only(client.exchange(registration("juliet")))) == "conflict"
    assert only(client.exchange(registration("bill", id="reg3")))["type"] == "result"


def test_removeBeforeLogin(world):
    """A <remove/> before authentication gets unexpected-request (§3.2's table)."""
    client = world.node.connect()
    client.start()
    error = only(client.exchange("<iq type='set' id='unreg1'><query xmlns='%s'><remove/>"
                                 "</query></iq>" % NS_REGISTER))
    assert condition(error) == "unexpected-request"


def test_otherUnauthenticatedIQ(world):
    """IQs of other namespaces before authentication still close the stream."""
    client = world.node.connect()
    client.start()
    reply = client.exchange("<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
    assert reply.streamError == "not-authorized"


def test_requestWithoutId(world):
    """A registration request without an id is a bad-request (RFC 6120 §8.2.3)."""
    client = world.node.connect()
    client.start()
    reply = client.exchange("<iq type='get'><query xmlns='%s'/></iq>" % NS_REGISTER)
    assert condition(only(reply)) == "bad-request"


# -- authenticated ---------------------------------------------------------


def test_registeredInformation(world):
    """A logged-in user asking for the form learns they are registered, and as whom (§3.1, Example 3)."""
    juliet = world.login("juliet", "balcony")
    result = only(juliet.exchange("<iq type='get' id='reg1'><query xmlns='%s'/></iq>"
                                  % NS_REGISTER))
    [query] = result.elements()
    names = [c.name for c in query.elements()]
    assert "registered" in names
    assert str(query.username) == "juliet"


def test_changePassword(world):
    """A logged-in user changes their password (§3.3, Examples 18 and 19): the new one works, the old one not."""
    juliet = world.login("juliet", "balcony")
    reply = juliet.exchange("<iq type='set' to='%s' id='change1'><query xmlns='%s'>"
                            "<username>juliet</username><password>newpass-1</password>"
                            "</query></iq>" % (DOMAIN, NS_REGISTER))
    result = only(reply)
    assert result["type"] == "result" and result["id"] == "change1"
    assert world.canLogin("juliet", "newpass-1")
    assert not world.canLogin("juliet", PASSWORDS["juliet"])


@pytest.mark.parametrize("fields", [
    "<username>juliet</username><password/>",
    "<username>juliet</username>",
    "<password>newpass-1</password>",
    "<username>romeo</username><password>newpass-1</password>",
])
def test_changePasswordBadRequest(world, fields):
    """Incomplete requests, an empty password or someone else's username get bad-request and change nothing (§3.3)."""
    juliet = world.login("juliet", "balcony")
    error = only(juliet.exchange("<iq type='set' id='change1'><query xmlns='%s'>%s"
                                 "</query></iq>" % (NS_REGISTER, fields)))
    assert condition(error) == "bad-request"
    assert [c.name for c in error.elements()] == ["error"]  # the request is not echoed
    assert world.canLogin("juliet", PASSWORDS["juliet"])
    assert world.canLogin("romeo", PASSWORDS["romeo"])


def test_changePasswordTooShort(world):
    """A new password under min_password_length is refused with not-acceptable."""
    juliet = world.login("juliet", "balcony")
    error = only(juliet.exchange("<iq type='set' id='change1'><query xmlns='%s'>"
                                 "<username>juliet</username><password>abc</password>"
                                 "</query></iq>" % NS_REGISTER))
    assert condition(error) == "not-acceptable"
    assert world.canLogin("juliet", PASSWORDS["juliet"])


def test_changePasswordWhenRegistrationClosed(tmp_path):
    """Password change works even where in-band registration is off."""
    world = World(tmp_path, RegisterConfig())
    juliet = world.login("juliet", "balcony")
    reply = juliet.exchange("<iq type='set' id='change1'><query xmlns='%s'>"
                            "<username>juliet</username><password>newpass-1</password>"
                            "</query></iq>" % NS_REGISTER)
    assert only(reply)["type"] == "result"
    assert world.canLogin("juliet", "newpass-1")


def test_otherAccountRefused(world):
    """A register request to someone else's bare JID gets service-unavailable."""
    juliet = world.login("juliet", "balcony")
    error = only(juliet.exchange("<iq type='set' to='%s' id='unreg1'><query xmlns='%s'>"
                                 "<remove/></query></iq>" % (ROMEO, NS_REGISTER)))
    assert condition(error) == "service-unavailable"
    assert world.exists("romeo")


def test_remoteSenderRefused(world):
    """A register request from another server's user gets service-unavailable."""
    sent = []
    world.node.server.router.routes["montague.net"] = type(
        "R", (), {"deliver": lambda self, s: sent.append(s)})()
    world.domain.deliver(parse("<iq type='get' id='r1' from='romeo@montague.net/x' to='%s'>"
                               "<query xmlns='%s'/></iq>" % (DOMAIN, NS_REGISTER)))
    [error] = sent
    assert condition(error) == "service-unavailable"


def test_removeAccount(world):
    """Removing one's account answers result, then closes every session with not-authorized (§3.2)."""
    world.storage.accountData.set("juliet", DOMAIN, "vcard", "<vCard/>")
    balcony = world.login("juliet", "balcony")
    chamber = world.login("juliet", "chamber")
    reply = balcony.exchange("<iq type='set' id='unreg1'><query xmlns='%s'><remove/>"
                             "</query></iq>" % NS_REGISTER)
    result = reply.elements[0]
    assert result["type"] == "result" and result["id"] == "unreg1"
    assert reply.streamError == "not-authorized" and reply.closed
    other = chamber.received()
    assert other.streamError == "not-authorized" and other.closed
    assert not world.exists("juliet")
    assert world.storage.accountData.get("juliet", DOMAIN, "vcard").result is None
    assert [(e.username, e.domain) for e in world.removed] == [("juliet", DOMAIN)]
    assert not world.canLogin("juliet", PASSWORDS["juliet"])


def test_removeWithOtherChildren(world):
    """A <remove/> that is not alone in the query is a bad-request (§3.2's table)."""
    juliet = world.login("juliet", "balcony")
    error = only(juliet.exchange("<iq type='set' id='unreg1'><query xmlns='%s'><remove/>"
                                 "<username>juliet</username></query></iq>" % NS_REGISTER))
    assert condition(error) == "bad-request"
    assert world.exists("juliet")


def test_removeCancelsSubscriptions(world):
    """Contacts of a removed account get unavailable, unsubscribed and unsubscribe (§3.2)."""
    rosters = world.storage.rosters
    rosters.setItem("juliet", DOMAIN, RosterItem(ROMEO, subscription="both"))
    rosters.setItem("juliet", DOMAIN, RosterItem("nurse@%s" % DOMAIN, subscription="to"))
    juliet = world.login("juliet", "balcony")
    session = world.node.server.sessions.get(parseJID(juliet.jid))
    world.node.server.sessions.setAvailability(session.jid, True, 0)
    juliet.exchange("<iq type='set' id='unreg1'><query xmlns='%s'><remove/></query></iq>"
                    % NS_REGISTER)
    assert [(p["from"], p["to"], p["type"]) for p in world.presence] == [
        (JULIET, "nurse@%s" % DOMAIN, "unsubscribe"),
        (JULIET + "/balcony", ROMEO, "unavailable"),
        (JULIET, ROMEO, "unsubscribed"),
        (JULIET, ROMEO, "unsubscribe"),
    ]
    assert session.available is False


def test_disco(world):
    """The server announces jabber:iq:register (§10), even with registration closed."""
    assert list(world.handler.getDiscoInfo(JID(JULIET), JID(DOMAIN))) == [NS_REGISTER]
    assert world.handler.getDiscoInfo(JID(JULIET), JID(JULIET)) == []


# -- configuration -----------------------------------------------------------


def writeConfig(tmp_path, lines):
    path = tmp_path / "xmppd.toml"
    path.write_text("[server]\ndata_dir = %r\n[register]\n%s\n"
                    % (str(tmp_path / "data"), "\n".join(lines)))
    return str(path)


def test_configDefaults():
    """By default in-band registration is off, everywhere, with 8-character passwords."""
    settings = loadConfig(None).register
    assert settings == RegisterConfig(allow=False, domains=(), min_password_length=8,
                                      interval_per_ip=60.0)


def test_configDomainsNormalized(tmp_path):
    """Domains in [register] domains are compared in canonical form."""
    config = loadConfig(writeConfig(tmp_path, ["allow = true",
                                               'domains = ["Example.ORG"]']))
    assert config.register.domains == ("example.org",)


@pytest.mark.parametrize("line, key", [
    ('allow = "yes"', "register.allow"),
    ('domains = "example.org"', "register.domains"),
    ("min_password_length = 0", "register.min_password_length"),
    ("interval_per_ip = -1", "register.interval_per_ip"),
])
def test_configErrors(tmp_path, line, key):
    """A wrong [register] value stops the server with a message naming the key."""
    with pytest.raises(ConfigError) as raised:
        loadConfig(writeConfig(tmp_path, [line]))
    assert str(raised.value).startswith(key)

