"""
Tests for L{xmppd.features.version}: XEP-0092 software version of the server.
"""

import xmppd
from tests.domainhelpers import Domain, errorCondition
from xmppd.features.version import NS_VERSION, operatingSystem

ROMEO = "romeo@example.org/orchard"


def child(element, name):
    """The text of C{element}'s child C{name}, or None."""
    for found in element.elements(NS_VERSION, name):
        return str(found)
    return None


def query(to):
    toAttr = " to='%s'" % to if to else ""
    # XEP-0092 Example 1, with our addresses.
    return ("<iq type='get' from='%s'%s id='version_1'>"
            "<query xmlns='jabber:iq:version'/></iq>" % (ROMEO, toAttr))


def answer(domain, to="example.org"):
    romeo = domain.bind(ROMEO)
    domain.send(query(to))
    [reply] = romeo.take()
    return reply


def test_nameAndVersion(tmp_path):
    """The server tells its name and version, and not its operating system by default (XEP-0092 security considerations)."""
    domain = Domain(tmp_path, features=("version",))

    reply = answer(domain)

    assert reply["type"] == "result" and reply["id"] == "version_1"
    assert reply["from"] == "example.org" and reply["to"] == ROMEO
    [result] = reply.elements(NS_VERSION, "query")
    assert child(result, "name") == "xmppd"
    assert child(result, "version") == xmppd.__version__
    assert child(result, "os") is None


def test_showOS(tmp_path):
    """With [version] show_os on, the operating system is told too."""
    domain = Domain(tmp_path, features=("version",), sections={"version": {"show_os": True}})

    reply = answer(domain)

    assert child(reply.query, "os") == operatingSystem() != ""


def test_accountsAreNotTheServer(tmp_path):
    """A version query to an account's bare JID is not answered for the server: service-unavailable."""
    domain = Domain(tmp_path, features=("version",))

    reply = answer(domain, to="juliet@example.org")

    assert errorCondition(reply) == "service-unavailable"
    assert reply["from"] == "juliet@example.org"


def test_disabled(tmp_path):
    """With the feature switched off, version queries get service-unavailable."""
    domain = Domain(tmp_path, features=())

    assert errorCondition(answer(domain)) == "service-unavailable"
