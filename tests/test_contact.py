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
