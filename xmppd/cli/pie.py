# -*- test-case-name: tests.test_pie,tests.test_pie_pep -*-
"""
The XEP-0227 file format: every account of a server, its credentials,
roster, vCard, private XML and offline messages, in one XML document.

L{parse} reads such a document into L{Account}s and L{serialize} writes
them; neither touches files or storage (C{xmppctl import} and C{export} do,
see L{xmppd.cli.portability}), and L{parse} reads other files only through the
C{include} callable it is given.

What is read, and from whom:

  - the root C{<server-data/>} in C{urn:xmpp:pie:0} (v1.x) or in the
    provisional C{http://www.xmpp.org/extensions/xep-0227.html#ns} that
    ejabberd (C{export_piefxis}) and early Prosody still write (§4);
  - C{<host jid=.../>} per virtual host (§4.1), each of which must be one of
    the domains given; C{<user name=... password=...>} per account (§4.2);
  - SCRAM credentials (§4.2 of v1.1): C{<scram-credentials
    xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>} with
    C{<iter-count/>}, C{<salt/>}, C{<server-key/>}, C{<stored-key/>}
    (base64); SHA-1 and SHA-256 are kept, other hashes are noted and
    skipped.  ejabberd 23.01's C{export_piefxis} with C{auth_password_format:
    scram} writes all three values base64-encoded twice (it encodes the
    base64 text its database holds); that exact form is decoded once more
    and counted in L{ServerData.doubleEncoded}.  ejabberd's C{password="scram:StoredKey,ServerKey,Salt,Count"}
    (SHA-1) is read too.  A plain password is kept only until
    L{deriveCredentials} turns it into SCRAM credentials for the
    mechanisms the file did not give; the server never stores it;
  - the roster (§4.3), a C{jabber:iq:roster} query as in RFC 6121 §2.1,
    with C{ask}, C{approved} (§3.4 pre-approval) and groups; pending
    inbound requests as C{<presence type='subscribe'/>} children of the
    user, the form both ejabberd and Prosody write (RFC 6121 §3.1.3 keeps
    them to deliver again);
  - offline messages (§4.4), private XML (§4.5, XEP-0049) and the vCard
    (§4.6, XEP-0054), kept as serialized XML in the form the C{vcard} and
    C{private} features store them;
  - PEP nodes (§4.9): configuration, items, affiliations and
    subscriptions, read and written by L{xmppd.cli.piepep};
  - XInclude (§5): C{<xi:include href=.../>} in C{<server-data/>} (a host
    file) or in C{<host/>} (a user file), as ejabberd exports a server;
  - anything else (MAM archives, privacy lists, extension attributes)
    is skipped and summarized in L{ServerData.notes}, as §4 asks ("SHOULD
    ignore the unknown data, SHOULD notify the operator").

The file is operator-supplied but is parsed as carefully as a stream: a
DOCTYPE (hence any entity, so no billion laughs), external entities and
undefined entity references are refused; comments and processing
instructions, harmless in a file, are ignored.  Errors are L{PIEError}s
whose text names the file and line.

Implements: XEP-0227 v1.1 (accounts, SCRAM credentials, rosters, vCards,
private XML, offline messages, PEP nodes; MAM data skipped)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from xml.parsers import expat

from twisted.words.xish.domish import Element

from xmppd.cli import piepep
from xmppd.config import normalizeDomain
from xmppd.core.jid import InvalidJID, parseJID, prepLocalpart
from xmppd.core.scram import (MECHANISMS, InvalidPassword, ScramCredential, makeCredentials,
                         preparePassword)
from xmppd.storage.interfaces import SUBSCRIPTIONS, PubSubNodeRecord, RosterItem
from xmppd.cli.xmltext import attr as _attr, escape as _escape

NS_PIE = "urn:xmpp:pie:0"
NS_PIE_OLD = "http://www.xmpp.org/extensions/xep-0227.html#ns"
NS_PIE_ALL = (NS_PIE, NS_PIE_OLD)
NS_SCRAM = "urn:xmpp:pie:0#scram"
NS_XINCLUDE = "http://www.w3.org/2001/XInclude"
NS_ROSTER = "jabber:iq:roster"
NS_PRIVATE = "jabber:iq:private"
NS_VCARD = "vcard-temp"
NS_CLIENT = "jabber:client"

#: Private XML namespaces never stored (as L{xmppd.features.private} refuses them).
PRIVATE_RESERVED = frozenset(("", NS_CLIENT, "jabber:server", NS_PRIVATE))

#: Elements nested deeper than this are refused: no real data comes close.
MAX_DEPTH = 64

#: Below this many passwords to hash, threads cost more than they save.
PARALLEL_MINIMUM = 32


class PIEError(ValueError):
    """The input cannot be imported; C{str()} is one line naming file and line."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        where = source or ""
        if line:
            where += f":{line}"
        super().__init__(f"{where}: {message}" if where else message)


@dataclass
class Account:
    """
    One account as the file describes it.  C{username} and C{domain} are
    prepared; roster items are keyed by the contact's prepared bare JID;
    C{private} maps a namespace to its serialized elements, concatenated,
    and C{vcard} and C{offline} hold serialized elements too; C{pep} holds
    the nodes of the account's PEP service.
    """

    username: str
    domain: str
    password: str | None = None
    credentials: dict[str, ScramCredential] = field(default_factory=dict)
    roster: dict[str, RosterItem] = field(default_factory=dict)
    vcard: str | None = None
    private: dict[str, str] = field(default_factory=dict)
    offline: list[str] = field(default_factory=list)
    pep: list[PubSubNodeRecord] = field(default_factory=list)

    @property
    def jid(self) -> str:
        return f"{self.username}@{self.domain}"


@dataclass
class ServerData:
    """
    What L{parse} read: the accounts in file order, what it skipped, and
    the accounts whose SCRAM values were base64-encoded twice and were
    decoded once more (ejabberd's C{export_piefxis}).
    """

    accounts: list[Account]
    notes: list[str]
    doubleEncoded: list[str] = field(default_factory=list)


#: C{include(href, source)} returns the name and bytes of the file C{href}
#: names, relative to the file C{source}; it raises L{PIEError} to refuse.
Include = Callable[[str, str], tuple[str, bytes]]


def parse(data: bytes, source: str = "<input>", domains: Collection[str] | None = None,
          include: Include | None = None) -> ServerData:
    """
    Read and check a whole XEP-0227 document.  Nothing is returned unless
    everything in it is valid, so a caller that writes only afterwards
    changes nothing on bad input.

    @param domains: the served domains (prepared); a host not among them
        is an error.  C{None} accepts any host.
    @param include: how to read XInclude'd files; without it, an
        C{<xi:include/>} is an error.
    @raise PIEError: the document is not XML, not XEP-0227, or holds
        invalid data.
    """
    reader = _Reader(domains, include)
    _Document(reader, source, "server-data").feed(data)
    return ServerData(reader.accounts, reader.notes(), reader.doubleEncoded)


def parseFragment(text: str, wrapperNS: str) -> list[Element]:
    """
    The elements serialized in C{text} (stored account data: several
    C{toXml()} results in a row), read inside a wrapper in C{wrapperNS} as
    L{xmppd.stream.xmlparser.parseStored} does, with the same refusals as L{parse}.

    @raise PIEError: C{text} is not well-formed.
    """
    elements: list[Element] = []
    data = f"<stored xmlns='{wrapperNS}'>{text}</stored>".encode("utf-8")
    _Document(None, "stored data", "fragment", onElement=elements.append).feed(data)
    return elements


def deriveCredentials(accounts: Iterable[Account], workers: int | None = None) -> int:
    """
    Give every account with a plain password SCRAM credentials for each
    mechanism the file did not already give, and forget the password.
    PBKDF2 releases the GIL, so threads use every core (about 2 ms per
    password on one core).

    @return: how many passwords were hashed.
    """
    accounts = list(accounts)
    todo = [account for account in accounts
            if account.password is not None and not MECHANISMS.keys() <= account.credentials.keys()]
    passwords = [account.password for account in todo]
    if len(todo) < PARALLEL_MINIMUM or workers == 1:
        results = [makeCredentials(password) for password in passwords]
    else:
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            results = list(pool.map(makeCredentials, passwords, chunksize=16))
    for account, credentials in zip(todo, results):
        for mechanism, credential in credentials.items():
            account.credentials.setdefault(mechanism, credential)
    for account in accounts:
        account.password = None
    return len(todo)


# Reading


class _Reader:
    """Collects accounts across a document and the files it includes."""

    def __init__(self, domains: Collection[str] | None, include: Include | None):
        self.domains = domains
        self.include = include
        self.accounts: list[Account] = []
        self.seen: dict[tuple[str, str], str] = {}
        self.skipped: Counter[tuple[str, str, str]] = Counter()
        #: Accounts with SCRAM values base64-encoded twice, in file order.
        self.doubleEncoded: list[str] = []

    def notes(self) -> list[str]:
        return [f"skipped {count} <{name}{f' xmlns={uri!r}' if uri else ''}> "
                f"element{'s' if count > 1 else ''}: {why}"
                for (uri, name, why), count in sorted(self.skipped.items())]

    def skip(self, element: Element | tuple[str, str], why: str = "not imported") -> None:
        uri, name = (element.uri, element.name) if isinstance(element, Element) else element
        self.skipped[(uri or "", name, why)] += 1

    def host(self, text: str | None, fail: Callable[[str], PIEError]) -> str:
        if not text:
            raise fail("<host> has no 'jid' attribute")
        try:
            if "@" in text or "/" in text:
                raise ValueError
            domain = normalizeDomain(text)
        except ValueError:
            raise fail(f"host jid {text!r} is not a domain") from None
        if self.domains is not None and domain not in self.domains:
            raise fail(f"host {domain} is not served here (server.domains: "
                       f"{', '.join(self.domains)})")
        return domain

    def user(self, element: Element, domain: str, source: str) -> None:
        account = _readUser(self, element, domain, source)
        key = (account.username, account.domain)
        if key in self.seen:
            raise PIEError(f"{account.jid} appears twice (first at {self.seen[key]})",
                           source, element.line)
        self.seen[key] = f"{source}:{element.line}"
        self.accounts.append(account)


class _Document:
    """
    One file, parsed with expat: the structure (server-data, host) is
    followed as it streams by; each C{<user/>} is built as a tree, turned
    into an L{Account} and dropped, so memory follows the accounts' data
    rather than the file's markup.
    """

    def __init__(self, reader: _Reader | None, source: str, expect: str,
                 host: str | None = None, onElement: Callable | None = None):
        self.reader = reader
        self.source = source
        self.expect = expect
        self.host = host
        self.onElement = onElement or self._userDone
        # Structure frames outside the user trees: "server-data", "host",
        # ("include", attributes, line) or "skip".
        self.frames: list = []
        self.tree: Element | None = None
        self.treeDepth = 0
        self.text: list[str] = []
        self.defaultNamespaces: list[str | None] = [""]
        self.prefixes: dict[str, str] = {}

        parser = expat.ParserCreate(None, " ")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.buffer_text = True
        parser.StartElementHandler = self.onStart
        parser.EndElementHandler = self.onEnd
        parser.CharacterDataHandler = self.onText
        parser.StartNamespaceDeclHandler = self.onStartNamespace
        parser.EndNamespaceDeclHandler = self.onEndNamespace
        # The DOCTYPE handler fires before anything in the internal subset
        # is read, so no entity is ever declared, let alone expanded.
        parser.StartDoctypeDeclHandler = self.refuse
        for name in ("EntityDeclHandler", "UnparsedEntityDeclHandler",
                     "NotationDeclHandler", "ElementDeclHandler",
                     "AttlistDeclHandler", "ExternalEntityRefHandler"):
            setattr(parser, name, self.refuse)
        self.parser = parser

    def fail(self, message: str, line: int | None = None) -> PIEError:
        return PIEError(message, self.source, line or self.parser.CurrentLineNumber)

    def feed(self, data: bytes) -> None:
        try:
            self.parser.Parse(data, True)
        except expat.ExpatError as e:
            raise PIEError(f"not well-formed XML: {expat.ErrorString(e.code)}",
                           self.source, e.lineno) from None

    def refuse(self, *args) -> None:
        raise self.fail("DOCTYPE and entity declarations are not allowed")

    def onStartNamespace(self, prefix: str | None, uri: str | None) -> None:
        if prefix is None:
            self.defaultNamespaces.append(uri)
        else:
            self.prefixes[prefix] = uri or ""

    def onEndNamespace(self, prefix: str | None) -> None:
        if prefix is None:
            self.defaultNamespaces.pop()

    def onText(self, data: str) -> None:
        if self.tree is not None:
            self.text.append(data)

    def flushText(self) -> None:
        if self.text:
            self.tree.children.append("".join(self.text))
            self.text.clear()

    def onStart(self, name: str, attrs: dict) -> None:
        uri, _, local = name.rpartition(" ")
        for key in [key for key in attrs if " " in key]:
            attrURI, _, attrName = key.rpartition(" ")
            attrs[(attrURI, attrName)] = attrs.pop(key)
        prefixes, self.prefixes = self.prefixes, {}
        if self.tree is not None or self._startsTree(uri, local, attrs):
            element = Element((uri, local), self.defaultNamespaces[-1], attrs,
                              prefixes or None)
            element.line = self.parser.CurrentLineNumber
            if self.tree is None:
                self.treeDepth = 1
            else:
                self.treeDepth += 1
                if self.treeDepth + len(self.frames) > MAX_DEPTH:
                    raise self.fail("elements nested too deeply")
                self.flushText()
                self.tree.addChild(element)
            self.tree = element
            return
        self.frames.append(self._structure(uri, local, attrs))

    def _startsTree(self, uri: str, local: str, attrs: dict) -> bool:
        if self.expect == "fragment":
            return bool(self.frames)
        if self.expect == "user" and not self.frames:
            if local != "user" or uri not in NS_PIE_ALL:
                raise self._wrongRoot(uri, local)
            return True
        return (bool(self.frames) and self.frames[-1] == "host" and local == "user"
                and uri in NS_PIE_ALL)

    def _wrongRoot(self, uri: str, local: str) -> PIEError:
        return self.fail(f"expected <{self.expect} xmlns='{NS_PIE}'> as the root element, "
                         f"found <{local}> in namespace {uri!r}; is this a XEP-0227 file?")

    def _structure(self, uri: str, local: str, attrs: dict):
        if not self.frames:
            if self.expect == "fragment":
                return "skip"
            if local != self.expect or uri not in NS_PIE_ALL:
                raise self._wrongRoot(uri, local)
            if local == "host":
                self.host = self.reader.host(attrs.get("jid"), self.fail)
            return local
        parent = self.frames[-1]
        if len(self.frames) > MAX_DEPTH:
            raise self.fail("elements nested too deeply")
        if parent == "skip" or isinstance(parent, tuple):
            return "skip"
        if uri == NS_XINCLUDE and local == "include":
            return ("include", attrs, self.parser.CurrentLineNumber)
        if parent == "server-data" and local == "host" and uri in NS_PIE_ALL:
            self.host = self.reader.host(attrs.get("jid"), self.fail)
            return "host"
        self.reader.skip((uri, local), f"not expected in <{parent}>")
        return "skip"

    def onEnd(self, name: str) -> None:
        if self.tree is not None:
            self.flushText()
            element = self.tree
            self.treeDepth -= 1
            if self.treeDepth:
                self.tree = element.parent
            else:
                self.tree = None
                self.onElement(element)
            return
        frame = self.frames.pop()
        if isinstance(frame, tuple):
            self._include(frame[1], frame[2])

    def _userDone(self, element: Element) -> None:
        self.reader.user(element, self.host, self.source)

    def _include(self, attrs: dict, line: int) -> None:
        # §5: relative 'href', no 'parse' (or parse='xml'), no 'xpointer'.
        href = attrs.get("href")
        if not href or attrs.get("parse", "xml") != "xml" or "xpointer" in attrs:
            raise self.fail("only <xi:include href='relative-file'/> is supported", line)
        if self.reader.include is None:
            raise self.fail(f"cannot read the included file {href!r}", line)
        source, data = self.reader.include(href, self.source)
        expect = "host" if self.frames[-1] == "server-data" else "user"
        _Document(self.reader, source, expect, self.host).feed(data)


def _text(element: Element) -> str:
    return "".join(child for child in element.children if isinstance(child, str))


def _base64(text: str, what: str, fail) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise fail(f"{what} is not valid base64") from None


def _credential(mechanism: str, iterations: str, salt: str, serverKey: str,
                storedKey: str, what: str, fail) -> tuple[ScramCredential, bool]:
    """
    The credential the values describe, and whether they were
    base64-encoded twice (L{_decodedTwice}).
    """
    size = hashlib.new(MECHANISMS[mechanism]).digest_size
    try:
        count = int(iterations.strip())
    except ValueError:
        count = 0
    if not 0 < count < 2**31:
        raise fail(f"{what}: iteration count {iterations.strip()!r} is not a positive integer")
    values = (_base64(salt, f"{what}: the salt", fail),
              _base64(storedKey, f"{what}: the StoredKey", fail),
              _base64(serverKey, f"{what}: the ServerKey", fail))
    twice = False
    if len(values[1]) != size or len(values[2]) != size:
        again = _decodedTwice(values, size)
        if again is None:
            raise fail(f"{what}: StoredKey and ServerKey must be {size} bytes for {mechanism}")
        values, twice = again, True
    if not values[0]:
        raise fail(f"{what}: the salt is empty")
    return ScramCredential(values[0], count, values[1], values[2]), twice


def _decodedTwice(values: tuple[bytes, bytes, bytes], size: int
                  ) -> tuple[bytes, bytes, bytes] | None:
    """
    Salt, StoredKey and ServerKey decoded once more, when all three are
    base64 text and the keys then have the hash's C{size}: exactly what
    ejabberd 23.01's C{export_piefxis} writes, since its database keeps
    them as base64 and the export encodes that text again.  Anything else
    is C{None}, and stays an error.
    """
    decoded = []
    for value in values:
        try:
            decoded.append(base64.b64decode(value.decode("ascii"), validate=True))
        except (UnicodeDecodeError, binascii.Error, ValueError):
            return None
    salt, storedKey, serverKey = decoded
    if len(storedKey) != size or len(serverKey) != size:
        return None
    return salt, storedKey, serverKey


def _bareJID(text: str | None, what: str, fail, stripResource: bool = False) -> str:
    if not text:
        raise fail(f"{what} has no 'jid'")
    try:
        jid = parseJID(text)
    except InvalidJID as e:
        raise fail(f"{what}: {text!r} is not a valid JID ({e})") from None
    if jid.resource and not stripResource:
        raise fail(f"{what}: {text!r} is not a bare JID")
    return jid.userhost()


def _readUser(reader: _Reader, user: Element, domain: str, source: str) -> Account:
    def fail(message: str, element: Element = user) -> PIEError:
        return PIEError(message, source, element.line)

    name = user.getAttribute("name")
    if not name:
        raise fail("<user> has no 'name' attribute")
    try:
        account = Account(prepLocalpart(name), domain)
    except InvalidJID as e:
        raise fail(f"user name {name!r} is not a valid username ({e})") from None
    jid = account.jid
    password = user.getAttribute("password")
    if password and password.startswith("scram:"):
        # ejabberd: "scram:" StoredKey "," ServerKey "," Salt "," IterationCount,
        # base64, SHA-1; accepted with a leading mechanism name as well.
        fields = password[6:].split(",")
        mechanism = fields.pop(0) if len(fields) == 5 else "SCRAM-SHA-1"
        if len(fields) != 4 or mechanism not in MECHANISMS:
            raise fail(f"the password of {jid} looks like ejabberd's 'scram:' form but "
                       f"is not StoredKey,ServerKey,Salt,IterationCount")
        storedKey, serverKey, salt, count = fields
        account.credentials[mechanism], twice = _credential(
            mechanism, count, salt, serverKey, storedKey, f"the password of {jid}", fail)
        if twice:
            reader.doubleEncoded.append(jid)
    elif password:
        try:
            preparePassword(password)
        except InvalidPassword:
            raise fail(f"the password of {jid} has characters PRECIS forbids") from None
        account.password = password

    pending: list[tuple[str, str | None]] = []
    pep = piepep.PEPReader(jid, fail, reader.skip)
    for child in user.elements():
        key = (child.uri, child.name)
        if key == (NS_SCRAM, "scram-credentials"):
            _readScram(reader, account, child, fail)
        elif key == (NS_ROSTER, "query"):
            _readRoster(reader, account, child, fail)
        elif key == (NS_VCARD, "vCard"):
            if account.vcard is not None:
                raise fail(f"{jid} has more than one vCard", child)
            # An empty vCard is no vCard, as a set of one deletes it (XEP-0054 §3.2).
            if any(True for _ in child.elements()) or _text(child).strip():
                account.vcard = child.toXml()
        elif key == (NS_PRIVATE, "query"):
            _readPrivate(reader, account, child)
        elif child.name == "offline-messages":
            _readOffline(reader, account, child)
        elif key == (piepep.NS_PUBSUB_OWNER, "pubsub"):
            pep.owner(child)
        elif key == (piepep.NS_PUBSUB, "pubsub"):
            pep.public(child)
        elif child.name == "presence" and child.uri in (NS_CLIENT, *NS_PIE_ALL):
            if child.getAttribute("type") != "subscribe":
                reader.skip(child, "only subscription requests are kept")
                continue
            contact = _bareJID(child.getAttribute("from"),
                               f"the subscription request to {jid}",
                               lambda m: fail(m, child), stripResource=True)
            status = next((_text(s) for s in child.elements() if s.name == "status"), None)
            # RFC 6121 §3.1.3: the request is kept whole, its extensions too.
            extensions = "".join(e.toXml() for e in child.elements()
                                 if e.uri not in (None, NS_CLIENT, "jabber:server"))
            pending.append((contact, status or None, extensions or None))
        else:
            reader.skip(child)
    account.pep = pep.records()
    for contact, status, extensions in pending:
        item = account.roster.get(contact, RosterItem(contact))
        account.roster[contact] = RosterItem(
            item.jid, item.name, item.subscription, item.ask, item.groups, item.approved,
            pendingIn=True, pendingInStatus=status, pendingInExtensions=extensions)
    if not account.credentials and account.password is None:
        raise fail(f"{jid} has neither a password nor SCRAM-SHA-1 or SCRAM-SHA-256 "
                   f"credentials")
    return account


def _readScram(reader: _Reader, account: Account, element: Element, fail) -> None:
    mechanism = element.getAttribute("mechanism")
    if mechanism not in MECHANISMS:
        reader.skip(element, f"mechanism {mechanism!r} is not supported")
        return
    what = f"the {mechanism} credentials of {account.jid}"
    if mechanism in account.credentials:
        raise fail(f"{account.jid} has {mechanism} credentials twice", element)
    values = {}
    for name in ("iter-count", "salt", "server-key", "stored-key"):
        child = next(element.elements(NS_SCRAM, name), None)
        if child is None:
            raise fail(f"{what} lack <{name}>", element)
        values[name] = _text(child)
    account.credentials[mechanism], twice = _credential(
        mechanism, values["iter-count"], values["salt"], values["server-key"],
        values["stored-key"], what, lambda m: fail(m, element))
    if twice and account.jid not in reader.doubleEncoded[-1:]:
        reader.doubleEncoded.append(account.jid)


def _readRoster(reader: _Reader, account: Account, query: Element, fail) -> None:
    for item in query.elements():
        if (item.uri, item.name) != (NS_ROSTER, "item"):
            reader.skip(item)
            continue
        what = f"roster item of {account.jid}"
        itemFail = lambda m, item=item: fail(m, item)  # noqa: E731
        contact = _bareJID(item.getAttribute("jid"), what, itemFail)
        if contact in account.roster:
            raise itemFail(f"{what}: {contact} appears twice")
        subscription = item.getAttribute("subscription", "none")
        if subscription not in SUBSCRIPTIONS:
            raise itemFail(f"{what} {contact}: subscription {subscription!r} is not one "
                           f"of {', '.join(SUBSCRIPTIONS)}")
        ask = item.getAttribute("ask")
        if ask not in (None, "", "subscribe"):
            raise itemFail(f"{what} {contact}: ask {ask!r} is not 'subscribe'")
        approved = item.getAttribute("approved", "false")
        if approved not in ("true", "1", "false", "0"):
            raise itemFail(f"{what} {contact}: approved {approved!r} is not a boolean")
        groups = (_text(group) for group in item.elements(NS_ROSTER, "group"))
        account.roster[contact] = RosterItem(
            contact, item.getAttribute("name") or None, subscription, ask == "subscribe",
            tuple(dict.fromkeys(group for group in groups if group)),
            approved in ("true", "1"))


def _readPrivate(reader: _Reader, account: Account, query: Element) -> None:
    byNamespace: dict[str, list[str]] = {}
    for child in query.elements():
        if (child.uri or "") in PRIVATE_RESERVED or child.uri in NS_PIE_ALL:
            reader.skip(child, "private XML needs a namespace of its own")
            continue
        byNamespace.setdefault(child.uri, []).append(child.toXml())
    for namespace, elements in byNamespace.items():
        account.private[namespace] = "".join(elements)


def _readOffline(reader: _Reader, account: Account, container: Element) -> None:
    for message in container.elements():
        if message.name != "message":
            reader.skip(message)
            continue
        # §4.4 says jabber:client; a message written without its xmlns
        # inherited the file's namespace, and belongs in jabber:client.
        inherited = message.uri
        if inherited != NS_CLIENT:
            for element in itertools.chain([message], _descendants(message)):
                if element.uri == inherited:
                    element.uri = NS_CLIENT
                if element.defaultUri == inherited:
                    element.defaultUri = NS_CLIENT
        account.offline.append(message.toXml())


def _descendants(element: Element) -> Iterator[Element]:
    for child in element.elements():
        yield child
        yield from _descendants(child)


# Writing


def serialize(accounts: Iterable[Account]) -> Iterator[str]:
    """
    The XEP-0227 document of C{accounts}, in pieces: hosts and users
    sorted, one element per line where that reads well, stored XML (vCard,
    private XML, messages, PEP items) on one line each as stored, so that two exports
    diff line by line.  Credentials are written as SCRAM (v1.1 discourages
    passwords), a plain C{password} only if an account still has one.
    """
    yield "<?xml version='1.0' encoding='UTF-8'?>\n"
    yield f"<server-data xmlns='{NS_PIE}'>\n"
    ordered = sorted(accounts, key=lambda account: (account.domain, account.username))
    for domain, users in itertools.groupby(ordered, key=lambda account: account.domain):
        yield f"  <host jid={_attr(domain)}>\n"
        for account in users:
            yield from _writeUser(account)
        yield "  </host>\n"
    yield "</server-data>\n"


def _writeUser(account: Account) -> Iterator[str]:
    password = f" password={_attr(account.password)}" if account.password else ""
    yield f"    <user name={_attr(account.username)}{password}>\n"
    for mechanism, credential in sorted(account.credentials.items()):
        yield (f"      <scram-credentials xmlns='{NS_SCRAM}' mechanism={_attr(mechanism)}>\n"
               f"        <iter-count>{credential.iterations}</iter-count>\n"
               f"        <salt>{base64.b64encode(credential.salt).decode()}</salt>\n"
               f"        <server-key>{base64.b64encode(credential.serverKey).decode()}"
               f"</server-key>\n"
               f"        <stored-key>{base64.b64encode(credential.storedKey).decode()}"
               f"</stored-key>\n"
               f"      </scram-credentials>\n")
    items = sorted(account.roster.values(), key=lambda item: item.jid)
    # RFC 6121 §2.1.6: an item only pending in is not part of the roster;
    # it is written as the request, the form ejabberd and Prosody use.
    visible = [item for item in items if item.visible]
    if visible:
        yield f"      <query xmlns='{NS_ROSTER}'>\n"
        for item in visible:
            attributes = f"jid={_attr(item.jid)}"
            if item.name is not None:
                attributes += f" name={_attr(item.name)}"
            attributes += f" subscription={_attr(item.subscription)}"
            if item.ask:
                attributes += " ask='subscribe'"
            if item.approved:
                attributes += " approved='true'"
            if item.groups:
                yield f"        <item {attributes}>\n"
                for group in item.groups:
                    yield f"          <group>{_escape(group)}</group>\n"
                yield "        </item>\n"
            else:
                yield f"        <item {attributes}/>\n"
        yield "      </query>\n"
    for item in items:
        if item.pendingIn:
            head = (f"      <presence xmlns='{NS_CLIENT}' from={_attr(item.jid)} "
                    f"to={_attr(account.jid)} type='subscribe'")
            status = (f"<status>{_escape(item.pendingInStatus)}</status>"
                      if item.pendingInStatus else "")
            # Stored as XML text we serialized, so it goes out as it is.
            extensions = item.pendingInExtensions or ""
            if status or extensions:
                yield f"{head}>{status}{extensions}</presence>\n"
            else:
                yield f"{head}/>\n"
    if account.vcard is not None:
        yield f"      {account.vcard}\n"
    if account.private:
        yield f"      <query xmlns='{NS_PRIVATE}'>\n"
        for namespace in sorted(account.private):
            yield f"        {account.private[namespace]}\n"
        yield "      </query>\n"
    if account.offline:
        yield "      <offline-messages>\n"
        for message in account.offline:
            yield f"        {message}\n"
        yield "      </offline-messages>\n"
    yield from piepep.write(account.pep)
    yield "    </user>\n"
