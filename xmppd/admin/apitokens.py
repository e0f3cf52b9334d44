# -*- test-case-name: tests.test_httpapi -*-
"""
The tokens of the HTTP API (L{xmppd.admin.api}, issue 17 item 6): one
JSON file, C{<server.data_dir>/api_tokens.json}, written atomically (a
temporary file renamed over it) and readable by its owner only.  A token
is 32 random bytes, URL-safe base64; only its SHA-256 is kept, with a
name, a scope (C{send} or C{admin}) and when it was made, so the file
never lets anyone call the API, and a token is shown once, when made.

A file and not the store, so tokens work the same on every storage
backend, including C{memory} (whose data no C{xmppctl} could reach).
The server reads the file again when it changes (its modification time
and size), so a token made or revoked with C{xmppctl} counts from the next
request, without a reload.

On a cluster (a C{[cluster]} section) the tokens are the cluster's, not a
node's: they live in its Redis and every node keeps a copy in memory
(L{xmppd.admin.clustertokens}), so an integrator behind a load balancer
uses one token on every node; the file is then ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

#: The file, in C{server.data_dir}.
TOKENS_FILE = "api_tokens.json"
#: What a token may do: C{send} messages only, or every call (C{admin}).
SCOPES = ("send", "admin")


class TokenError(Exception):
    """A token cannot be made or revoked, or the file is unreadable; one line."""


@dataclass(frozen=True)
class Token:
    name: str
    scope: str
    created: float
    digest: str


def digestOf(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def checkNew(name: str, scope: str) -> None:
    """Refuse, in one line, a name or a scope a new token may not have."""
    if not name or len(name) > 100 or not name.isprintable() or name.strip() != name:
        raise TokenError("a token's name is 1 to 100 printable characters")
    if scope not in SCOPES:
        raise TokenError(f"the scope is one of {', '.join(SCOPES)}, not {scope!r}")


def newToken() -> str:
    """A new token: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


class TokenFile:
    """The tokens of the data directory C{dataDir} (see the module docstring)."""

    def __init__(self, dataDir: str):
        self.path = os.path.join(dataDir, TOKENS_FILE)
        self._seen: tuple | None = None
        self._tokens: list[Token] = []

    def load(self) -> list[Token]:
        """The tokens, read again only when the file changed."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._tokens = None, []
            return []
        except OSError as e:
            raise TokenError(f"{self.path}: {e.strerror}") from None
        key = (info.st_mtime_ns, info.st_size, info.st_ino)
        if key == self._seen:
            return self._tokens
        try:
            with open(self.path, encoding="utf-8") as f:
                rows = json.load(f)
            tokens = [Token(str(r["name"]), str(r["scope"]), float(r["created"]),
                            str(r["sha256"])) for r in rows]
        except OSError as e:
            raise TokenError(f"{self.path}: {e.strerror}") from None
        except (ValueError, TypeError, KeyError):
            raise TokenError(f"{self.path} is not a token list; fix or remove it") from None
        self._seen, self._tokens = key, tokens
        return tokens

    def _save(self, tokens: list[Token]) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        temporary = self.path + ".tmp"
        rows = [{"name": t.name, "scope": t.scope, "created": t.created, "sha256": t.digest}
                for t in tokens]
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        self._seen = None

    def create(self, name: str, scope: str) -> str:
        """Make the token C{name}; the token itself, which is kept nowhere."""
        checkNew(name, scope)
        tokens = self.load()
        if any(t.name == name for t in tokens):
            raise TokenError(f"there is a token {name!r} already; revoke it first")
        token = newToken()
        self._save([*tokens, Token(name, scope, time.time(), digestOf(token))])
        return token

    def revoke(self, name: str) -> None:
        tokens = self.load()
        kept = [t for t in tokens if t.name != name]
        if len(kept) == len(tokens):
            raise TokenError(f"there is no token {name!r}")
        self._save(kept)

    def check(self, token: str) -> Token | None:
        """The token C{token} is, or C{None}; every digest is compared, in constant time."""
        digest = digestOf(token)
        found = None
        for t in self.load():
            if hmac.compare_digest(t.digest, digest):
                found = t
        return found
