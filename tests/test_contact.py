"""
Tests for L{xmppd.features.contact}: XEP-0157 contact addresses in the domain's disco#info.
"""

import pytest

from tests.domainhelpers import Domain
from xmppd.config import ConfigError
from xmppd.features.contact import NS_SERVERINFO

ROMEO = "romeo@example.org/orchard"
NS_DATA = "jabber:x:data"


def serverInfo(domain):
    romeo = domain.bind(ROMEO)
    domain.send("<iq type='get' id='disco1' from='%s' to='example.org'>"
                "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % ROMEO)
    [reply] = romeo.take()
    return reply


def forms(reply):
    return list(reply.query.elements(NS_DATA, "x"))


def fields(form):
    return {f["var"]: (f.getAttribute("type"), [str(v) for v in f.elements(NS_DATA, "value")])
            for f in form.elements(NS_DATA, "field")}


def test_addressesInDisco(tmp_path):
    """The configured addresses appear in the server's disco#info as a serverinfo form (XEP-0157 §3)."""
    domain = Domain(tmp_path, features=("disco", "contact"), sections={"contact": {
        "abuse": ["mailto:abuse@example.org", "xmpp:abuse@example.org"],
        "support": ["https://example.org/support"]}})

    [form] = forms(serverInfo(domain))

    assert form["type"] == "result"
    assert fields(form) == {
        "FORM_TYPE": ("hidden", [NS_SERVERINFO]),
        "abuse-addresses": ("list-multi", ["mailto:abuse@example.org", "xmpp:abuse@example.org"]),
        "support-addresses": ("list-multi", ["https://example.org/support"]),
    }


def test_noAddressesNoForm(tmp_path):
    """With no address configured, disco#info carries no serverinfo form."""
    domain = Domain(tmp_path, features=("disco", "contact"))

    assert forms(serverInfo(domain)) == []


@pytest.mark.parametrize("value, message", [
    ("mailto:abuse@example.org", "contact.abuse: expected a list of URIs"),
    (["abuse@example.org"], 'contact.abuse: "abuse@example.org" is not a URI'),
    ([3], "contact.abuse: 3 is not a URI"),
])
def test_badAddressesRefused(tmp_path, value, message):
    """An address that is not a URI stops the server with a message naming the key."""
    with pytest.raises(ConfigError) as failed:
        Domain(tmp_path, sections={"contact": {"abuse": value}})

    assert str(failed.value).startswith(message)


def test_adminsDefaultToServerAdmins(tmp_path):
    """With no admin addresses set, the server admins are published as xmpp: URIs (XEP-0157)."""
    domain = Domain(tmp_path, features=("disco", "contact"), sections={
        "server": {"admins": ["Admin@Example.org", "ops@example.net"]}})

    [form] = forms(serverInfo(domain))

    assert fields(form)["admin-addresses"] == (
        "list-multi", ["xmpp:admin@example.org", "xmpp:ops@example.net"])


def test_explicitAdminAddressesWin(tmp_path):
    """Configured admin addresses replace the server admins in the form."""
    domain = Domain(tmp_path, features=("disco", "contact"), sections={
        "server": {"admins": ["admin@example.org"]},
        "contact": {"admin": ["mailto:root@example.org"]}})

    [form] = forms(serverInfo(domain))

    assert fields(form)["admin-addresses"] == ("list-multi", ["mailto:root@example.org"])


@pytest.mark.parametrize("value, message", [
    ("admin@example.org", "server.admins: expected a list of bare JIDs"),
    (["example.org"], 'server.admins: "example.org" is not an account\'s JID'),
    (["admin@example.org/desk"], 'server.admins: "admin@example.org/desk" has a resource'),
    (["a b@example.org"], 'server.admins: "a b@example.org" has an invalid user part'),
    (["admin@exa mple.org"], 'server.admins: "admin@exa mple.org" has an invalid domain'),
    ([7], "server.admins: expected bare JIDs (strings), got 7"),
])
def test_badAdminsRefused(tmp_path, value, message):
    """An admins entry that is not a bare JID stops the server with a message naming the key."""
    with pytest.raises(ConfigError) as failed:
        Domain(tmp_path, sections={"server": {"admins": value}})

    assert str(failed.value).startswith(message)
