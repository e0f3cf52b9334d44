# -*- test-case-name: tests.test_ctl_pie,tests.test_pie_pep -*-
"""
C{xmppctl import} and C{xmppctl export}: moving accounts in and out in the
XEP-0227 format (the format itself is L{xmppd.cli.pie}).

Every file is read and checked before anything is written, so a bad file
changes nothing; new accounts are written in batches of L{IMPORT_BATCH},
one transaction each (L{xmppd.storage.interfaces.IStorage.importAccounts}).
See L{xmppd.cli.ctl} for the command line and exit statuses.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from dataclasses import replace
from typing import Any

from twisted.internet import defer

from xmppd.cli import pie, piepep
from xmppd.cli.common import OK, CtlError, fail, say, servedDomain, withWholeStorage
from xmppd.config import Config
from xmppd.storage import StorageError
from xmppd.storage.interfaces import AccountRecord, PubSubNodeRecord, UserExists

COMMANDS = ("import", "export")

#: Importing into a store that ends with the process, or exporting an empty
#: one, would be a silent no-op.
PERSISTENT = True


#: Account-data key under which imported offline messages wait for the
#: offline feature: a JSON list of serialized C{<message/>}s, oldest first.
OFFLINE_IMPORT_KEY = "offline-import"
#: The file in C{server.data_dir} an import appends to once it stored offline
#: messages, which tells a running server to look for them (L{offline.imports}).
OFFLINE_IMPORT_MARKER = "offline-import.marker"
NS_DELAY = "urn:xmpp:delay"
VCARD_KEY = "vcard"
PRIVATE_PREFIX = "private:"

#: Accounts written (or read) at once: enough to keep the storage worker
#: busy while the reactor turns each answer into the next request.
PIPELINE = 32

#: New accounts per import transaction: large enough that fsyncs do not
#: dominate, small enough that a running server waits at most ~0.1 s for the
#: write lock (its busy timeout is 5 s).
IMPORT_BATCH = 500

#: Conflicting accounts named in the error before "and N more".
CONFLICTS_SHOWN = 5


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
    importer = commands.add_parser(
        "import", help="import accounts from XEP-0227 files (Prosody, ejabberd, "
        "xmppctl export)")
    importer.add_argument("files", nargs="+", metavar="FILE",
                          help='a XEP-0227 file ("-" for standard input)')
    importer.add_argument("--replace", action="store_true",
                          help="replace the credentials, roster, vCard, private XML "
                          "and (when the file has any) PEP nodes of accounts that "
                          "exist already (default: refuse)")
    importer.add_argument("--dry-run", action="store_true",
                          help="check the files and say what would be imported")
    exporter = commands.add_parser("export", help="write accounts to a XEP-0227 file")
    exporter.add_argument("file", metavar="FILE",
                          help='the file to write ("-" for standard output)')
    exporter.add_argument("--domain", metavar="DOMAIN",
                          help="only this domain's accounts (default: every served domain)")


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """Run C{import} or C{export}."""
    if args.command == "import":
        return await runImport(args, config, reactor)
    return await runExport(args, config, reactor)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _readInput(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CtlError(f"cannot read {path}: {e.strerror or e}; nothing changed") from None


def _includer(top: str) -> pie.Include:
    """
    Read XIncluded files (XEP-0227 §5) relative to the file that includes
    them, and only below the directory of the file named on the command
    line: an export is a directory tree, never a reference elsewhere.
    """
    base = os.path.abspath(os.path.dirname(top) if top != "-" else os.curdir)

    def include(href: str, source: str) -> tuple[str, bytes]:
        if urllib.parse.urlsplit(href).scheme or os.path.isabs(href):
            raise pie.PIEError(f"cannot include {href!r}: only relative file names are "
                               f"supported", source)
        directory = os.path.dirname(source) if source != "-" else ""
        path = os.path.normpath(os.path.join(directory, urllib.parse.unquote(href)))
        if os.path.commonpath([os.path.abspath(path), base]) != base:
            raise pie.PIEError(f"cannot include {href!r}: it is outside {base}", source)
        try:
            with open(path, "rb") as f:
                return path, f.read()
        except OSError as e:
            raise pie.PIEError(f"cannot read the included {path}: {e.strerror or e}",
                               source) from None

    return include


def _readFiles(paths: list[str], config: Config
               ) -> tuple[list[pie.Account], list[str], list[str]]:
    """
    Parse and check every file; any problem raises before anything is
    written.  Returns the accounts, the notes on what was skipped, and the
    accounts whose SCRAM values were base64-encoded twice.
    """
    accounts: list[pie.Account] = []
    notes: list[str] = []
    doubleEncoded: list[str] = []
    origin: dict[str, str] = {}
    for path in paths:
        try:
            data = pie.parse(_readInput(path), path, config.server.domains,
                             _includer(path))
        except pie.PIEError as e:
            raise CtlError(f"{e}; nothing changed") from None
        for account in data.accounts:
            if account.jid in origin:
                raise CtlError(f"{account.jid} is in both {origin[account.jid]} and "
                               f"{path}; nothing changed")
            origin[account.jid] = path
        accounts.extend(data.accounts)
        notes.extend(data.notes)
        doubleEncoded.extend(data.doubleEncoded)
    return accounts, notes, doubleEncoded


async def runImport(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    accounts, notes, doubleEncoded = _readFiles(args.files, config)
    for note in dict.fromkeys(notes):
        fail(f"warning: {note}")

    async def run(storage) -> tuple[set, int]:
        existing = set()
        for domain in {account.domain for account in accounts}:
            existing.update(await storage.users.listUsers(domain))
        conflicts = [account.jid for account in accounts
                     if (account.username, account.domain) in existing]
        if conflicts and not args.replace:
            shown = ", ".join(conflicts[:CONFLICTS_SHOWN])
            more = len(conflicts) - CONFLICTS_SHOWN
            raise CtlError(
                f"{len(conflicts)} of these accounts exist already: {shown}"
                f"{f' and {more} more' if more > 0 else ''} (--replace replaces their "
                f"credentials, roster, vCard, private XML and PEP nodes); nothing changed")
        if args.dry_run:
            return existing, sum(account.password is not None for account in accounts)
        hashed = pie.deriveCredentials(accounts)
        try:
            await _writeAccounts(storage, accounts, existing)
        finally:
            if any(account.offline for account in accounts):
                _markOfflineImport(config.server.data_dir)
        return existing, hashed

    existing, hashed = await withWholeStorage(config, reactor, run)
    replaced = sum((account.username, account.domain) in existing for account in accounts)
    summary = (
        f"{_count(len(accounts) - replaced, 'new account')} and {replaced} replaced ("
        f"{_count(sum(len(account.roster) for account in accounts), 'roster item')}, "
        f"{_count(sum(account.vcard is not None for account in accounts), 'vCard')}, "
        f"{_count(sum(len(account.private) for account in accounts), 'private XML namespace')}, "
        f"{_count(sum(len(account.offline) for account in accounts), 'offline message')}, "
        f"{_count(sum(len(account.pep) for account in accounts), 'PEP node')} with "
        f"{_count(sum(len(n.items) for a in accounts for n in a.pep), 'item')}; "
        f"{_count(hashed, 'password')} hashed)")
    if args.dry_run:
        say(f"would import {summary}; nothing changed")
    else:
        say(f"imported {summary}")
    if doubleEncoded:
        say(f"{_count(len(doubleEncoded), 'account')}: SCRAM values were base64-encoded "
            f"twice (ejabberd export_piefxis); corrected")
    return OK


def _markOfflineImport(dataDir: str) -> None:
    """
    Tell a running server that accounts may have imported offline messages
    now (it looks for them again when this file changes; L{offline.imports}).
    Also after a failed import: replaced accounts may have them.
    """
    try:
        os.makedirs(dataDir, mode=0o700, exist_ok=True)
        with open(os.path.join(dataDir, OFFLINE_IMPORT_MARKER), "a") as f:
            f.write("imported\n")
    except OSError as e:
        fail(f"warning: could not tell a running server about the imported offline "
             f"messages ({e.strerror or e}); it delivers them after its next start")


async def _writeAccounts(storage, accounts: list[pie.Account], existing: set) -> None:
    """
    Create the new accounts in batches of L{IMPORT_BATCH}, one transaction
    each (22,000 single-row transactions took 6-15 s for 1,000 accounts with
    20 contacts; batched, well under a second), then replace the existing
    ones.  On a storage error the accounts this import created are removed
    again, so a failed import leaves only replaced accounts partly changed.
    """
    created: list[pie.Account] = []
    new = [a for a in accounts if (a.username, a.domain) not in existing]
    try:
        for start in range(0, len(new), IMPORT_BATCH):
            batch = new[start:start + IMPORT_BATCH]
            await storage.importAccounts([_record(account) for account in batch])
            created.extend(batch)
        for account in accounts:
            if (account.username, account.domain) in existing:
                await _replaceAccount(storage, account)
    # ValueError and TypeError: a PEP record the store refuses (an
    # affiliation, a state, a configuration that is not JSON), which the
    # parser should have refused first; still one line, never a traceback.
    except (StorageError, sqlite3.Error, ValueError, TypeError) as error:
        for account in created:
            try:
                await storage.users.removeUser(account.username, account.domain)
            except (StorageError, sqlite3.Error):
                pass
        if isinstance(error, UserExists):
            reason = f"{error} was created meanwhile"
        else:
            reason = f"storage: {error}"
        partly = " (replaced accounts may be partly updated)" if existing else ""
        raise CtlError(f"{reason}; removed the {len(created)} accounts this import had "
                       f"created{partly}")


def _record(account: pie.Account) -> AccountRecord:
    data = {PRIVATE_PREFIX + namespace: xml for namespace, xml in account.private.items()}
    if account.vcard is not None:
        data[VCARD_KEY] = account.vcard
    if account.offline:
        data[OFFLINE_IMPORT_KEY] = json.dumps(account.offline, ensure_ascii=False)
    return AccountRecord(account.username, account.domain, account.credentials,
                         tuple(account.roster.values()), data, tuple(account.pep))


async def _replaceAccount(storage, account: pie.Account) -> None:
    username, domain = account.username, account.domain
    await storage.users.setCredentials(username, domain, account.credentials)
    roster = await storage.rosters.getRoster(username, domain)
    for jid in roster.items.keys() - account.roster.keys():
        await storage.rosters.removeItem(username, domain, jid)
    stored = await storage.accountData.getAll(username, domain, PRIVATE_PREFIX)
    if account.vcard is None:
        await storage.accountData.delete(username, domain, VCARD_KEY)
    await _writeData(storage, account, stored)


async def _writeData(storage, account: pie.Account, storedPrivate: dict) -> None:
    username, domain = account.username, account.domain
    for item in account.roster.values():
        await storage.rosters.setItem(username, domain, item)
    if account.vcard is not None:
        await storage.accountData.set(username, domain, VCARD_KEY, account.vcard)
    wanted = {PRIVATE_PREFIX + namespace: xml for namespace, xml in account.private.items()}
    for key in storedPrivate.keys() - wanted.keys():
        await storage.accountData.delete(username, domain, key)
    for key, value in wanted.items():
        await storage.accountData.set(username, domain, key, value)
    if account.offline:
        await storage.accountData.set(username, domain, OFFLINE_IMPORT_KEY,
                                      json.dumps(account.offline, ensure_ascii=False))
    if account.pep:
        await _replacePEP(storage, account)


async def _replacePEP(storage, account: pie.Account) -> None:
    """
    Make the file's nodes the account's whole PEP service.  Only when the
    file has PEP data: an export from a server without PEP must not wipe it.
    """
    service = account.jid
    await storage.pubsub.removeService(service)
    for record in account.pep:
        await storage.pubsub.createNode(service, record.node, record.config, service)
        for jid, affiliation in record.affiliations.items():
            await storage.pubsub.setAffiliation(service, record.node, jid, affiliation)
        for subscription in record.subscriptions:
            await storage.pubsub.setSubscription(subscription)
        for item in record.items:
            await storage.pubsub.publish(service, record.node, item)


async def runExport(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    domains = ([servedDomain(args.domain, config)] if args.domain
               else list(config.server.domains))
    problems: list[str] = []

    async def run(storage) -> list[pie.Account]:
        users = []
        for domain in domains:
            users.extend(await storage.users.listUsers(domain))
        accounts: list[pie.Account] = []
        queue = iter(users)

        async def worker() -> None:
            for username, domain in queue:
                accounts.append(await _readAccount(storage, username, domain, problems))

        await defer.gatherResults([defer.Deferred.fromCoroutine(worker())
                                   for _ in range(PIPELINE)])
        return accounts

    accounts = await withWholeStorage(config, reactor, run)
    for problem in problems:
        fail(f"warning: {problem}")
    _writeAtomically(args.file, pie.serialize(accounts))
    if args.file != "-":
        say(f"exported {_count(len(accounts), 'account')} of {', '.join(domains)} "
             f"to {args.file}")
    return OK


async def _readAccount(storage, username: str, domain: str,
                       problems: list[str]) -> pie.Account:
    credentials = await storage.users.getCredentials(username, domain) or {}
    roster = await storage.rosters.getRoster(username, domain)
    data = await storage.accountData.getAll(username, domain)
    account = pie.Account(username, domain, credentials=dict(credentials),
                          roster=dict(roster.items))
    if not credentials:
        problems.append(f"{account.jid} has no credentials; importing the file will "
                        f"refuse it until it has a password")

    def stored(key: str, namespace: str) -> list:
        # Stored XML is read back with the safe parser and written out again,
        # so a damaged value is reported here rather than breaking the file.
        try:
            return pie.parseFragment(data[key], namespace)
        except pie.PIEError:
            problems.append(f"skipped the {key!r} data of {account.jid}: not well-formed")
            return []

    if VCARD_KEY in data:
        elements = stored(VCARD_KEY, pie.NS_VCARD)
        if elements:
            account.vcard = elements[0].toXml()
    for key in sorted(data):
        if key.startswith(PRIVATE_PREFIX):
            elements = stored(key, pie.NS_PRIVATE)
            if elements:
                account.private[key[len(PRIVATE_PREFIX):]] = "".join(
                    element.toXml() for element in elements)
    if OFFLINE_IMPORT_KEY in data:
        try:
            messages = json.loads(data[OFFLINE_IMPORT_KEY])
        except ValueError:
            messages = []
            problems.append(f"skipped the offline messages of {account.jid}: not JSON")
        for message in messages:
            try:
                account.offline.extend(element.toXml() for element in
                                       pie.parseFragment(message, pie.NS_CLIENT))
            except (pie.PIEError, TypeError):
                problems.append(f"skipped an offline message of {account.jid}: "
                                f"not well-formed")
    account.pep = await _readPEP(storage, account.jid, problems)
    # Messages the offline feature holds (including imported ones it has
    # moved in) travel with their acceptance time as an XEP-0203 delay, so
    # the next server delivers them with the right stamp.
    for message in await storage.offline.fetch(username, domain):
        try:
            for element in pie.parseFragment(message.xml, pie.NS_CLIENT):
                if not any(child.uri == NS_DELAY for child in element.elements()):
                    element.addElement((NS_DELAY, "delay"))["stamp"] = time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(message.stamp))
                account.offline.append(element.toXml())
        except (pie.PIEError, TypeError):
            problems.append(f"skipped an offline message of {account.jid}: "
                            f"not well-formed")
    return account


async def _readPEP(storage, service: str, problems: list[str]) -> list:
    """
    The account's PEP nodes with everything in them.  Payloads are read
    back with the safe parser and written out again, as other stored XML
    is, so a damaged one is reported and left out rather than breaking
    the file.
    """
    records = []
    for node in await storage.pubsub.listNodes(service):
        items = []
        for item in reversed(await storage.pubsub.getItems(service, node.node)):
            try:
                payload = "".join(element.toXml() for element in
                                  pie.parseFragment(item.payload, piepep.NS_PUBSUB))
            except (pie.PIEError, TypeError):
                problems.append(f"skipped item {item.id!r} of PEP node {node.node!r} of "
                                f"{service}: not well-formed")
                continue
            items.append(replace(item, payload=payload))
        affiliations = {jid: affiliation for _, jid, affiliation in
                        await storage.pubsub.getAffiliations(service, node.node)}
        records.append(PubSubNodeRecord(
            node.node, node.config, tuple(items), affiliations,
            tuple(await storage.pubsub.getSubscriptions(service, node.node))))
    return records


def _writeAtomically(path: str, chunks) -> None:
    """
    Write to a new file readable only by its owner (XEP-0227 §6: the file
    holds credentials), flushed to disk, then renamed over C{path}.
    """
    if path == "-":
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                         suffix=".tmp", dir=directory)
    except OSError as e:
        raise CtlError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as e:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CtlError(f"cannot write {path}: {e.strerror or e}") from None
        raise
    try:
        directoryFD = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directoryFD)
    except OSError:
        pass
    finally:
        os.close(directoryFD)
