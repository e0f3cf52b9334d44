# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
The benchmark's accounts and rosters, written as one XEP-0227 (PIEFXIS)
document for C{xmppctl import}.

Two populations, named as ../shared/bench names them so either data set
serves either harness:

  - C{u1..uN}: plain accounts without a roster (logins, messages, idle);
  - C{p1..pP}: presence accounts in cliques of K+1, every member holding the
    K others in its roster with subscription C{both} (RFC 6121 §2.1.2.5), so
    one initial presence reaches K contacts and K probes come back.

The password of C{u17} is C{pw17}: the generator derives it from the name,
so the data set never has to travel to the load process.

Implements: XEP-0227 1.1 (accounts with a plain password, jabber:iq:roster).
"""

from collections.abc import Iterator
from xml.sax.saxutils import quoteattr

NS_PIE = "urn:xmpp:pie:0"
NS_ROSTER = "jabber:iq:roster"


def passwordFor(username: str) -> str:
    """The password of a benchmark account: C{u17} -> C{pw17}."""
    return "pw" + username[1:]


def cliques(presenceUsers: int, rosterSize: int) -> Iterator[list[str]]:
    """
    The presence accounts grouped in cliques of C{rosterSize + 1}; a
    remainder that cannot fill a clique is left out.
    """
    size = rosterSize + 1
    for first in range(1, presenceUsers - size + 2, size):
        yield ["p%d" % i for i in range(first, first + size)]


def presenceUserCount(presenceUsers: int, rosterSize: int) -> int:
    """How many presence accounts exist once the remainder is dropped."""
    return presenceUsers - presenceUsers % (rosterSize + 1)


def writePIE(path: str, domain: str, users: int, presenceUsers: int,
             rosterSize: int) -> int:
    """
    Write the data set to C{path} as XEP-0227 and return the number of
    accounts in it.
    """
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write("<?xml version='1.0' encoding='UTF-8'?>\n")
        out.write(f"<server-data xmlns='{NS_PIE}'>\n<host jid={quoteattr(domain)}>\n")
        for i in range(1, users + 1):
            name = "u%d" % i
            out.write(f"<user name='{name}' password='{passwordFor(name)}'/>\n")
            count += 1
        for clique in cliques(presenceUsers, rosterSize):
            for name in clique:
                items = "".join(f"<item jid='{contact}@{domain}' subscription='both'/>"
                                for contact in clique if contact != name)
                out.write(f"<user name='{name}' password='{passwordFor(name)}'>"
                          f"<query xmlns='{NS_ROSTER}'>{items}</query></user>\n")
                count += 1
        out.write("</host>\n</server-data>\n")
    return count
