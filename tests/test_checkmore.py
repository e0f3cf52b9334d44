"""
Tests for L{xmppd.cli.checkmore}: C{xmppctl check certs} against
certificates made for each case, and C{xmppctl check dns DOMAIN} against a
DNS server of the test's own (L{tests.foreignserver.Zone}).
"""

import datetime
import json

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.names import dns

from tests.foreignserver import Zone, reactor
from xmppd.cli import ctl
from xmppd.cli.checkmore import servedNames
from xmppd.config import loadConfig
from xmppd.stream import tls

ensureDeferred = pytest_twisted.ensureDeferred

DOMAIN = "example.org"


def writeConfig(tmp_path, extra: str = "") -> str:
    path = tmp_path / "xmppd.toml"
    path.write_text(f'[server]\ndomains = ["{DOMAIN}"]\ndata_dir = "{tmp_path / "data"}"\n'
                    f'modules = ["roster", "disco", "muc"]\n'
                    f'[c2s]\nendpoint = "tcp:5222"\ndirect_tls_endpoint = "tcp:5223"\n'
                    f'[s2s]\nlisten = "tcp:5269"\n{extra}', encoding="utf-8")
    return str(path)


def withCertificate(tmp_path, names, now=None) -> str:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.generateSelfSigned(names, str(cert), str(key), now)
    return writeConfig(tmp_path, f'[tls]\ncertificate = "{cert}"\nprivate_key = "{key}"\n')


async def xmppctl(configPath, *argv) -> int:
    args = ctl.buildParser().parse_args(["--config", configPath, *argv])
    return await ctl.runCommand(args, loadConfig(configPath), reactor())


def lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_servedNames(tmp_path):
    """The domains checked: each served domain and its services' domains."""
    config = loadConfig(writeConfig(tmp_path))
    assert servedNames(config) == [(DOMAIN, DOMAIN), (f"conference.{DOMAIN}", DOMAIN)]


@ensureDeferred
async def test_wildcardCoversServices(tmp_path, capsys):
    """A certificate naming the domain and C{*.domain} covers the MUC service; self-signed is noted."""
    path = withCertificate(tmp_path, [DOMAIN, f"*.{DOMAIN}"])
    assert await xmppctl(path, "check", "certs") == ctl.OK
    out = lines(capsys)
    cert = tmp_path / "cert.pem"
    assert out[1] == (f"ok       tls.certificate {cert}: covers {DOMAIN}, conference.{DOMAIN} "
                      f"(it names {DOMAIN}, *.{DOMAIN})")
    assert out[2].startswith(f"warning  tls.certificate {cert}: self-signed")
    assert out[3] == f"ok       tls.certificate {cert}: the private key matches"
    assert out[0].startswith(f"ok       tls.certificate {cert}: valid until ")


@ensureDeferred
async def test_json(tmp_path, capsys):
    """With C{--json}: one object, per certificate the domains, names, issuer, trust."""
    path = withCertificate(tmp_path, [DOMAIN])
    assert await xmppctl(path, "check", "certs", "--json") == ctl.FAILED
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is False
    [entry] = answer["certificates"]
    assert entry["domains"] == [DOMAIN, f"conference.{DOMAIN}"]
    assert entry["covers"] == {DOMAIN: True, f"conference.{DOMAIN}": False}
    assert entry["names"] == [DOMAIN]
    assert entry["self_signed"] is True and entry["trusted"] is False
    assert entry["issuer"] == f"CN={DOMAIN}"
    assert entry["key_matches"] is True
    assert {"level": "error", "what": f"tls.certificate {tmp_path / 'cert.pem'}",
            "detail": f"does not cover conference.{DOMAIN} (it names {DOMAIN})"} \
        in answer["findings"]


@ensureDeferred
async def test_expired(tmp_path, capsys):
    """An expired certificate is an error."""
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3650)
    path = withCertificate(tmp_path, [DOMAIN, f"*.{DOMAIN}"], now=long_ago)
    assert await xmppctl(path, "check", "certs") == ctl.FAILED
    assert lines(capsys)[0].startswith(f"error    tls.certificate {tmp_path / 'cert.pem'}: "
                                       f"expired on ")


@ensureDeferred
async def test_expiresSoon(tmp_path, capsys):
    """Under 14 days left is a warning, not an error."""
    days = tls.SELF_SIGNED_DAYS - 5
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
    path = withCertificate(tmp_path, [DOMAIN, f"*.{DOMAIN}"], now=then)
    assert await xmppctl(path, "check", "certs") == ctl.OK
    first = lines(capsys)[0]
    assert first.startswith(f"warning  tls.certificate {tmp_path / 'cert.pem'}: expires in 4 day")


@ensureDeferred
async def test_keyMismatch(tmp_path, capsys):
    """A private key of another certificate is an error."""
    path = withCertificate(tmp_path, [DOMAIN])
    tls.generateSelfSigned([DOMAIN], str(tmp_path / "other.pem"), str(tmp_path / "key.pem"))
    assert await xmppctl(path, "check", "certs") == ctl.FAILED
    assert lines(capsys) == [
        f"error    tls.certificate {tmp_path / 'cert.pem'}: tls.private_key does not match "
        f"tls.certificate ({tmp_path / 'key.pem'} is the key of another certificate)"]


def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


@ensureDeferred
async def test_chainVerifies(tmp_path, capsys):
    """A certificate issued by a CA of the trust store verifies; its issuer is named."""
    now = datetime.datetime.now(datetime.timezone.utc)
    caKey = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(caKey.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=90))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(caKey, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(DOMAIN)).issuer_name(_name("Test CA"))
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=60))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(DOMAIN), x509.DNSName(f"conference.{DOMAIN}")]), critical=False)
            .sign(caKey, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    path = writeConfig(tmp_path, f'[tls]\ncertificate = "{tmp_path / "cert.pem"}"\n'
                                 f'private_key = "{tmp_path / "key.pem"}"\n')
    assert await xmppctl(path, "check", "certs", "--trust-store",
                         str(tmp_path / "ca.pem")) == ctl.OK
    assert lines(capsys)[2] == (f"ok       tls.certificate {tmp_path / 'cert.pem'}: issued by "
                                f"CN=Test CA; the chain verifies against the trust store "
                                f"{tmp_path / 'ca.pem'}")
    # Without that CA, the system's trust store does not know it.
    assert await xmppctl(path, "check", "certs") == ctl.OK
    assert "the chain does not verify against the system trust store" in lines(capsys)[2]


@pytest_twisted.async_yield_fixture
async def zone():
    served = Zone()
    served.start()
    yield served
    await served.stop()


def srv(port: int, target: str):
    return dns.Record_SRV(priority=5, weight=0, port=port, target=target)


@ensureDeferred
async def test_dns(tmp_path, capsys, zone):
    """SRV records pointing at the ports listened on are fine; a wrong port is an error."""
    zone.records = {
        (f"_xmpp-client._tcp.{DOMAIN}", dns.SRV): [srv(5222, f"xmpp.{DOMAIN}")],
        (f"_xmpps-client._tcp.{DOMAIN}", dns.SRV): [srv(443, f"xmpp.{DOMAIN}")],
        (f"_xmpp-server._tcp.{DOMAIN}", dns.SRV): [srv(5269, f"xmpp.{DOMAIN}")],
        (f"xmpp.{DOMAIN}", dns.A): [dns.Record_A("192.0.2.7")],
        (f"xmpp.{DOMAIN}", dns.AAAA): [dns.Record_AAAA("2001:db8::7")],
    }
    path = writeConfig(tmp_path)
    status = await xmppctl(path, "check", "dns", DOMAIN, "--resolver",
                           f"127.0.0.1:{zone.port.getHost().port}")
    assert lines(capsys) == [
        f"ok       _xmpp-client._tcp.{DOMAIN}: xmpp.{DOMAIN}:5222 (priority 5, weight 0)",
        f"error    _xmpps-client._tcp.{DOMAIN}: xmpp.{DOMAIN}:443 (priority 5, weight 0), "
        f"but c2s.direct_tls_endpoint listens on port 5223",
        f"ok       _xmpp-server._tcp.{DOMAIN}: xmpp.{DOMAIN}:5269 (priority 5, weight 0)",
        f"ok       _xmpps-server._tcp.{DOMAIN}: no record (no such name); "
        f"s2s.direct_tls_listen is off",
        f"ok       xmpp.{DOMAIN}: A 192.0.2.7, AAAA 2001:db8::7",
    ]
    assert status == ctl.FAILED
    assert ("_xmpp-client._tcp.example.org", "SRV") in zone.queries


@ensureDeferred
async def test_dnsWithoutSRV(tmp_path, capsys, zone):
    """
    Without SRV records the domain's own addresses are checked, and
    listeners on the default ports are fine; a direct TLS listener nobody
    can find is a warning; no address at all is an error (C{--json}).
    """
    zone.records = {(DOMAIN, dns.A): [dns.Record_A("192.0.2.8")]}
    path = writeConfig(tmp_path)
    address = f"127.0.0.1:{zone.port.getHost().port}"
    assert await xmppctl(path, "check", "dns", DOMAIN, "--resolver", address) == ctl.OK
    assert lines(capsys) == [
        f"warning  _xmpps-client._tcp.{DOMAIN}: no record, but c2s.direct_tls_endpoint "
        f"listens on port 5223: clients will not find it (XEP-0368)",
        f"ok       _xmpps-server._tcp.{DOMAIN}: no record (no such name); "
        f"s2s.direct_tls_listen is off",
        f"ok       _xmpp-client._tcp.{DOMAIN}: no record: connections go to {DOMAIN}:5222 "
        f"(c2s.endpoint listens there)",
        f"ok       _xmpp-server._tcp.{DOMAIN}: no record: connections go to {DOMAIN}:5269 "
        f"(s2s.listen listens there)",
        f"ok       {DOMAIN}: A 192.0.2.8",
    ]
    zone.records = {}
    assert await xmppctl(path, "check", "dns", DOMAIN, "--resolver", address,
                         "--json") == ctl.FAILED
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is False and answer["addresses"] == {DOMAIN: []}
    assert answer["findings"][-1] == {"level": "error", "what": DOMAIN,
                                      "detail": "no A or AAAA record: nobody can connect"}


@ensureDeferred
async def test_dnsNeedsDomain(tmp_path, capsys):
    """C{check dns} without a domain is a usage error."""
    assert await xmppctl(writeConfig(tmp_path), "check", "dns") == ctl.USAGE
    assert capsys.readouterr().err == "xmppctl: check dns needs a DOMAIN\n"
