"""
Tests for L{xmppd.features.upload} (XEP-0363): the upload service of
C{upload.example.org} answering disco and slot requests with every check
of issue 15 items 5 and 7 (size, quota, file name, content type, rate,
who may upload), the store's slots and sweeping, and the C{[upload]}
configuration.  No network: a real router, a temporary directory and a
L{Clock} (L{tests.uploadhelpers}).
"""

from __future__ import annotations

import os

import pytest
from twisted.internet.task import Clock

from tests.uploadhelpers import (
    ALICE, BASE, BOB, MERCUTIO, NS_UPLOAD, SERVICE, Service, condition, makeStore)
from xmppd.config import ConfigError, configFromDict
from xmppd.features.upload.service import makeHandler, makeService, uploadDomainOf
from xmppd.features.upload.store import SlotRefused, checkFilename

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def fill(store, jid: str, size: int) -> None:
    """C{jid} uploaded a file of C{size} bytes (through the store, as the HTTP side does)."""
    slot = store.newSlot(jid, "f.bin", str(size), "application/octet-stream")
    upload = store.open(slot)
    upload.write(b"x" * size)
    assert upload.finish() == "ok"


# -- wiring and configuration -------------------------------------------------------

def test_domainFromTemplate():
    """The service lives at upload.<domain> unless [upload] domain says otherwise."""
    config = configFromDict({"server": {"domains": ["example.org"]}})
    assert uploadDomainOf(config.upload, "example.org") == "upload.example.org"
    config = configFromDict({"server": {"domains": ["example.org"]},
                             "upload": {"domain": "files.{domain}"}})
    assert uploadDomainOf(config.upload, "example.org") == "files.example.org"


def test_uploadIsAFeatureByDefault():
    from xmppd.config.registry import DEFAULT_FEATURES
    assert "upload" in DEFAULT_FEATURES


@pytest.mark.parametrize("upload, message", [
    ({"max_file_size": 0}, "upload.max_file_size: expected an integer"),
    ({"quota": "lots"}, "upload.quota: expected an integer"),
    ({"expire": 100, "slot_lifetime": 300}, "upload.expire: 100 must be 0 or more than"),
    ({"public_url": "ftp://x"}, "upload.public_url: expected a URL"),
    ({"public_url": "https://{host}"}, "upload.public_url: 'https://{host}' may only use"),
    ({"public_url": "https://x/?a"}, "upload.public_url: 'https://x/?a' must be a plain URL"),
    ({"domain": ""}, "upload.domain: expected a domain template"),
    ({"slots_per_minute": 0}, "upload.slots_per_minute: expected an integer"),
])
def test_badConfig(upload, message):
    """Each bad [upload] value is one line naming the key."""
    with pytest.raises(ConfigError) as caught:
        configFromDict({"upload": upload})
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_publicURLTemplate():
    config = configFromDict({"upload": {"public_url": "https://files.{domain}/"}})
    assert config.upload.public_url == "https://files.{domain}"
    assert configFromDict({"upload": {"expire": 0}}).upload.expire == 0


def test_offWithoutHTTP(tmp_path):
    """Without an HTTP listener there is no upload service, and disco lists none."""
    from xmppd.core.server import XMPPServer
    config = configFromDict({"server": {"domains": ["example.org"],
                                        "data_dir": str(tmp_path)},
                             "http": {"endpoint": "", "tls_endpoint": ""}})
    assert makeService(XMPPServer(config), "example.org") is None

    class Domain:
        domain = "example.org"

    Domain.config = config
    assert makeHandler(Domain()) is None
    Domain.config = configFromDict({"server": {"domains": ["example.org"]}})
    assert makeHandler(Domain()).serviceDomain == "upload.example.org"


def test_checkSaysUploadIsOff(tmp_path, capsys):
    """C{xmppctl check} warns that upload is off when HTTP is."""
    from xmppd.cli.check import _checkUpload, _Report
    config = configFromDict({"http": {"endpoint": "", "tls_endpoint": ""}})
    _checkUpload(config, _Report())
    assert "warning  upload: off: HTTP is off" in capsys.readouterr().out


# -- §2 discovery -----------------------------------------------------------------------

def test_discoInfo(tmp_path):
    """identity store/file, the upload feature and max-file-size in the §2 form."""
    s = Service(makeStore(tmp_path, max_file_size=5000))
    reply = s.iq(ALICE, "<query xmlns='%s'/>" % NS_DISCO_INFO)
    assert reply["type"] == "result"
    [identity] = reply.query.elements(NS_DISCO_INFO, "identity")
    assert (identity["category"], identity["type"]) == ("store", "file")
    features = {f["var"] for f in reply.query.elements(NS_DISCO_INFO, "feature")}
    assert NS_UPLOAD in features
    [form] = reply.query.elements("jabber:x:data", "x")
    fields = {f["var"]: str(f.value) for f in form.elements("jabber:x:data", "field")}
    assert fields == {"FORM_TYPE": NS_UPLOAD, "max-file-size": "5000"}


def test_otherIQs(tmp_path):
    s = Service(makeStore(tmp_path))
    assert s.iq(ALICE, "<ping xmlns='urn:xmpp:ping'/>")["type"] == "result"
    reply = s.iq(ALICE, "<query xmlns='jabber:iq:version'/>")
    assert condition(reply) == "service-unavailable"
    reply = s.iq(ALICE, "<request xmlns='%s' filename='a' size='1'/>" % NS_UPLOAD, "set")
    assert condition(reply) == "service-unavailable"


# -- §4 slots -------------------------------------------------------------------------

def test_slot(tmp_path):
    """A slot: a PUT URL and a GET URL on the HTTP service, the file's name at the end."""
    s = Service(makeStore(tmp_path))
    reply = s.request(filename="photo of me.png")
    assert reply["type"] == "result"
    put = reply.slot.put["url"]
    get = reply.slot.get["url"]
    assert put.startswith(BASE + "/upload/put/") and put.endswith("/photo%20of%20me.png")
    assert get.startswith(BASE + "/upload/") and get.endswith("/photo%20of%20me.png")
    assert "alice" not in put + get  # the owner's key does not show the JID
    assert s.request(filename="photo of me.png").slot.put["url"] != put


def test_fileTooLarge(tmp_path):
    """Over max_file_size: not-acceptable with <file-too-large><max-file-size/> (§4.1)."""
    s = Service(makeStore(tmp_path, max_file_size=1000))
    assert s.request(size="1000")["type"] == "result"
    reply = s.request(size="1001")
    assert condition(reply) == "not-acceptable"
    assert reply.error["type"] == "modify"
    [tooLarge] = reply.error.elements(NS_UPLOAD, "file-too-large")
    assert str(tooLarge.firstChildElement()) == "1000"


def test_overQuota(tmp_path):
    """Over the account's quota: resource-constraint (wait) with when to retry (§4.1)."""
    store = makeStore(tmp_path, quota=3000, expire=86400)
    s = Service(store)
    fill(store, "alice@example.org", 2000)
    reply = s.request(size="1001")
    assert condition(reply) == "resource-constraint"
    assert reply.error["type"] == "wait"
    [retry] = reply.error.elements(NS_UPLOAD, "retry")
    assert retry["stamp"] == "2023-11-15T22:13:20Z"  # the file's expiry
    assert s.request(size="1000")["type"] == "result"
    assert s.request(BOB, size="3000")["type"] == "result"  # bob has his own quota
    store.clock.advance(86400)
    store.sweep()
    assert s.request(size="3000")["type"] == "result"


@pytest.mark.parametrize("filename", [
    "../secret", "..", ".", "a/b", "/etc/passwd", "a\\b", "x" * 256, "é" * 128, " ",
    "a&#x85;b", "a&#x7f;b", "a&#x9;b",
])
def test_badFilename(tmp_path, filename):
    """A name with a path, control characters or too long: bad-request (modify)."""
    s = Service(makeStore(tmp_path))
    reply = s.request(filename=filename)
    assert condition(reply) == "bad-request"
    assert reply.error["type"] == "modify"
    assert not os.path.exists(os.path.join(tmp_path, "upload"))


def test_checkFilename():
    """NUL (impossible in XML, possible in code) is refused too; plain names pass."""
    with pytest.raises(SlotRefused):
        checkFilename("a\x00b")
    with pytest.raises(SlotRefused):
        checkFilename(None)
    assert checkFilename("..hidden..txt") == "..hidden..txt"
    assert checkFilename("x" * 255) == "x" * 255


@pytest.mark.parametrize("size, contentType", [
    ("-1", "image/png"), ("1.5", "image/png"), ("lots", "image/png"), ("", "image/png"),
    ("1" * 19, "image/png"), ("10", "png"), ("10", "image/png; x"), ("10", "a/b c"),
])
def test_badSizeOrType(tmp_path, size, contentType):
    s = Service(makeStore(tmp_path))
    assert condition(s.request(size=size, contentType=contentType)) == "bad-request"


def test_missingTypeIsOctetStream(tmp_path):
    store = makeStore(tmp_path)
    s = Service(store)
    reply = s.request(contentType=None)
    token = reply.slot.put["url"].split("/")[5]
    assert store.slotOf(token).contentType == "application/octet-stream"


def test_rateLimit(tmp_path):
    """More than slots_per_minute requests: resource-constraint with a retry stamp, per account."""
    store = makeStore(tmp_path, slots_per_minute=2)
    s = Service(store)
    assert s.request()["type"] == "result"
    store.clock.advance(10)
    assert s.request()["type"] == "result"
    reply = s.request()
    assert condition(reply) == "resource-constraint"
    assert reply.error["type"] == "wait"
    [retry] = reply.error.elements(NS_UPLOAD, "retry")
    assert retry["stamp"] == "2023-11-14T22:14:20Z"  # the first request's minute is over
    assert s.request(BOB)["type"] == "result"
    store.clock.advance(50)
    assert s.request()["type"] == "result"
    assert condition(s.request()) == "resource-constraint"


def test_onlyLocalAccounts(tmp_path):
    """Remote users and the domain itself may not upload: not-allowed."""
    s = Service(makeStore(tmp_path))
    assert condition(s.request(MERCUTIO)) == "not-allowed"


def test_noHTTPYet(tmp_path):
    """Before the HTTP service listens there is no URL to give: service-unavailable (wait)."""
    s = Service(makeStore(tmp_path), base=None)
    reply = s.request()
    assert condition(reply) == "service-unavailable"
    assert reply.error["type"] == "wait"


def test_addressedToSomeoneAtService(tmp_path):
    s = Service(makeStore(tmp_path))
    reply = s.iq(ALICE, "<ping xmlns='urn:xmpp:ping'/>", to="x@" + SERVICE)
    assert condition(reply) == "service-unavailable"


# -- the store -------------------------------------------------------------------------

def test_tokensAreSigned(tmp_path):
    """A token from another secret, or changed in any way, is not a slot."""
    store = makeStore(tmp_path)
    slot = store.newSlot("alice@example.org", "a.png", "10", "image/png")
    token = store.putToken(slot)
    assert store.slotOf(token) == slot
    other = makeStore(tmp_path, secret=b"t" * 32)
    assert other.slotOf(token) is None
    payload, signature = token.split(".")
    assert store.slotOf(payload + "." + "0" * 32) is None
    assert store.slotOf(payload[:-2] + "AA." + signature) is None
    assert store.slotOf("garbage") is None
    assert store.slotOf("") is None


def test_sweep(tmp_path):
    """Files older than expire go; so do partial uploads nobody writes; the rest stays."""
    clock = Clock()
    store = makeStore(tmp_path, clock=clock, expire=1000, slot_lifetime=300)
    fill(store, "alice@example.org", 10)
    clock.advance(500)
    fill(store, "bob@example.org", 10)
    stale = store.open(store.newSlot("bob@example.org", "b", "5", ""))
    stale.write(b"12")
    store.writing.clear()  # as after a restart
    writing = store.open(store.newSlot("bob@example.org", "c", "5", ""))
    clock.advance(500)
    assert store.sweep() == 1
    assert store.used(store.ownerKey("alice@example.org")) == 0
    assert store.used(store.ownerKey("bob@example.org")) == 10
    names = os.listdir(os.path.join(store.root, store.ownerKey("bob@example.org")))
    assert [n for n in names if n.endswith(".part")] == [os.path.basename(writing.partial)]
    assert not os.path.exists(os.path.join(store.root, store.ownerKey("alice@example.org")))


def test_expireZeroKeepsFiles(tmp_path):
    store = makeStore(tmp_path, expire=0)
    fill(store, "alice@example.org", 10)
    store.clock.advance(10 ** 9)
    assert store.sweep() == 0
    assert store.used(store.ownerKey("alice@example.org")) == 10
    assert store.retryAt(store.ownerKey("alice@example.org")) is None


def test_publicURLGivesTheBase(tmp_path):
    """upload.public_url, when set, starts every URL (a reverse proxy's address)."""
    from xmppd.core.server import XMPPServer
    from xmppd.features.upload.service import baseURLOf
    config = configFromDict({"server": {"domains": ["example.org"], "data_dir": str(tmp_path)},
                             "upload": {"public_url": "https://files.{domain}/"}})
    assert baseURLOf(XMPPServer(config))("example.org") == "https://files.example.org"
    config = configFromDict({"server": {"domains": ["example.org"], "data_dir": str(tmp_path)}})
    assert baseURLOf(XMPPServer(config))("example.org") is None  # no HTTP service yet
