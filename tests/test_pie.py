"""
Tests for L{xmppd.cli.pie}, the XEP-0227 reader and writer: the XEP's own
examples, what Prosody and ejabberd write, round trips, and every kind of
bad file refused with one line that names the file and line.
"""

import base64

import pytest

from xmppd.cli import pie
from xmppd.core.scram import checkPassword, deriveCredential
from xmppd.storage.interfaces import PubSubNodeRecord, RosterItem

DOMAINS = ("capulet.lit", "example.org")


def parse(text, domains=DOMAINS, include=None, source="test.xml"):
    return pie.parse(text.encode("utf-8"), source, domains, include)


def only(data):
    (account,) = data.accounts
    return account


def credentialXML(mechanism, credential):
    b64 = lambda value: base64.b64encode(value).decode()  # noqa: E731
    return (f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mechanism}'>"
            f"<iter-count>{credential.iterations}</iter-count>"
            f"<salt>{b64(credential.salt)}</salt>"
            f"<server-key>{b64(credential.serverKey)}</server-key>"
            f"<stored-key>{b64(credential.storedKey)}</stored-key>"
            f"</scram-credentials>")


SHA1 = deriveCredential("sha1", "s3crEt")
SHA256 = deriveCredential("sha256", "s3crEt")

# XEP-0227 §4's examples, assembled as v1.1 writes them (SCRAM, no password).
XEP_EXAMPLE = f"""<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='capulet.lit'>
    <user name='juliet'>
      {credentialXML("SCRAM-SHA-1", SHA1)}
      {credentialXML("SCRAM-SHA-256", SHA256)}
      <query xmlns='jabber:iq:roster'>
        <item jid='romeo@montague.lit'
              name='Romeo'
              subscription='both'>
          <group>Friends</group>
        </item>
      </query>
      <offline-messages>
        <message xmlns='jabber:client'
                 from='romeo@montague.lit/orchard'
                 to='juliet@capulet.lit/balcony'
                 type='chat'>
          <body>Neither, fair saint, if either thee dislike.</body>
          <delay xmlns='urn:xmpp:delay' from='capulet.lit' stamp='1469-07-21T00:32:29Z'/>
        </message>
      </offline-messages>
      <vCard xmlns='vcard-temp'>
        <FN>Juliet Capulet</FN>
      </vCard>
      <query xmlns='jabber:iq:private'>
        <exodus xmlns='exodus:prefs'>
          <defaultnick>Hamlet</defaultnick>
        </exodus>
      </query>
    </user>
  </host>
</server-data>
"""


def test_xepExample():
    """Every kind of data in the XEP's examples is read, credentials, roster, messages, vCard and private XML."""
    data = parse(XEP_EXAMPLE)
    juliet = only(data)

    assert (juliet.username, juliet.domain, juliet.password) == ("juliet", "capulet.lit", None)
    assert juliet.credentials == {"SCRAM-SHA-1": SHA1, "SCRAM-SHA-256": SHA256}
    assert juliet.roster == {"romeo@montague.lit": RosterItem(
        "romeo@montague.lit", "Romeo", "both", groups=("Friends",))}
    assert juliet.vcard.startswith("<vCard xmlns='vcard-temp'>")
    assert "<FN>Juliet Capulet</FN>" in juliet.vcard
    assert list(juliet.private) == ["exodus:prefs"]
    assert juliet.private["exodus:prefs"].startswith("<exodus xmlns='exodus:prefs'>")
    (message,) = juliet.offline
    assert message.startswith("<message xmlns='jabber:client' ")
    assert "<delay xmlns='urn:xmpp:delay'" in message
    assert data.notes == []


def test_prosodyFile():
    """A Prosody per-user file with a plain password, a pending request and PEP data imports, an unconfigured PEP node included."""
    # prosody-migrator's xep0227 store: one <server-data> per user; pending
    # inbound requests are <presence/> children written without an xmlns,
    # extra account fields are namespaced attributes.
    data = parse("""<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>
<user xmlns:ext='http://prosody.im/protocol/extended-xep0227' ext:created='1' name='Juliet' password='s3crEt'>
<query version='3' xmlns='jabber:iq:roster'>
<item jid='romeo@example.org' subscription='to' ask='subscribe' name='Romeo'><group>Friends</group><group>Verona</group></item>
</query>
<presence from='nurse@example.org' type='subscribe'/>
<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'/></pubsub>
<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'/>
</user></host></server-data>""")
    juliet = only(data)

    assert juliet.jid == "juliet@example.org"
    assert juliet.password == "s3crEt"
    assert juliet.roster == {
        "romeo@example.org": RosterItem("romeo@example.org", "Romeo", "to", True,
                                        ("Friends", "Verona")),
        "nurse@example.org": RosterItem("nurse@example.org", pendingIn=True),
    }
    assert juliet.pep == [PubSubNodeRecord("urn:xmpp:avatar:data")]
    assert data.notes == []


def test_ejabberdFile():
    """An ejabberd export, in the provisional namespace with 'scram:' passwords, subscription requests and privacy lists, imports."""
    b64 = lambda value: base64.b64encode(value).decode()  # noqa: E731
    scram = f"scram:{b64(SHA1.storedKey)},{b64(SHA1.serverKey)},{b64(SHA1.salt)},4096"
    data = parse(f"""<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns' xmlns:xi='http://www.w3.org/2001/XInclude'>
<host xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns' jid='example.org'>
<user name='juliet' password='{scram}'><query xmlns='jabber:iq:roster'><item subscription='from' jid='romeo@example.org' name='Romeo'/></query><presence xmlns='jabber:client' from='romeo@example.org' to='juliet@example.org' type='subscribe'><status>Wherefore art thou?</status></presence><query xmlns='jabber:iq:privacy'><list name='x'/></query></user>
<user name='nurse' password='plain'/>
</host></server-data>""")
    juliet, nurse = data.accounts

    assert juliet.password is None
    assert juliet.credentials == {"SCRAM-SHA-1": SHA1}
    assert checkPassword("SCRAM-SHA-1", juliet.credentials["SCRAM-SHA-1"], "s3crEt")
    assert juliet.roster == {"romeo@example.org": RosterItem(
        "romeo@example.org", "Romeo", "from", pendingIn=True,
        pendingInStatus="Wherefore art thou?")}
    assert nurse.password == "plain"
    assert data.notes == ["skipped 1 <query xmlns='jabber:iq:privacy'> element: not imported"]


def test_xinclude():
    """A main file including host files which include user files, as ejabberd and XEP-0227 §5 lay them out, imports every user."""
    files = {
        "dir/capulet.lit.xml": b"<host xmlns='urn:xmpp:pie:0' jid='capulet.lit' "
                               b"xmlns:xi='http://www.w3.org/2001/XInclude'>"
                               b"<xi:include href='capulet.lit/juliet.xml'/></host>",
        "dir/capulet.lit/juliet.xml": b"<user xmlns='urn:xmpp:pie:0' name='juliet' "
                                      b"password='x'/>",
        "dir/example.org.xml": b"<host xmlns='urn:xmpp:pie:0' jid='example.org'>"
                               b"<user name='romeo' password='y'/></host>",
    }
    asked = []

    def include(href, source):
        asked.append((href, source))
        path = source.rpartition("/")[0] + "/" + href
        return path, files[path]

    data = parse("<server-data xmlns='urn:xmpp:pie:0' "
                 "xmlns:xi='http://www.w3.org/2001/XInclude'>"
                 "<xi:include href='capulet.lit.xml'/><xi:include href='example.org.xml'/>"
                 "</server-data>", include=include, source="dir/main.xml")

    assert [account.jid for account in data.accounts] == [
        "juliet@capulet.lit", "romeo@example.org"]
    assert asked == [("capulet.lit.xml", "dir/main.xml"),
                     ("capulet.lit/juliet.xml", "dir/capulet.lit.xml"),
                     ("example.org.xml", "dir/main.xml")]


def test_roundTrip():
    """What serialize writes parses back to the same accounts, every field included."""
    accounts = [
        pie.Account("romeo", "example.org", credentials={"SCRAM-SHA-1": SHA1}),
        pie.Account(
            "juliet", "capulet.lit", password="it's <me> & \"you\"",
            credentials={"SCRAM-SHA-256": SHA256},
            roster={
                "romeo@example.org": RosterItem("romeo@example.org", "Romeo & Co", "both",
                                                groups=("Friends", "<Verona>")),
                "nurse@capulet.lit": RosterItem("nurse@capulet.lit", None, "none", True,
                                                approved=True),
                "tybalt@capulet.lit": RosterItem(
                    "tybalt@capulet.lit", pendingIn=True, pendingInStatus="let me in",
                    pendingInExtensions="<nick xmlns='http://jabber.org/protocol/nick'>"
                                        "Tybalt &amp; co</nick>"),
                "paris@capulet.lit": RosterItem("paris@capulet.lit", subscription="from",
                                                pendingIn=True),
            },
            vcard="<vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>",
            private={"storage:bookmarks": "<storage xmlns='storage:bookmarks'/>"
                                          "<storage xmlns='storage:bookmarks'><x/></storage>"},
            offline=["<message xmlns='jabber:client' type='chat'><body>1</body></message>",
                     "<message xmlns='jabber:client'><body>2\n3</body></message>"]),
    ]
    text = "".join(pie.serialize(accounts))

    back = parse(text).accounts

    assert back == sorted(accounts, key=lambda account: account.domain)
    assert "".join(pie.serialize(back)) == text


def test_serializeIsReadable():
    """The export has one element per line and hosts and users in order, so two exports diff cleanly."""
    accounts = [pie.Account("b", "example.org", credentials={"SCRAM-SHA-1": SHA1},
                            roster={"x@y": RosterItem("x@y", subscription="both")}),
                pie.Account("a", "example.org", credentials={"SCRAM-SHA-1": SHA1})]
    lines = "".join(pie.serialize(accounts)).splitlines()

    assert lines[:4] == ["<?xml version='1.0' encoding='UTF-8'?>",
                         "<server-data xmlns='urn:xmpp:pie:0'>",
                         "  <host jid='example.org'>",
                         "    <user name='a'>"]
    assert "        <item jid='x@y' subscription='both'/>" in lines
    assert lines[-2:] == ["  </host>", "</server-data>"]


def test_offlineMessageWithoutNamespace():
    """An offline message written without an xmlns is stored in jabber:client, the namespace §4.4 gives it."""
    account = only(parse(
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
        "<user name='a' password='p'><offline-messages><message to='a@example.org'>"
        "<body>hi</body><x xmlns='jabber:x:oob'><url>u</url></x></message>"
        "</offline-messages></user></host></server-data>"))

    assert account.offline == [
        "<message xmlns='jabber:client' to='a@example.org'><body>hi</body>"
        "<x xmlns='jabber:x:oob'><url>u</url></x></message>"]


def test_privateXMLByNamespace():
    """Private XML is kept per namespace, several elements of one namespace together, and namespace-less data is noted as skipped."""
    data = parse(
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
        "<user name='a' password='p'><query xmlns='jabber:iq:private'>"
        "<a xmlns='urn:x'/><b xmlns='urn:x'>1</b><c xmlns='urn:y'/><d xmlns=''/>"
        "</query></user></host></server-data>")

    assert only(data).private == {"urn:x": "<a xmlns='urn:x'/><b xmlns='urn:x'>1</b>",
                                  "urn:y": "<c xmlns='urn:y'/>"}
    assert data.notes == ["skipped 1 <d> element: private XML needs a namespace of its own"]


def test_unsupportedMechanismNoted():
    """SCRAM credentials for hashes the server lacks are noted and skipped; the account keeps the others."""
    data = parse(
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
        f"<user name='a'>{credentialXML('SCRAM-SHA-512', SHA256)}"
        f"{credentialXML('SCRAM-SHA-1', SHA1)}</user></host></server-data>")

    assert only(data).credentials == {"SCRAM-SHA-1": SHA1}
    assert data.notes == ["skipped 1 <scram-credentials xmlns='urn:xmpp:pie:0#scram'> "
                          "element: mechanism 'SCRAM-SHA-512' is not supported"]


def test_emptyVCardIsNoVCard():
    """An empty vCard imports as none, as setting an empty one deletes it."""
    assert only(parse(
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
        "<user name='a' password='p'><vCard xmlns='vcard-temp'/></user></host>"
        "</server-data>")).vcard is None


def user(inner="", attributes="name='juliet' password='p'", host="example.org"):
    return (f"<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='{host}'>\n"
            f"<user {attributes}>{inner}</user>\n</host></server-data>")


def roster(item):
    return user(f"\n<query xmlns='jabber:iq:roster'>{item}</query>")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<server-data xmlns='urn:xmpp:pie:0'>&lol2;</server-data>"""


@pytest.mark.parametrize("text, message", [
    ("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>",
     "test.xml:1: not well-formed XML: no element found"),
    ("", "test.xml:1: not well-formed XML: no element found"),
    (BILLION_LAUGHS, "test.xml:2: DOCTYPE and entity declarations are not allowed"),
    ("<server-data xmlns='urn:xmpp:pie:0'>&lol;</server-data>",
     "test.xml:1: not well-formed XML: undefined entity"),
    ("<roster xmlns='jabber:iq:roster'/>",
     "test.xml:1: expected <server-data xmlns='urn:xmpp:pie:0'> as the root element, "
     "found <roster> in namespace 'jabber:iq:roster'; is this a XEP-0227 file?"),
    (user(host="montague.lit"),
     "test.xml:2: host montague.lit is not served here "
     "(server.domains: capulet.lit, example.org)"),
    (user(host="a@b"), "test.xml:2: host jid 'a@b' is not a domain"),
    ("<server-data xmlns='urn:xmpp:pie:0'><host/></server-data>",
     "test.xml:1: <host> has no 'jid' attribute"),
    (user(attributes="password='p'"), "test.xml:3: <user> has no 'name' attribute"),
    (user(attributes="name='ju liet' password='p'"),
     "test.xml:3: user name 'ju liet' is not a valid username (invalid localpart: "),
    (user(attributes="name='juliet'"),
     "test.xml:3: juliet@example.org has neither a password nor SCRAM-SHA-1 or "
     "SCRAM-SHA-256 credentials"),
    (user(attributes="name='juliet' password='\x07'"),
     "test.xml:3: not well-formed XML: not well-formed (invalid token)"),
    (user(attributes="name='juliet' password='\u0085'"),
     "test.xml:3: the password of juliet@example.org has characters PRECIS forbids"),
    (user(attributes="name='juliet' password='scram:a,b'"),
     "test.xml:3: the password of juliet@example.org looks like ejabberd's 'scram:' form"),
    (roster("<item jid='romeo@@montague.lit'/>"),
     "test.xml:4: roster item of juliet@example.org: 'romeo@@montague.lit' is not a "
     "valid JID"),
    (roster("<item jid='romeo@montague.lit/orchard'/>"),
     "test.xml:4: roster item of juliet@example.org: 'romeo@montague.lit/orchard' is "
     "not a bare JID"),
    (roster("<item name='x'/>"), "test.xml:4: roster item of juliet@example.org has no 'jid'"),
    (roster("<item jid='r@m.lit' subscription='remove'/>"),
     "test.xml:4: roster item of juliet@example.org r@m.lit: subscription 'remove' is not "
     "one of none, to, from, both"),
    (roster("<item jid='r@m.lit' ask='unsubscribe'/>"),
     "test.xml:4: roster item of juliet@example.org r@m.lit: ask 'unsubscribe' is not "
     "'subscribe'"),
    (roster("<item jid='r@m.lit' approved='yes'/>"),
     "test.xml:4: roster item of juliet@example.org r@m.lit: approved 'yes' is not a "
     "boolean"),
    (roster("<item jid='r@m.lit'/><item jid='R@m.lit'/>"),
     "test.xml:4: roster item of juliet@example.org: r@m.lit appears twice"),
    (user("<presence from='a@@b' type='subscribe'/>"),
     "test.xml:3: the subscription request to juliet@example.org: 'a@@b' is not a valid"),
    ("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>\n"
     "<user name='Juliet' password='p'/>\n<user name='juliet' password='q'/>"
     "</host></server-data>",
     "test.xml:3: juliet@example.org appears twice (first at test.xml:2)"),
    (user("<vCard xmlns='vcard-temp'><FN/></vCard>\n<vCard xmlns='vcard-temp'><FN/></vCard>"),
     "test.xml:4: juliet@example.org has more than one vCard"),
    ("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>"
     "<xi:include href='other.xml'/></server-data>",
     "test.xml:1: cannot read the included file 'other.xml'"),
    ("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>"
     "<xi:include href='other.xml' parse='text'/></server-data>",
     "test.xml:1: only <xi:include href='relative-file'/> is supported"),
    (user("<a>" * 70 + "</a>" * 70), "test.xml:3: elements nested too deeply"),
])
def test_badFile(text, message):
    """A bad file is refused with one line naming the file, the line and the problem."""
    with pytest.raises(pie.PIEError) as caught:
        parse(text)

    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def scramUser(body):
    return user(f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' "
                f"mechanism='SCRAM-SHA-1'>{body}</scram-credentials>",
                attributes="name='juliet'")


GOOD = {"iter-count": "4096", "salt": base64.b64encode(SHA1.salt).decode(),
        "server-key": base64.b64encode(SHA1.serverKey).decode(),
        "stored-key": base64.b64encode(SHA1.storedKey).decode()}


def scramFields(**changes):
    fields = dict(GOOD, **changes)
    return "".join(f"<{name}>{value}</{name}>" for name, value in fields.items()
                   if value is not None)


@pytest.mark.parametrize("body, message", [
    (scramFields(salt=None), "the SCRAM-SHA-1 credentials of juliet@example.org lack <salt>"),
    (scramFields(salt="!!"), "the SCRAM-SHA-1 credentials of juliet@example.org: the salt "
                             "is not valid base64"),
    (scramFields(salt=""), "the SCRAM-SHA-1 credentials of juliet@example.org: the salt "
                           "is empty"),
    (scramFields(**{"iter-count": "many"}),
     "the SCRAM-SHA-1 credentials of juliet@example.org: iteration count 'many' is not a "
     "positive integer"),
    (scramFields(**{"iter-count": "0"}), "iteration count '0' is not a positive integer"),
    (scramFields(**{"stored-key": base64.b64encode(SHA256.storedKey).decode()}),
     "StoredKey and ServerKey must be 20 bytes for SCRAM-SHA-1"),
    (scramFields() + "</scram-credentials><scram-credentials xmlns='urn:xmpp:pie:0#scram' "
     "mechanism='SCRAM-SHA-1'>" + scramFields(),
     "juliet@example.org has SCRAM-SHA-1 credentials twice"),
])
def test_badCredentials(body, message):
    """Incomplete, undecodable or impossible SCRAM credentials are refused, naming the account."""
    with pytest.raises(pie.PIEError) as caught:
        parse(scramUser(body))

    assert message in str(caught.value)
    assert str(caught.value).startswith("test.xml:3: ")


#: The host file of a real C{ejabberdctl export_piefxis} of ejabberd 23.01
#: (Debian 23.01-1) with C{auth_password_format: scram}, two accounts
#: registered with the passwords "wonderland" and "s3cret pass": every salt
#: and key is base64 of the base64 text ejabberd keeps in its database.
EJABBERD_23_01_SCRAM = (
    "<?xml version='1.0' encoding='UTF-8'?><host xmlns='urn:xmpp:pie:0' "
    "xmlns:xi='http://www.w3.org/2001/XInclude' jid='pie.example'><user name='alice'>"
    "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
    "<iter-count>4096</iter-count><salt>N3BvQVRJdDhCOWNKZm9wU1VnblJ0QT09</salt>"
    "<server-key>U3NPS2FIS29lYW5CTHlQTEl4Q3dWZ1V5NnhrPQ==</server-key>"
    "<stored-key>dHZUSmhzejdNZ1FjZVJsYVA5U3ltQU96cnM4PQ==</stored-key>"
    "</scram-credentials></user><user name='bob'>"
    "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
    "<iter-count>4096</iter-count><salt>eFZrekZRNm1DTnc1cUVLOTBQK2FoQT09</salt>"
    "<server-key>VGlIcCswd2E5eGtKSERtTFd1YzRmM0xDUXdnPQ==</server-key>"
    "<stored-key>cVcrZThXSE1qUk5OTFN5bUJ1N0w0ZXk4SWNNPQ==</stored-key>"
    "</scram-credentials></user></host>")


def twice(value: bytes) -> str:
    return base64.b64encode(base64.b64encode(value)).decode()


def test_ejabberdDoubleBase64Corrected():
    """ejabberd 23.01's export_piefxis with SCRAM values base64-encoded twice imports with working keys, and the accounts are reported."""
    main = ("<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0' "
            "xmlns:xi='http://www.w3.org/2001/XInclude'>"
            "<xi:include href='20261207-200421_pie_example.xml'/></server-data>")
    data = pie.parse(main.encode(), "20261207-200421.xml", ("pie.example",),
                     lambda href, source: (href, EJABBERD_23_01_SCRAM.encode()))

    alice, bob = data.accounts
    assert checkPassword("SCRAM-SHA-1", alice.credentials["SCRAM-SHA-1"], "wonderland")
    assert checkPassword("SCRAM-SHA-1", bob.credentials["SCRAM-SHA-1"], "s3cret pass")
    assert len(alice.credentials["SCRAM-SHA-1"].salt) == 16
    assert data.doubleEncoded == ["alice@pie.example", "bob@pie.example"]
    assert data.notes == []


def test_doubleBase64SHA256AndScramPassword():
    """Twice-encoded SCRAM-SHA-256 values and ejabberd's 'scram:' password form are corrected too; single encoding is not reported."""
    sha256 = (f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'>"
              f"<iter-count>4096</iter-count><salt>{twice(SHA256.salt)}</salt>"
              f"<server-key>{twice(SHA256.serverKey)}</server-key>"
              f"<stored-key>{twice(SHA256.storedKey)}</stored-key></scram-credentials>")
    scram = f"scram:{twice(SHA1.storedKey)},{twice(SHA1.serverKey)},{twice(SHA1.salt)},4096"
    data = parse("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
                 f"<user name='a' password='{scram}'>{sha256}</user>"
                 f"<user name='b'>{credentialXML('SCRAM-SHA-1', SHA1)}</user>"
                 "</host></server-data>")

    a, b = data.accounts
    assert a.credentials == {"SCRAM-SHA-1": SHA1, "SCRAM-SHA-256": SHA256}
    assert b.credentials == {"SCRAM-SHA-1": SHA1}
    assert data.doubleEncoded == ["a@example.org"]


@pytest.mark.parametrize("fields, message", [
    # Keys encoded twice, but of a SHA-256 length for SCRAM-SHA-1.
    ({"stored-key": twice(SHA256.storedKey), "server-key": twice(SHA256.serverKey),
      "salt": twice(SHA1.salt)}, "StoredKey and ServerKey must be 20 bytes for SCRAM-SHA-1"),
    # Only one key encoded twice.
    ({"stored-key": twice(SHA1.storedKey)},
     "StoredKey and ServerKey must be 20 bytes for SCRAM-SHA-1"),
    # Keys encoded twice, the salt once (its bytes are no base64 text).
    ({"stored-key": twice(SHA1.storedKey), "server-key": twice(SHA1.serverKey),
      "salt": base64.b64encode(b"\xff\x00salt").decode()},
     "StoredKey and ServerKey must be 20 bytes for SCRAM-SHA-1"),
    # Keys encoded twice, the salt twice but empty inside.
    ({"stored-key": twice(SHA1.storedKey), "server-key": twice(SHA1.serverKey),
      "salt": base64.b64encode(b"====").decode()},
     "StoredKey and ServerKey must be 20 bytes for SCRAM-SHA-1"),
])
def test_otherMalformedKeysStillRefused(fields, message):
    """Only the exact twice-encoded form is corrected: wrong lengths, a mix of encodings or a salt that is not base64 inside are refused as before."""
    with pytest.raises(pie.PIEError) as caught:
        parse(scramUser(scramFields(**fields)))

    assert message in str(caught.value)


def test_base64AcrossLines():
    """Base64 values broken over several lines, as some exporters write them, are read."""
    salt = GOOD["salt"]
    account = only(parse(scramUser(scramFields(salt=f"\n  {salt[:8]}\n  {salt[8:]}\n"))))

    assert account.credentials["SCRAM-SHA-1"] == SHA1


def test_deriveCredentials():
    """A plain password becomes SCRAM credentials for both hashes and is then forgotten; credentials the file gave are kept."""
    plain = pie.Account("a", "example.org", password="pw")
    mixed = pie.Account("b", "example.org", password="s3crEt",
                        credentials={"SCRAM-SHA-1": SHA1})
    complete = pie.Account("c", "example.org", password="other",
                           credentials={"SCRAM-SHA-1": SHA1, "SCRAM-SHA-256": SHA256})

    assert pie.deriveCredentials([plain, mixed, complete]) == 2

    assert checkPassword("SCRAM-SHA-1", plain.credentials["SCRAM-SHA-1"], "pw")
    assert checkPassword("SCRAM-SHA-256", plain.credentials["SCRAM-SHA-256"], "pw")
    assert mixed.credentials["SCRAM-SHA-1"] is SHA1
    assert checkPassword("SCRAM-SHA-256", mixed.credentials["SCRAM-SHA-256"], "s3crEt")
    assert complete.credentials == {"SCRAM-SHA-1": SHA1, "SCRAM-SHA-256": SHA256}
    assert [plain.password, mixed.password, complete.password] == [None, None, None]


def test_deriveCredentialsInThreads():
    """Many passwords are hashed on several threads, each account getting its own."""
    accounts = [pie.Account(f"u{i}", "example.org", password=f"pw{i}")
                for i in range(pie.PARALLEL_MINIMUM)]

    assert pie.deriveCredentials(accounts, workers=2) == len(accounts)

    for i, account in enumerate(accounts):
        assert checkPassword("SCRAM-SHA-256", account.credentials["SCRAM-SHA-256"], f"pw{i}")


def test_parseFragment():
    """Stored XML is read back element by element, in the wrapper's namespace when it has none of its own, and never with a DOCTYPE."""
    first, second = pie.parseFragment("<a xmlns='urn:x'/><b>t</b>", "jabber:iq:private")

    assert first.toXml() == "<a xmlns='urn:x'/>"
    assert second.toXml() == "<b xmlns='jabber:iq:private'>t</b>"
    with pytest.raises(pie.PIEError):
        pie.parseFragment("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", "urn:x")
    with pytest.raises(pie.PIEError):
        pie.parseFragment("<a>", "urn:x")
