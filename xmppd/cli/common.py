# -*- test-case-name: tests.test_ctl,tests.test_ctl_pie -*-
"""
What every area of C{xmppctl} shares: the exit statuses, the one-line error
(L{CtlError}) and how lines are printed, the check that a domain is served
here, opening the server's store for the length of one operation, and
asking the running server over its admin socket.

The areas (L{xmppd.cli.accounts}, L{xmppd.cli.portability},
L{xmppd.cli.check}, L{xmppd.cli.connections}, L{xmppd.cli.hooks}) import
this module and never each other; L{xmppd.cli.ctl} imports them all to
build the command line.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any, TextIO

from xmppd.config import Config, normalizeDomain
from xmppd.core.jid import InvalidJID, prepLocalpart
from xmppd.storage import StorageError, makeStorage
from xmppd.storage.interfaces import NoSuchUser, UserExists

PROG = "xmppctl"

#: Exit statuses.
OK, FAILED, USAGE = 0, 1, 2


class CtlError(Exception):
    """A one-line message for the operator and the exit status that goes with it."""

    def __init__(self, message: str, status: int = FAILED):
        super().__init__(message)
        self.status = status


def say(line: str, stream: TextIO | None = None) -> None:
    """Print one line on C{stream} (standard output) at once."""
    print(line, file=stream or sys.stdout, flush=True)


def fail(message: str) -> None:
    """Print one error line, C{xmppctl: message}, on standard error."""
    say(f"{PROG}: {message}", sys.stderr)


def servedDomain(text: str, config: Config) -> str:
    """C{text} prepared as a domain, which must be one of C{server.domains}."""
    try:
        domain = normalizeDomain(text)
    except ValueError:
        domain = None
    if domain not in config.server.domains:
        raise CtlError(f"{text} is not served here (server.domains: "
                       f"{', '.join(config.server.domains)})")
    return domain


def parseAccount(text: str, config: Config) -> tuple[str, str]:
    """
    Split and prepare C{user@domain} (RFC 7622): the localpart with the
    UsernameCaseMapped profile, the domain as L{xmppd.config} prepares
    served domains.  The domain must be served here.

    @raise CtlError: the address is not a valid bare JID of a served domain.
    """
    localpart, at, domainpart = text.partition("@")
    if not at or not localpart or not domainpart or "@" in domainpart or "/" in domainpart:
        raise CtlError(f"{text!r} is not an account address like romeo@"
                       f"{config.server.domains[0]}")
    try:
        username = prepLocalpart(localpart)
    except InvalidJID:
        raise CtlError(f"{localpart!r} is not a valid username (RFC 7622 "
                       f"localpart)") from None
    return username, servedDomain(domainpart, config)


async def withStorage(config: Config, reactor: Any, operation) -> Any:
    """Open the store, run C{operation(storage.users)}, and always close it."""
    return await withWholeStorage(config, reactor,
                                  lambda storage: operation(storage.users))


async def withWholeStorage(config: Config, reactor: Any, operation) -> Any:
    """Open the store, run C{operation(storage)}, and always close it."""
    storage = makeStorage(config.storage.backend, config.server.data_dir, reactor,
                          config.storage.redis, config.storage.redis_unsafe)
    try:
        await storage.open()
    except (StorageError, sqlite3.Error) as e:
        await storage.close()
        raise CtlError(f"storage: {e}") from None
    try:
        return await operation(storage)
    except (UserExists, NoSuchUser):
        raise
    except (StorageError, sqlite3.Error) as e:
        raise CtlError(f"storage: {e}") from None
    finally:
        await storage.close()


async def askServer(config: Config, reactor: Any, request: dict) -> tuple[dict, bytes]:
    """
    The running server's answer to C{request} on its admin socket
    (L{xmppd.admin.service}), parsed and as the raw line.  When no server
    runs with C{config}, or it refuses, a one-line L{CtlError} with
    L{FAILED}; when the configuration disables the socket, with L{USAGE}.
    """
    # Imported here: only the commands about the running server need it.
    from xmppd.admin import service as admin
    try:
        return await admin.ask(config, reactor, request)
    except admin.AdminError as e:
        raise CtlError(str(e), USAGE if e.unusable else FAILED) from None
