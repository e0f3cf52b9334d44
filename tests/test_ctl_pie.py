"""
Tests for C{xmppctl import} and C{xmppctl export} (XEP-0227) on the
server's own SQLite store: round trips, files as Prosody and ejabberd
write them, bad files that change nothing, C{--replace}, and imported
accounts logging in to a real node.
"""

import base64
import json
import os
import stat

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.test_ctl import runXmppctl, writeConfig, xmppctl
from tests.test_pie import EJABBERD_23_01_SCRAM
from xmppd.cli import ctl
from xmppd.config import loadConfig
from xmppd.core.scram import checkPassword, deriveCredential
from xmppd.storage import makeStorage
from xmppd.storage.interfaces import RosterItem

ensureDeferred = pytest_twisted.ensureDeferred

SHA1 = deriveCredential("sha1", "wherefore")


def b64(value):
    return base64.b64encode(value).decode()


FULL = f"""<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='example.org'>
    <user name='juliet' password='s3crEt'>
      <query xmlns='jabber:iq:roster'>
        <item jid='romeo@example.org' name='Romeo' subscription='both'>
          <group>Friends</group>
        </item>
        <item jid='nurse@localhost' subscription='none' ask='subscribe' approved='true'/>
      </query>
      <presence xmlns='jabber:client' from='tybalt@example.org' type='subscribe'>
        <status>Let me in</status>
      </presence>
      <vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard>
      <query xmlns='jabber:iq:private'>
        <storage xmlns='storage:bookmarks'><conference jid='ball@conference.example.org'/></storage>
      </query>
      <offline-messages>
        <message xmlns='jabber:client' from='romeo@example.org/orchard' type='chat'><body>But soft!</body></message>
      </offline-messages>
    </user>
    <user name='romeo'>
      <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>
        <iter-count>4096</iter-count>
        <salt>{b64(SHA1.salt)}</salt>
        <server-key>{b64(SHA1.serverKey)}</server-key>
        <stored-key>{b64(SHA1.storedKey)}</stored-key>
      </scram-credentials>
    </user>
  </host>
  <host jid='localhost'>
    <user name='nurse' password='nurse'/>
  </host>
</server-data>
"""


@pytest.fixture
def configPath(tmp_path):
    return writeConfig(tmp_path)


async def withStorage(configPath, operation):
    config = loadConfig(configPath)
    storage = makeStorage(config.storage.backend, config.server.data_dir, reactor)
    await storage.open()
    try:
        return await operation(storage)
    finally:
        await storage.close()


async def listUsers(configPath):
    return await withStorage(configPath, lambda storage: storage.users.listUsers())


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@ensureDeferred
async def test_importStoresEverything(tmp_path, configPath, capsys):
    """An import creates the accounts with working passwords, rosters, vCard, private XML and offline messages."""
    status = await xmppctl(configPath, "import", write(tmp_path, "in.xml", FULL))

    assert status == 0
    assert capsys.readouterr().out == (
        "imported 3 new accounts and 0 replaced (3 roster items, 1 vCard, 1 private XML "
        "namespace, 1 offline message, 0 PEP nodes with 0 items; 2 passwords "
        "hashed)\n")

    async def read(storage):
        juliet = ("juliet", "example.org")
        return (await storage.users.getCredentials(*juliet),
                await storage.users.getCredentials("romeo", "example.org"),
                await storage.rosters.getRoster(*juliet),
                await storage.accountData.getAll(*juliet))

    credentials, romeo, roster, data = await withStorage(configPath, read)
    assert await listUsers(configPath) == [
        ("juliet", "example.org"), ("nurse", "localhost"), ("romeo", "example.org")]
    assert checkPassword("SCRAM-SHA-256", credentials["SCRAM-SHA-256"], "s3crEt")
    assert checkPassword("SCRAM-SHA-1", credentials["SCRAM-SHA-1"], "s3crEt")
    assert romeo == {"SCRAM-SHA-1": SHA1}
    assert roster.items == {
        "romeo@example.org": RosterItem("romeo@example.org", "Romeo", "both",
                                        groups=("Friends",)),
        "nurse@localhost": RosterItem("nurse@localhost", subscription="none", ask=True,
                                      approved=True),
        "tybalt@example.org": RosterItem("tybalt@example.org", pendingIn=True,
                                         pendingInStatus="Let me in"),
    }
    assert data["vcard"] == "<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard>"
    assert data["private:storage:bookmarks"] == (
        "<storage xmlns='storage:bookmarks'>"
        "<conference jid='ball@conference.example.org'/></storage>")
    assert json.loads(data["offline-import"]) == [
        "<message xmlns='jabber:client' from='romeo@example.org/orchard' type='chat'>"
        "<body>But soft!</body></message>"]


@ensureDeferred
async def test_roundTrip(tmp_path, configPath, capsys):
    """Export, import into an empty server and export again gives the same file: users, credentials, rosters, vCards and private XML all survive."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", FULL))
    first = str(tmp_path / "first.xml")
    assert await xmppctl(configPath, "export", first) == 0
    (tmp_path / "other").mkdir()
    other = writeConfig(tmp_path / "other")

    assert await xmppctl(other, "import", first) == 0
    second = str(tmp_path / "second.xml")
    assert await xmppctl(other, "export", second) == 0

    assert open(first).read() == open(second).read()
    assert await listUsers(other) == await listUsers(configPath)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"exported 3 accounts of example.org, localhost to {first}"
    assert out[2] == ("imported 3 new accounts and 0 replaced (3 roster items, 1 vCard, "
                      "1 private XML namespace, 1 offline message, 0 PEP nodes with "
                      "0 items; 0 passwords hashed)")


@ensureDeferred
async def test_prosodyFiles(tmp_path, configPath, capsys):
    """Prosody's per-user files import in one command, with their plain passwords usable for login."""
    files = [write(tmp_path, f"prosody/{name}@example.org.xml",
                   f"<?xml version='1.0' encoding='utf-8'?><server-data xmlns='urn:xmpp:pie:0'>"
                   f"<host jid='example.org'><user name='{name}' password='{name}-pw'>"
                   f"<query xmlns='jabber:iq:roster' version='2'>"
                   f"<item jid='{friend}@example.org' subscription='both'/></query>"
                   f"</user></host></server-data>")
             for name, friend in (("juliet", "romeo"), ("romeo", "juliet"))]

    assert await xmppctl(configPath, "import", *files) == 0

    credentials = await withStorage(
        configPath, lambda storage: storage.users.getCredentials("romeo", "example.org"))
    assert checkPassword("SCRAM-SHA-256", credentials["SCRAM-SHA-256"], "romeo-pw")
    roster = await withStorage(
        configPath, lambda storage: storage.rosters.getRoster("juliet", "example.org"))
    assert list(roster.items) == ["romeo@example.org"]


@ensureDeferred
async def test_ejabberdDirectory(tmp_path, configPath, capsys):
    """An ejabberd export_piefxis directory (a main file including one file per host) imports, 'scram:' passwords included."""
    scram = f"scram:{b64(SHA1.storedKey)},{b64(SHA1.serverKey)},{b64(SHA1.salt)},4096"
    ns = "http://www.xmpp.org/extensions/xep-0227.html#ns"
    main = write(tmp_path, "export/main.xml",
                 f"<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='{ns}' "
                 f"xmlns:xi='http://www.w3.org/2001/XInclude'>"
                 f"<xi:include href='example.org.xml'/></server-data>")
    write(tmp_path, "export/example.org.xml",
          f"<?xml version='1.0' encoding='UTF-8'?><host xmlns='{ns}' "
          f"xmlns:xi='http://www.w3.org/2001/XInclude' jid='example.org'>"
          f"<user name='romeo' password='{scram}'><query xmlns='jabber:iq:roster'>"
          f"<item jid='juliet@example.org' subscription='both' name='Juliet'/></query>"
          f"<query xmlns='jabber:iq:privacy'/></user></host>")

    assert await xmppctl(configPath, "import", main) == 0

    captured = capsys.readouterr()
    assert captured.err == ("xmppctl: warning: skipped 1 <query xmlns='jabber:iq:privacy'> "
                            "element: not imported\n")
    credentials = await withStorage(
        configPath, lambda storage: storage.users.getCredentials("romeo", "example.org"))
    assert credentials == {"SCRAM-SHA-1": SHA1}


@ensureDeferred
async def test_ejabberdDoubleBase64Import(tmp_path, configPath, capsys):
    """A real ejabberd 23.01 export with SCRAM values base64-encoded twice imports, with working passwords and a summary line saying it was corrected."""
    main = write(tmp_path, "export/20261207-200421.xml",
                 "<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0' "
                 "xmlns:xi='http://www.w3.org/2001/XInclude'>"
                 "<xi:include href='20261207-200421_pie_example.xml'/></server-data>")
    write(tmp_path, "export/20261207-200421_pie_example.xml",
          EJABBERD_23_01_SCRAM.replace("jid='pie.example'", "jid='example.org'"))

    assert await xmppctl(configPath, "import", main) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("imported 2 new accounts and 0 replaced")
    assert out[1] == ("2 accounts: SCRAM values were base64-encoded twice "
                      "(ejabberd export_piefxis); corrected")
    credentials = await withStorage(
        configPath, lambda storage: storage.users.getCredentials("bob", "example.org"))
    assert checkPassword("SCRAM-SHA-1", credentials["SCRAM-SHA-1"], "s3cret pass")


BAD_FILES = {
    "unknown host": ("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
                     "<user name='a' password='p'/></host><host jid='example.net'>"
                     "<user name='b' password='p'/></host></server-data>",
                     "{path}:1: host example.net is not served here (server.domains: "
                     "example.org, localhost); nothing changed"),
    "malformed XML": ("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>\n"
                      "<user name='a' password='p'/>\n<user name='b' password='p'>\n"
                      "</host></server-data>",
                      "{path}:4: not well-formed XML: mismatched tag; nothing changed"),
    "billion laughs": ("<?xml version='1.0'?>\n<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'>"
                       "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
                       "<server-data xmlns='urn:xmpp:pie:0'>&b;</server-data>",
                       "{path}:2: DOCTYPE and entity declarations are not allowed; "
                       "nothing changed"),
    "invalid roster JID": ("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
                           "<user name='a' password='p'/>\n<user name='b' password='p'>"
                           "<query xmlns='jabber:iq:roster'>\n<item jid='c@d@e'/></query>"
                           "</user></host></server-data>",
                           "{path}:3: roster item of b@example.org: 'c@d@e' is not a valid "
                           "JID (invalid domain label); nothing changed"),
    "keys of the wrong length": (
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'><user name='a'>"
        "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
        "<iter-count>4096</iter-count><salt>c2FsdA==</salt><server-key>a2V5</server-key>"
        "<stored-key>a2V5</stored-key></scram-credentials></user></host></server-data>",
        "{path}:1: the SCRAM-SHA-1 credentials of a@example.org: StoredKey and ServerKey "
        "must be 20 bytes for SCRAM-SHA-1; nothing changed"),
    "no credentials": ("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
                       "<user name='a' password='p'/><user name='b'/></host></server-data>",
                       "{path}:1: b@example.org has neither a password nor SCRAM-SHA-1 or "
                       "SCRAM-SHA-256 credentials; nothing changed"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@ensureDeferred
async def test_badFileChangesNothing(tmp_path, configPath, capsys, case):
    """A bad file is refused with one line naming where and what, and no account is added, even those before the fault."""
    text, message = BAD_FILES[case]
    path = write(tmp_path, "bad.xml", text)
    await xmppctl(configPath, "adduser", "existing@example.org", "--password", "x")
    before = await listUsers(configPath)
    capsys.readouterr()

    assert await xmppctl(configPath, "import", path) == 1

    assert capsys.readouterr().err == "xmppctl: " + message.format(path=path) + "\n"
    assert await listUsers(configPath) == before


@ensureDeferred
async def test_missingFile(tmp_path, configPath, capsys):
    """A file that cannot be read is named in a one-line error."""
    path = str(tmp_path / "missing.xml")

    assert await xmppctl(configPath, "import", path) == 1

    assert capsys.readouterr().err == (f"xmppctl: cannot read {path}: No such file or "
                                       f"directory; nothing changed\n")


@ensureDeferred
async def test_includeOutsideRefused(tmp_path, configPath, capsys):
    """An XInclude that leaves the export's directory is refused."""
    write(tmp_path, "secret.xml", "<host xmlns='urn:xmpp:pie:0' jid='example.org'/>")
    path = write(tmp_path, "export/main.xml",
                 "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/"
                 "XInclude'><xi:include href='../secret.xml'/></server-data>")

    assert await xmppctl(configPath, "import", path) == 1

    assert capsys.readouterr().err == (
        f"xmppctl: {path}: cannot include '../secret.xml': it is outside "
        f"{tmp_path / 'export'}; nothing changed\n")


@ensureDeferred
async def test_sameAccountInTwoFiles(tmp_path, configPath, capsys):
    """An account described by two files is refused rather than merged."""
    text = ("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>"
            "<user name='a' password='p'/></host></server-data>")
    first, second = write(tmp_path, "1.xml", text), write(tmp_path, "2.xml", text)

    assert await xmppctl(configPath, "import", first, second) == 1

    assert capsys.readouterr().err == (f"xmppctl: a@example.org is in both {first} and "
                                       f"{second}; nothing changed\n")
    assert await listUsers(configPath) == []


def manyUsers(count, domain="example.org"):
    users = "".join(f"<user name='u{i}' password='p'/>" for i in range(count))
    return f"<server-data xmlns='urn:xmpp:pie:0'><host jid='{domain}'>{users}</host></server-data>"


@ensureDeferred
async def test_existingAccountsRefused(tmp_path, configPath, capsys):
    """Importing accounts that exist already is refused, naming the first few, and changes nothing."""
    for i in range(7):
        await xmppctl(configPath, "adduser", f"u{i}@example.org", "--password", "old")
    capsys.readouterr()

    assert await xmppctl(configPath, "import", write(tmp_path, "in.xml", manyUsers(9))) == 1

    assert capsys.readouterr().err == (
        "xmppctl: 7 of these accounts exist already: u0@example.org, u1@example.org, "
        "u2@example.org, u3@example.org, u4@example.org and 2 more (--replace replaces "
        "their credentials, roster, vCard, private XML and PEP nodes); nothing changed\n")
    assert len(await listUsers(configPath)) == 7
    credentials = await withStorage(
        configPath, lambda storage: storage.users.getCredentials("u0", "example.org"))
    assert checkPassword("SCRAM-SHA-256", credentials["SCRAM-SHA-256"], "old")


@ensureDeferred
async def test_replace(tmp_path, configPath, capsys):
    """With --replace an existing account gets the file's password, roster, vCard and private XML, and loses what the file does not have."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", FULL))
    replacement = write(tmp_path, "new.xml", """
<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>
  <user name='juliet' password='new'>
    <query xmlns='jabber:iq:roster'><item jid='paris@example.org' subscription='to'/></query>
    <query xmlns='jabber:iq:private'><prefs xmlns='urn:x'/></query>
  </user>
  <user name='benvolio' password='b'/>
</host></server-data>""")
    capsys.readouterr()

    assert await xmppctl(configPath, "import", "--replace", replacement) == 0

    assert capsys.readouterr().out == (
        "imported 1 new account and 1 replaced (1 roster item, 0 vCards, 1 private XML "
        "namespace, 0 offline messages, 0 PEP nodes with 0 items; 2 passwords "
        "hashed)\n")

    async def read(storage):
        juliet = ("juliet", "example.org")
        return (await storage.users.getCredentials(*juliet),
                await storage.rosters.getRoster(*juliet),
                await storage.accountData.getAll(*juliet))

    credentials, roster, data = await withStorage(configPath, read)
    assert checkPassword("SCRAM-SHA-256", credentials["SCRAM-SHA-256"], "new")
    assert not checkPassword("SCRAM-SHA-256", credentials["SCRAM-SHA-256"], "s3crEt")
    assert roster.items == {"paris@example.org": RosterItem("paris@example.org",
                                                            subscription="to")}
    # Offline messages are not the file's to take away: only replaced when given.
    assert data.keys() == {"private:urn:x", "offline-import"}
    assert len(await listUsers(configPath)) == 4


@ensureDeferred
async def test_dryRun(tmp_path, configPath, capsys):
    """--dry-run checks the file and says what it would import without writing anything."""
    assert await xmppctl(configPath, "import", "--dry-run",
                         write(tmp_path, "in.xml", FULL)) == 0

    assert capsys.readouterr().out == (
        "would import 3 new accounts and 0 replaced (3 roster items, 1 vCard, 1 private "
        "XML namespace, 1 offline message, 0 PEP nodes with 0 items; 2 passwords "
        "hashed); nothing changed\n")
    assert await listUsers(configPath) == []


@ensureDeferred
async def test_exportOneDomainPrivately(tmp_path, configPath, capsys):
    """--domain exports one domain's accounts, into a file only its owner can read that replaces the old one whole."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", FULL))
    out = tmp_path / "out" / "export.xml"
    out.parent.mkdir()
    out.write_text("old")
    os.chmod(out, 0o644)

    assert await xmppctl(configPath, "export", str(out), "--domain", "LOCALHOST") == 0

    text = out.read_text()
    assert "<host jid='localhost'>" in text and "example.org'>" not in text
    assert "<user name='nurse'>" in text
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert os.listdir(out.parent) == ["export.xml"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"exported 1 account of localhost to {out}")


@ensureDeferred
async def test_exportToStandardOutput(tmp_path, configPath, capsys):
    """Export to "-" writes the document alone on standard output."""
    await xmppctl(configPath, "adduser", "romeo@example.org", "--password", "x")
    capsys.readouterr()

    assert await xmppctl(configPath, "export", "-") == 0

    out = capsys.readouterr().out
    assert out.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<server-data")
    assert out.endswith("</server-data>\n")
    assert "<user name='romeo'>" in out


@ensureDeferred
async def test_exportUnservedDomain(configPath, capsys):
    """Exporting a domain that is not served is a one-line error."""
    assert await xmppctl(configPath, "export", "x.xml", "--domain", "example.net") == 1

    assert capsys.readouterr().err == ("xmppctl: example.net is not served here "
                                       "(server.domains: example.org, localhost)\n")


@ensureDeferred
async def test_importManyAccountsSmoke(tmp_path, configPath, capsys):
    """Hundreds of accounts with rosters and plain passwords import in one command (a smoke test of the fast path, untimed)."""
    count, contacts = 300, 10
    users = "".join(
        f"<user name='u{i}' password='p{i}'><query xmlns='jabber:iq:roster'>"
        + "".join(f"<item jid='u{(i + j) % count}@example.org' subscription='both'>"
                  f"<group>g</group></item>" for j in range(1, contacts + 1))
        + "</query></user>" for i in range(count))
    path = write(tmp_path, "many.xml", "<server-data xmlns='urn:xmpp:pie:0'>"
                 f"<host jid='example.org'>{users}</host></server-data>")

    assert await xmppctl(configPath, "import", path) == 0

    assert capsys.readouterr().out.startswith(
        f"imported {count} new accounts and 0 replaced ({count * contacts} roster items,")
    roster = await withStorage(
        configPath, lambda storage: storage.rosters.getRoster("u299", "example.org"))
    assert len(roster.items) == contacts


def test_commandLineErrorIsOneLine(tmp_path):
    """Run as an operator would, a bad import file gives status 1, one line and no traceback."""
    writeConfig(tmp_path)
    (tmp_path / "bad.xml").write_text("<server-data xmlns='urn:xmpp:pie:0'>")

    result = runXmppctl(tmp_path, "import", "bad.xml")

    assert result.returncode == 1
    assert result.stderr == ("xmppctl: bad.xml:1: not well-formed XML: no element found; "
                             "nothing changed\n")
    assert result.stdout == ""


async def runIn(node, *argv):
    args = ctl.buildParser().parse_args(["--config", str(node.configPath), *argv])
    return await defer.Deferred.fromCoroutine(
        ctl.runCommand(args, loadConfig(args.config), reactor))


@ensureDeferred
async def test_importedAccountsLogIn(stoppedServer, tmp_path, capsys):
    """Imported accounts log in to the server, across a restart: a plain password with SCRAM-SHA-256, SCRAM-SHA-1-only credentials with SCRAM-SHA-1 and PLAIN."""
    text = (f"<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>"
            f"<user name='juliet' password='s3crEt'/><user name='romeo'>"
            f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
            f"<iter-count>4096</iter-count><salt>{b64(SHA1.salt)}</salt>"
            f"<server-key>{b64(SHA1.serverKey)}</server-key>"
            f"<stored-key>{b64(SHA1.storedKey)}</stored-key></scram-credentials></user>"
            f"</host></server-data>")
    assert await runIn(stoppedServer, "import", write(tmp_path, "in.xml", text)) == 0
    await stoppedServer.start()

    juliet = stoppedServer.client("juliet", "balcony", secret="s3crEt",
                                  mechanism="SCRAM-SHA-256")
    assert (await juliet.login()).full == "juliet@localhost/balcony"
    await stoppedServer.stop()
    await stoppedServer.start()
    for mechanism in ("SCRAM-SHA-1", "PLAIN"):
        romeo = stoppedServer.client("romeo", mechanism, secret="wherefore",
                                     mechanism=mechanism)
        assert (await romeo.login()).full == f"romeo@localhost/{mechanism}"


@ensureDeferred
async def test_exportIncludesStoredOfflineMessages(tmp_path, configPath, capsys):
    """Messages waiting in offline storage are exported, with their acceptance time as a delay stamp."""
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", FULL))
    message = ("<message xmlns='jabber:client' from='romeo@example.org/orchard' "
               "to='juliet@example.org' type='chat'><body>Parting is such sweet sorrow</body>"
               "</message>")
    users = await listUsers(configPath)
    username, domain = users[0]
    await withStorage(configPath, lambda storage: storage.offline.store(
        username, domain, message, 1700000000.0))
    exported = str(tmp_path / "out.xml")

    assert await xmppctl(configPath, "export", exported) == 0

    text = open(exported).read()
    assert "Parting is such sweet sorrow" in text
    assert "stamp='2023-11-14T22:13:20Z'" in text or 'stamp="2023-11-14T22:13:20Z"' in text


@ensureDeferred
async def test_checkCountsAccountsWithoutSHA256(tmp_path, capsys):
    """check counts the accounts without SCRAM-SHA-256 keys: a warning while SCRAM-SHA-256 is offered, fine once sasl.mechanisms leaves it out."""
    configPath = writeConfig(tmp_path)
    await xmppctl(configPath, "import", write(tmp_path, "in.xml", FULL))
    capsys.readouterr()

    assert await xmppctl(configPath, "check") == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if " sasl:" in line]
    assert line == ("warning  sasl: 1 of 3 accounts has no SCRAM-SHA-256 keys yet (they "
                    "get them at their next PLAIN login); clients choosing SCRAM-SHA-256 "
                    "are told to use another mechanism, and those that never do "
                    "(go-xmpp) cannot log in until sasl.mechanisms leaves "
                    "SCRAM-SHA-256 out")

    configPath = writeConfig(tmp_path, '[sasl]\nmechanisms = ["SCRAM-SHA-1", "PLAIN"]\n')
    assert await xmppctl(configPath, "check") == 0
    assert ("ok       sasl: 1 of 3 accounts has no SCRAM-SHA-256 keys yet (they get them "
            "at their next PLAIN login); SCRAM-SHA-256 is not offered (sasl.mechanisms)"
            ) in capsys.readouterr().out.splitlines()

    await xmppctl(configPath, "passwd", "romeo@example.org", "--password", "wherefore")
    assert await xmppctl(configPath, "check") == 0
    assert ("ok       sasl: every account has SCRAM-SHA-256 keys; sasl.mechanisms may offer "
            "SCRAM-SHA-256 again") in capsys.readouterr().out.splitlines()
