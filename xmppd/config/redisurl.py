# -*- test-case-name: tests.test_config -*-
"""
Redis addresses in the configuration (C{[storage] redis}, C{[cluster]
redis}): the URL form every Redis tool uses,
C{redis://[[user]:password@]host[:port][/db]}, and C{rediss://} for TLS.

Parsed here, in the configuration layer, so that a mistyped URL is refused
at start with a line naming the key (L{redisURL}), and the code that
connects (L{xmppd.storage.redisclient}) gets a L{RedisAddress}, never a
string to parse again.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import unquote, urlsplit

from xmppd.config.schema import Check, ConfigError, describe

DEFAULT_PORT = 6379


@dataclasses.dataclass(frozen=True)
class RedisAddress:
    """Where a Redis is and how to log in to it; C{str()} hides the password."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    tls: bool = False

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        login = ""
        if self.username or self.password:
            login = (self.username or "") + (":***" if self.password else "") + "@"
        return f"{scheme}://{login}{self.host}:{self.port}/{self.db}"


def parseRedisURL(text: str) -> RedisAddress:
    """The L{RedisAddress} of C{text}; ValueError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected a URL like \"redis://127.0.0.1:6379/0\"")
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("expected a URL starting with redis:// or rediss:// (TLS), "
                         "like \"redis://127.0.0.1:6379/0\"")
    if parts.query or parts.fragment:
        raise ValueError("a Redis URL takes no ?query or #fragment here")
    host = parts.hostname
    if not host:
        raise ValueError("the URL names no host; write redis://HOST:PORT/DB")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database must be a number (like /0), got /{path}")
    return RedisAddress(host=host, port=port, db=int(path or 0),
                        username=unquote(parts.username) if parts.username else None,
                        password=unquote(parts.password) if parts.password is not None else None,
                        tls=parts.scheme == "rediss")


def redisURL(allowEmpty: bool = False) -> Check:
    """
    A Redis URL, kept as a L{RedisAddress}; an empty string, when allowed,
    means "not set" and stays C{None}.
    """

    def check(key: str, value: Any) -> RedisAddress | None:
        if value == "" and allowEmpty:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a Redis URL (a string) like "
                              f"\"redis://127.0.0.1:6379/0\", got {describe(value)}")
        try:
            return parseRedisURL(value)
        except ValueError as e:
            raise ConfigError(f"{key}: {e}")

    return check
