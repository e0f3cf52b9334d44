"""
Tests for PEP data in XEP-0227 files (L{xmppd.cli.piepep}, §4.9 of v1.1):
the XEP's own example, what this server writes read back unchanged, bad
PEP data refused with one line, and C{xmppctl import}/C{export} moving an
account's PEP nodes from one store to an empty one.
"""

import pytest
import pytest_twisted

from tests.test_ctl import configPath, writeConfig, xmppctl  # noqa: F401 (a fixture)
from tests.test_ctl_pie import listUsers, withStorage, write
from xmppd.cli import pie, piepep
from xmppd.storage.interfaces import PubSubItem, PubSubNodeRecord, PubSubSubscription

ensureDeferred = pytest_twisted.ensureDeferred

JULIET = "juliet@example.org"
BOOKMARKS = "urn:xmpp:bookmarks:1"
NICK = "http://jabber.org/protocol/nick"


def parse(text, domains=("capulet.com", "example.org")):
    return pie.parse(text.encode("utf-8"), "test.xml", domains)


def only(data):
    (account,) = data.accounts
    return account


# XEP-0227 v1.1 Example 10, "Romeo's exported PEP data", as the XEP gives it.
XEP_EXAMPLE = """<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='capulet.com'>
    <user name='romeo' password='s3crEt'>
      <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>
        <configure node='urn:xmpp:bookmarks:1'>
          <x xmlns='jabber:x:data' type='form'>
            <field var='FORM_TYPE' type='hidden'>
              <value>http://jabber.org/protocol/pubsub#node_config</value>
            </field>
            <field var='pubsub#access_model'>
              <value>whitelist</value>
            </field>
          </x>
        </configure>
        <configure node='http://jabber.org/protocol/nick'>
          <x xmlns='jabber:x:data' type='form'>
            <field var='FORM_TYPE' type='hidden'>
              <value>http://jabber.org/protocol/pubsub#node_config</value>
            </field>
            <field var='pubsub#access_model'>
              <value>open</value>
            </field>
          </x>
        </configure>
      </pubsub>
      <pubsub xmlns='http://jabber.org/protocol/pubsub'>
        <items node='urn:xmpp:bookmarks:1'>
          <item id='theplay@conference.shakespeare.lit'>
            <conference xmlns='urn:xmpp:bookmarks:1'
                      name='The Play&apos;s the Thing'
                      autojoin='true'>
              <nick>Romeo</nick>
            </conference>
          </item>
          <item id='orchard@conference.shakespeare.lit'>
            <conference xmlns='urn:xmpp:bookmarks:1'
                      name='The Orchard'
                      autojoin='1'>
              <nick>Romeo</nick>
            </conference>
          </item>
        </items>
        <items node='http://jabber.org/protocol/nick'>
          <item id='current'>
            <nick xmlns='http://jabber.org/protocol/nick'>Romy</nick>
          </item>
        </items>
      </pubsub>
    </user>
  </host>
</server-data>
"""


def test_xepExample():
    """The XEP's own PEP example gives both nodes with their access model and items, oldest first."""
    data = parse(XEP_EXAMPLE)
    romeo = only(data)

    assert data.notes == []
    assert [(n.node, n.config) for n in romeo.pep] == [
        (BOOKMARKS, {"pubsub#access_model": "whitelist"}),
        (NICK, {"pubsub#access_model": "open"})]
    bookmarks, nick = romeo.pep
    assert [i.id for i in bookmarks.items] == [
        "theplay@conference.shakespeare.lit", "orchard@conference.shakespeare.lit"]
    assert nick.items[0].payload == "<nick xmlns='http://jabber.org/protocol/nick'>Romy</nick>"
    assert bookmarks.items[0].payload.startswith(
        "<conference xmlns='urn:xmpp:bookmarks:1' name='The Play&apos;s the Thing'")
    # Without a publisher or a time in the file: the account, at import time.
    assert {i.publisher for i in bookmarks.items} == {"romeo@capulet.com"}
    assert all(i.published > 1.6e9 for i in bookmarks.items)
    assert bookmarks.affiliations == {} and bookmarks.subscriptions == ()


NODES = [
    PubSubNodeRecord(
        BOOKMARKS, {"pubsub#access_model": "whitelist", "pubsub#max_items": "max",
                    "pubsub#contact": [JULIET], "pubsub#title": "Bälle & <Feste>"},
        (PubSubItem("a", "<conference xmlns='urn:xmpp:bookmarks:1' name='It&apos;s'>"
                         "<nick>J</nick></conference>", JULIET + "/balcony", 1700000000.25),
         PubSubItem("empty", "", JULIET, 3.0)),
        {JULIET: "owner", "nurse@example.org": "member", "tybalt@example.org": "outcast"},
        (PubSubSubscription(JULIET, BOOKMARKS, "romeo@example.org", "s1", "pending", {}),
         PubSubSubscription(JULIET, BOOKMARKS, "romeo@example.org/orchard", "s2",
                            "subscribed", {"pubsub#deliver": "1",
                                           "pubsub#show-values": ["chat", "online"]}))),
    PubSubNodeRecord(NICK, {}, (), {JULIET: "owner"}),
]


def test_roundTrip():
    """What the server writes for PEP nodes reads back the same, configuration, items, times, affiliations and subscriptions."""
    account = pie.Account("juliet", "example.org", password="p", pep=list(NODES))
    text = "".join(pie.serialize([account]))

    back = only(parse(text))

    assert back.pep == sorted(NODES, key=lambda n: n.node)
    assert "".join(pie.serialize([back])) == text


def test_writtenAsTheXEPSays():
    """Configurations go in one pubsub#owner element as node_config forms, items in one pubsub element, affiliations and subscriptions as XEP-0060 writes them."""
    account = pie.Account("juliet", "example.org", password="p", pep=list(NODES))
    lines = [line.strip() for line in "".join(pie.serialize([account])).splitlines()]

    assert lines.count("<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>") == 1
    assert "<configure node='urn:xmpp:bookmarks:1'>" in lines
    assert ("<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/"
            "pubsub#node_config</value></field>") in lines
    assert ("<field var='pubsub#contact' type='jid-multi'><value>juliet@example.org</value>"
            "</field>") in lines
    assert "<affiliation jid='nurse@example.org' affiliation='member'/>" in lines
    assert ("<subscription jid='romeo@example.org/orchard' subscription='subscribed' "
            "subid='s2'/>") in lines
    assert "<items node='urn:xmpp:bookmarks:1'>" in lines
    assert ("<item id='empty' publisher='juliet@example.org' "
            "xmppd:published='1970-01-01T00:00:03Z'/>") in lines


def test_otherServersFile():
    """Items without a configuration, subids and options, and unknown elements: the node is made, the subscription kept, the rest noted."""
    data = parse("""<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>
<user name='juliet' password='p'>
<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>
  <subscriptions node='urn:xmpp:avatar:data'>
    <subscription jid='romeo@example.org' subscription='subscribed'/>
    <subscription jid='paris@example.org' subscription='none'/>
  </subscriptions>
  <affiliations node='urn:xmpp:avatar:data'><affiliation jid='paris@example.org' affiliation='none'/></affiliations>
  <purge node='x'/>
</pubsub>
<pubsub xmlns='http://jabber.org/protocol/pubsub'>
  <items node='urn:xmpp:avatar:data'>
    <item id='1' publisher='juliet@example.org/phone'><data xmlns='urn:xmpp:avatar:data'>AAAA</data></item>
    <item id='2'/>
    <item id='1'><data xmlns='urn:xmpp:avatar:data'>BBBB</data></item>
  </items>
  <options node='urn:xmpp:avatar:data' jid='romeo@example.org'>
    <x xmlns='jabber:x:data' type='submit'><field var='pubsub#digest' type='boolean'><value>0</value></field></x>
  </options>
  <options node='urn:xmpp:avatar:data' jid='nobody@example.org'/>
</pubsub>
</user></host></server-data>""")
    (node,) = only(data).pep

    assert node.node == "urn:xmpp:avatar:data" and node.config == {}
    # The id given twice is a republication: the second is the newest.
    assert [(i.id, i.payload) for i in node.items] == [
        ("2", ""), ("1", "<data xmlns='urn:xmpp:avatar:data'>BBBB</data>")]
    assert node.affiliations == {}
    (subscription,) = node.subscriptions
    assert (subscription.service, subscription.jid, subscription.state,
            subscription.options) == (JULIET, "romeo@example.org", "subscribed",
                                      {"pubsub#digest": "0"})
    assert subscription.subid
    assert data.notes == [
        "skipped 1 <options xmlns='http://jabber.org/protocol/pubsub'> element: no single "
        "subscription listed before it matches",
        "skipped 1 <purge xmlns='http://jabber.org/protocol/pubsub#owner'> element: not "
        "expected in PEP data"]


def test_readForm():
    """Multi-valued field types give lists even with one value; FORM_TYPE and nameless fields are left out."""
    from twisted.words.xish.domish import Element
    form = Element((piepep.NS_DATA, "x"))
    for var, kind, values in [("FORM_TYPE", "hidden", ["x"]), (None, None, ["y"]),
                              ("a", "list-multi", ["1"]), ("b", None, ["1", "2"]),
                              ("c", "text-single", []), ("d", "jid-multi", [])]:
        field = form.addElement("field")
        if var:
            field["var"] = var
        if kind:
            field["type"] = kind
        for value in values:
            field.addElement("value", content=value)

    assert piepep.readForm(form) == {"a": ["1"], "b": ["1", "2"], "c": "", "d": []}


def pep(owner="", public=""):
    return (f"<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='example.org'>\n"
            f"<user name='juliet' password='p'>\n"
            f"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>{owner}</pubsub>\n"
            f"<pubsub xmlns='http://jabber.org/protocol/pubsub'>\n{public}</pubsub>\n"
            f"</user>\n</host></server-data>")


def items(inner, node="n"):
    return pep(public=f"<items node='{node}'>{inner}</items>")


@pytest.mark.parametrize("text, message", [
    (pep("<configure/>"), "test.xml:4: the PEP <configure> of juliet@example.org has no 'node'"),
    (pep("<configure node='n'/><configure node='n'/>"),
     "test.xml:4: PEP node 'n' of juliet@example.org is configured twice"),
    (items("", node=""), "test.xml:6: the PEP <items> of juliet@example.org has no 'node'"),
    (items("<item/>"), "test.xml:6: an item of PEP node 'n' of juliet@example.org has no 'id'"),
    (items("<item id='1'><a xmlns='x'/><b xmlns='x'/></item>"),
     "test.xml:6: item '1' of PEP node 'n' of juliet@example.org has more than one payload"),
    (items("<item id='1'>loose text</item>"),
     "test.xml:6: item '1' of PEP node 'n' of juliet@example.org has text outside its payload"),
    (items("<item id='1' publisher='a@@b'/>"),
     "test.xml:6: item '1' of PEP node 'n' of juliet@example.org: 'a@@b' is not a valid JID"),
    (items("<item xmlns:x='https://xmppd.example/pie' id='1' x:published='yesterday'/>"),
     "test.xml:6: item '1' of PEP node 'n' of juliet@example.org: published 'yesterday' is "
     "not a XEP-0082 date-time"),
    (items("<item xmlns:x='https://xmppd.example/pie' id='1' "
           "x:published='2020-01-01T00:00:00'/>"),
     "test.xml:6: item '1' of PEP node 'n' of juliet@example.org: published "
     "'2020-01-01T00:00:00' is not a XEP-0082 date-time"),
    (pep("<affiliations node='n'><affiliation jid='r@example.org' affiliation='king'/>"
         "</affiliations>"),
     "test.xml:4: an affiliation with PEP node 'n' of juliet@example.org: 'king' is not one "
     "of member, outcast, owner, publish-only, publisher"),
    (pep("<affiliations node='n'><affiliation jid='r@example.org/x' affiliation='member'/>"
         "</affiliations>"),
     "test.xml:4: an affiliation with PEP node 'n' of juliet@example.org: 'r@example.org/x' "
     "is not a bare JID"),
    (pep("<affiliations node='n'><affiliation affiliation='member'/></affiliations>"),
     "test.xml:4: an affiliation with PEP node 'n' of juliet@example.org has no 'jid'"),
    (pep("<subscriptions node='n'><subscription jid='r@example.org' subscription='yes'/>"
         "</subscriptions>"),
     "test.xml:4: a subscription to PEP node 'n' of juliet@example.org: 'yes' is not one of "
     "pending, subscribed, unconfigured"),
])
def test_badPEP(text, message):
    """Bad PEP data is refused with one line naming the file, the line, the account and the node."""
    with pytest.raises(pie.PIEError) as caught:
        parse(text)

    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


# xmppctl import and export

HAND_WRITTEN = """<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='example.org'>
    <user name='juliet' password='s3crEt'>
      <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>
        <configure node='urn:xmpp:bookmarks:1'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>
            <field var='pubsub#access_model'><value>whitelist</value></field>
            <field var='pubsub#persist_items'><value>true</value></field>
            <field var='pubsub#max_items'><value>max</value></field>
          </x>
        </configure>
        <configure node='urn:xmpp:omemo:2:devices'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='pubsub#access_model'><value>open</value></field>
          </x>
        </configure>
        <affiliations node='urn:xmpp:bookmarks:1'>
          <affiliation jid='juliet@example.org' affiliation='owner'/>
          <affiliation jid='nurse@example.org' affiliation='member'/>
        </affiliations>
        <subscriptions node='urn:xmpp:omemo:2:devices'>
          <subscription jid='romeo@example.org/orchard' subscription='subscribed' subid='r1'/>
        </subscriptions>
      </pubsub>
      <pubsub xmlns='http://jabber.org/protocol/pubsub'>
        <items node='urn:xmpp:bookmarks:1'>
          <item id='ball@conference.example.org' publisher='juliet@example.org/balcony'><conference xmlns='urn:xmpp:bookmarks:1' name='The Ball' autojoin='true'><nick>Juliet</nick></conference></item>
          <item id='crypt@conference.example.org'><conference xmlns='urn:xmpp:bookmarks:1' name='The Crypt'/></item>
        </items>
        <items node='urn:xmpp:omemo:2:devices'>
          <item id='current'><devices xmlns='urn:xmpp:omemo:2'><device id='12345'/></devices></item>
        </items>
      </pubsub>
    </user>
    <user name='romeo' password='montague'/>
  </host>
</server-data>
"""


async def readPEP(configPath, service=JULIET):
    """Everything the store holds of one PEP service."""
    async def read(storage):
        pubsub = storage.pubsub
        nodes = await pubsub.listNodes(service)
        return ([(n.node, n.config) for n in nodes],
                {n.node: await pubsub.getItems(service, n.node) for n in nodes},
                await pubsub.getAffiliations(service),
                await pubsub.getSubscriptions(service))
    return await withStorage(configPath, read)


@ensureDeferred
async def test_importHandWritten(tmp_path, configPath, capsys):
    """A hand-written XEP-0227 file's PEP nodes arrive with configuration, items newest last in the file, affiliations and subscriptions."""
    assert await xmppctl(configPath, "import", write(tmp_path, "in.xml", HAND_WRITTEN)) == 0

    assert capsys.readouterr().out == (
        "imported 2 new accounts and 0 replaced (0 roster items, 0 vCards, 0 private XML "
        "namespaces, 0 offline messages, 2 PEP nodes with 3 items; 2 passwords hashed)\n")
    nodes, items, affiliations, subscriptions = await readPEP(configPath)
    assert nodes == [
        ("urn:xmpp:bookmarks:1", {"pubsub#access_model": "whitelist",
                                  "pubsub#persist_items": "true", "pubsub#max_items": "max"}),
        ("urn:xmpp:omemo:2:devices", {"pubsub#access_model": "open"})]
    bookmarks = items["urn:xmpp:bookmarks:1"]
    assert [i.id for i in bookmarks] == ["crypt@conference.example.org",
                                         "ball@conference.example.org"]
    assert bookmarks[1].publisher == "juliet@example.org/balcony"
    assert bookmarks[0].payload == ("<conference xmlns='urn:xmpp:bookmarks:1' "
                                    "name='The Crypt'/>")
    assert affiliations == [("urn:xmpp:bookmarks:1", JULIET, "owner"),
                            ("urn:xmpp:bookmarks:1", "nurse@example.org", "member"),
                            ("urn:xmpp:omemo:2:devices", JULIET, "owner")]
    assert subscriptions == [PubSubSubscription(
        JULIET, "urn:xmpp:omemo:2:devices", "romeo@example.org/orchard", "r1", "subscribed",
        {})]
    assert await readPEP(configPath, "romeo@example.org") == ([], {}, [], [])


@ensureDeferred
async def test_roundTripIntoEmptyStore(tmp_path, configPath, capsys):
    """Export, then import into an empty server, gives the same PEP data, times included, and the same file again."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", HAND_WRITTEN))
    first = str(tmp_path / "first.xml")
    assert await xmppctl(configPath, "export", first) == 0
    (tmp_path / "other").mkdir()
    other = writeConfig(tmp_path / "other")

    assert await xmppctl(other, "import", first) == 0
    second = str(tmp_path / "second.xml")
    assert await xmppctl(other, "export", second) == 0

    assert await readPEP(other) == await readPEP(configPath)
    assert open(first).read() == open(second).read()
    assert "xmppd:published=" in open(first).read()
    assert capsys.readouterr().err == ""


@ensureDeferred
async def test_badPEPChangesNothing(tmp_path, configPath, capsys):
    """A file with bad PEP data is refused with one line, and no account of it is created."""
    path = write(tmp_path, "bad.xml", HAND_WRITTEN.replace("affiliation='member'",
                                                           "affiliation='friend'"))

    assert await xmppctl(configPath, "import", path) == 1

    assert capsys.readouterr().err == (
        f"xmppctl: {path}:21: an affiliation with PEP node 'urn:xmpp:bookmarks:1' of "
        f"juliet@example.org: 'friend' is not one of member, outcast, owner, publish-only, "
        f"publisher; nothing changed\n")
    assert await listUsers(configPath) == []
    assert await readPEP(configPath) == ([], {}, [], [])


@ensureDeferred
async def test_replaceTakesFilePEPOnlyWhenGiven(tmp_path, configPath, capsys):
    """--replace makes the file's nodes the account's whole PEP service, but a file without PEP data leaves it alone."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", HAND_WRITTEN))
    withoutPEP = write(tmp_path, "plain.xml",
                       "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
                       "<user name='juliet' password='new'/></host></server-data>")
    assert await xmppctl(configPath, "import", "--replace", withoutPEP) == 0
    assert len((await readPEP(configPath))[0]) == 2

    nick = write(tmp_path, "nick.xml", pep(
        public="<items node='http://jabber.org/protocol/nick'><item id='current'>"
               "<nick xmlns='http://jabber.org/protocol/nick'>Jules</nick></item></items>"))
    assert await xmppctl(configPath, "import", "--replace", nick) == 0

    nodes, items, affiliations, _ = await readPEP(configPath)
    assert nodes == [(NICK, {})]
    assert [i.payload for i in items[NICK]] == [
        "<nick xmlns='http://jabber.org/protocol/nick'>Jules</nick>"]
    assert affiliations == [(NICK, JULIET, "owner")]


@ensureDeferred
async def test_exportSkipsDamagedPayload(tmp_path, configPath, capsys):
    """A stored item that is not well-formed XML is left out of the export with a warning; the rest is exported."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", HAND_WRITTEN))
    await withStorage(configPath, lambda storage: storage.pubsub.publish(
        JULIET, "urn:xmpp:bookmarks:1", PubSubItem("broken", "<conference", JULIET, 5.0)))
    capsys.readouterr()
    out = str(tmp_path / "out.xml")

    assert await xmppctl(configPath, "export", out) == 0

    assert capsys.readouterr().err == (
        "xmppctl: warning: skipped item 'broken' of PEP node 'urn:xmpp:bookmarks:1' of "
        "juliet@example.org: not well-formed\n")
    (juliet, _) = pie.parse(open(out, "rb").read(), out).accounts
    assert [len(node.items) for node in juliet.pep] == [2, 1]


@ensureDeferred
async def test_removedAccountExportsNoPEP(tmp_path, configPath, capsys):
    """After deluser, an export has no trace of the account's PEP nodes, nor of its subscriptions elsewhere."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", HAND_WRITTEN))
    await withStorage(configPath, lambda storage: storage.pubsub.setSubscription(
        PubSubSubscription(JULIET, "urn:xmpp:bookmarks:1", "romeo@example.org", "x",
                           "subscribed", {})))

    assert await xmppctl(configPath, "deluser", "romeo@example.org") == 0
    assert (await readPEP(configPath))[3] == []
    assert await xmppctl(configPath, "deluser", JULIET) == 0
    assert await readPEP(configPath) == ([], {}, [], [])


@ensureDeferred
async def test_storeRefusalIsOneLine(tmp_path, configPath, capsys, monkeypatch):
    """Should the store refuse PEP data the file checks let through, xmppctl says so in one line and keeps no new account."""
    def refuse(record):
        raise ValueError("not an affiliation: 'owner' (juliet@example.org)")

    monkeypatch.setattr(PubSubNodeRecord, "check", refuse)
    path = write(tmp_path, "in.xml", HAND_WRITTEN)

    assert await xmppctl(configPath, "import", path) == 1

    assert capsys.readouterr().err == (
        "xmppctl: storage: not an affiliation: 'owner' (juliet@example.org); removed the 0 "
        "accounts this import had created\n")
    assert await listUsers(configPath) == []
