# -*- test-case-name: tests.test_upload -*-
"""
The C{[upload]} section of the configuration: where each served domain's
upload service lives, the public address of its URLs, and the limits of
what users may upload (issue 15 items 5 and 7).

Implements: XEP-0363 1.1.0
"""

from __future__ import annotations

import dataclasses

from xmppd.config import ConfigError, integer, option, section, string
from xmppd.core.checks import domainTemplate

__all__ = ["UploadConfig"]


def publicURL() -> object:
    """An http(s) URL template with C{{domain}}, or "" (the HTTP service's own address)."""

    def check(key: str, value: object) -> str:
        if value == "":
            return ""
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise ConfigError(f"{key}: expected a URL like \"https://{{domain}}:5443\" or "
                              f"\"\", got {value!r}")
        try:
            value.format(domain="example.org")
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"{key}: {value!r} may only use {{domain}}, the served domain")
        if "?" in value or "#" in value or any(c.isspace() for c in value):
            raise ConfigError(f"{key}: {value!r} must be a plain URL without spaces, "
                              "query or fragment")
        return value.rstrip("/")

    return check


@section("upload")
@dataclasses.dataclass(frozen=True)
class UploadConfig:
    domain: str = option(
        "upload.{domain}", domainTemplate("upload.{domain}"),
        "the upload service's domain for each served domain; {domain} is the served domain")
    name: str = option("HTTP File Upload", string(), "the service's name in service discovery")
    public_url: str = option(
        "", publicURL(),
        "where clients reach the HTTP service, before /upload/ (\"https://{domain}:5443\", "
        "or a reverse proxy's \"https://upload.example.org\"); \"\": https://<served "
        "domain>:<port of http.tls_endpoint> (else http.endpoint's)")
    max_file_size: int = option(
        104857600, integer(1), "the largest file in bytes (advertised in disco, XEP-0363 §2)")
    quota: int = option(
        1073741824, integer(1), "bytes one account's files may take together")
    expire: int = option(
        2592000, integer(0),
        "seconds an uploaded file is kept (30 days by default); 0 keeps files for ever")
    slot_lifetime: int = option(
        300, integer(1, 86400), "seconds a slot's PUT URL stays valid")
    slots_per_minute: int = option(
        10, integer(1), "slot requests one account may make per minute (more: resource-constraint)")

    def validate(self) -> None:
        if self.expire and self.expire <= self.slot_lifetime:
            raise ConfigError(f"upload.expire: {self.expire} must be 0 or more than "
                              f"upload.slot_lifetime ({self.slot_lifetime})")
