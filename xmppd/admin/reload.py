# -*- test-case-name: tests.test_reload -*-
"""
Live reload (issue 17 item 5): re-read the configuration file of a running
node and apply what can change without a restart.  SIGHUP, C{xmppctl
reload} (the admin socket's C{reload} command) and the ad-hoc command all
call L{reload}.

The file is read and validated exactly as at start (L{xmppd.config.loadConfig}),
and the certificates it names are loaded, before anything changes: any
error refuses the reload with the same one-line message, and the node keeps
its configuration.  Otherwise:

  - TLS: the certificates are read again (even from unchanged paths, since
    renewing a certificate usually replaces the file), so new connections
    present the new one; connections already made keep theirs;
  - C{[limits]}: new streams get the new limits;
  - C{[log]}: C{verbose} switches the traffic log on or off;
  - options of features: the services beside each domain (MUC, pubsub,
    upload) get the new section, and features that read their options when
    used (through C{domain.config}) see the new values; what a feature
    copied when it started stays until a restart;
  - C{server.domains}: a new host starts (its domain, its MUC, pubsub and
    upload services) and the listeners serve it; a removed host's streams
    are closed with C{host-gone} and its routes removed.

What cannot change while running (L{RESTART_ONLY}: listener endpoints,
storage, the cluster, the admin socket, the set of features) is left as it
was and reported as C{needs a restart: c2s.endpoint}.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from xmppd.config import Config, ConfigError, loadConfig
from xmppd.config.schema import options
from xmppd.core.local import addDomain, removeDomain
from xmppd.stream.tls import (TLSConfigError, ensureCertificate, hostCertificates,
                              serverContextFactory)

log = Logger()

#: Keys (section, key), or whole sections (section, None), that only a
#: restart changes: what listens where, what stores, who the node is.
RESTART_ONLY: frozenset[tuple[str, str | None]] = frozenset({
    ("server", "data_dir"), ("server", "modules"),
    ("c2s", "endpoint"), ("c2s", "direct_tls_endpoint"),
    ("http", None), ("s2s", None), ("components", None),
    ("storage", None), ("cluster", None), ("admin", None),
    # The domains of the services beside each served domain.
    ("muc", "domain"), ("pubsub", "domain"), ("upload", "domain"),
})


class ReloadRefused(Exception):
    """The new configuration cannot be used; C{str()} is its one-line error."""


@dataclasses.dataclass
class Plan:
    """What a reload does: the configuration to run with, and what it says."""

    config: Config
    #: One line per change applied (C{limits.max_stanza_size}, C{domain added: ...}).
    changes: list[str]
    #: One line per change left for a restart (C{needs a restart: c2s.endpoint}).
    restart: list[str]
    added: list[str]
    removed: list[str]


def _sectionDiff(name: str, old: Any, new: Any) -> list[str]:
    if old is None or new is None:
        return [] if old is new else [name]
    return [f"{name}.{f.name}" for f in options(type(new))
            if getattr(old, f.name, None) != getattr(new, f.name)]


def plan(old: Config, new: Config) -> Plan:
    """
    Compare the running configuration C{old} with C{new}: the keys that
    changed, and a configuration that is C{new} except for what only a
    restart changes, which keeps C{old}'s values (L{RESTART_ONLY}).
    """
    sections = dict(new.sections)
    changes: list[str] = []
    restart: list[str] = []
    for name in sorted(set(old.sections) | set(new.sections)):
        oldSection, newSection = old.sections.get(name), new.sections.get(name)
        changed = _sectionDiff(name, oldSection, newSection)
        if not changed:
            continue
        if (name, None) in RESTART_ONLY:
            restart.extend(changed)
            sections[name] = oldSection
            continue
        kept = {}
        for key in changed:
            field = key.split(".", 1)[1] if "." in key else None
            if (name, field) in RESTART_ONLY:
                restart.append(key)
                kept[field] = getattr(oldSection, field)
            else:
                changes.append(key)
        if kept:
            sections[name] = dataclasses.replace(newSection, **kept)
    for domain in sorted(set(old.hosts) | set(new.hosts)):
        if old.hosts.get(domain) != new.hosts.get(domain):
            changes.append(f'hosts."{domain}"')
    core = {f.name for f in dataclasses.fields(Config)} - {"path", "sections", "hosts"}
    config = dataclasses.replace(
        new, sections=MappingProxyType(sections), hosts=new.hosts,
        **{name: sections[name] for name in core})
    oldDomains, newDomains = old.server.domains, config.server.domains
    added = [d for d in newDomains if d not in oldDomains]
    removed = [d for d in oldDomains if d not in newDomains]
    changes = [c for c in changes if c != "server.domains"]
    changes += [f"host added: {d}" for d in added] + [f"host removed: {d}" for d in removed]
    return Plan(config, changes, [f"needs a restart: {key}" for key in restart],
                added, removed)


def prepare(server, path: str | None) -> tuple[Plan, dict]:
    """
    Read and check the configuration at C{path} and the certificates it
    names; nothing changes yet.

    @raise ReloadRefused: with the one-line error the server would give at start.
    """
    if path is None:
        raise ReloadRefused("no configuration file to read again (the server runs "
                            "on the built-in defaults)")
    try:
        new = loadConfig(path)
    except ConfigError as e:
        raise ReloadRefused(str(e)) from None
    reloadPlan = plan(server.config, new)
    components = reloadPlan.config.sections.get("components")
    clash = [d for d in reloadPlan.added if d in (getattr(components, "secrets", None) or {})]
    if clash:
        # The check the component service makes at start (L{xmppd.components.server}).
        raise ReloadRefused(f"components.secrets: {clash[0]!r} is in server.domains too; "
                            f"a domain is served by this server or by a component, not both")
    tls: dict[str, Any] = {}
    try:
        certificate, key = ensureCertificate(reloadPlan.config)
        hosts = hostCertificates(reloadPlan.config)
        tls["c2s"] = serverContextFactory(certificate, key, hosts)
        s2s = _child(server, "s2s")
        if s2s is not None and s2s.serverTLS is not None:
            from xmppd.s2s.verify import ClientCreator, ServerCreator
            tls["s2s"] = (ServerCreator(certificate, key, hosts),
                          ClientCreator(certificate, key, hosts))
    except (TLSConfigError, OSError, ValueError) as e:
        raise ReloadRefused(str(e)) from None
    before = getattr(server.tlsOptions, "fingerprints", {})
    after = tls["c2s"].fingerprints
    for what in sorted(after):
        if before.get(what) != after[what]:
            reloadPlan.changes.append(f"{what}: new certificate")
    return reloadPlan, tls


def _child(server, name: str):
    try:
        return server.getServiceNamed(name)
    except KeyError:
        return None


def apply(server, reloadPlan: Plan, tls: dict) -> defer.Deferred:
    """Run with C{reloadPlan.config} from now on (see the module docstring)."""
    config = reloadPlan.config
    server.config = config
    if "c2s" in tls and server.tlsOptions is not None:
        server.tlsOptions.adopt(tls["c2s"])
    s2s = _child(server, "s2s")
    if "s2s" in tls and s2s is not None:
        s2s.serverTLS.adopt(tls["s2s"][0])
        s2s.clientTLS.adopt(tls["s2s"][1])
    limits = config.limits
    if s2s is not None:
        from xmppd.s2s.service import streamLimits
        s2s.limits = streamLimits(config)
    if config.log.verbose != (server.traffic is not None):
        from xmppd.stream.traffic import TrafficLog
        server.traffic = TrafficLog() if config.log.verbose else None
    c2s = _child(server, "c2s")
    if c2s is not None:
        c2s.peers.maxPerPeer = limits.connections_per_ip
        c2s.authFailures.baseDelay = limits.auth_failure_delay
        c2s.authFailures.maxDelay = limits.auth_failure_delay_max
        for factory in {id(f): f for f in [*c2s.factories, *c2s.transports]}.values():
            factory.configure(config)
            factory.traffic = server.traffic
    http = _child(server, "http")
    if http is not None:
        http.site.peers.maxPerPeer = limits.connections_per_ip
    byType = {type(section): section for section in config.sections.values()}
    for services in server.domainServices.values():
        for each in services:
            # A feature's service (MUC, pubsub, upload) reads its options
            # from the section it was given: give it the new one.
            settings = getattr(each, "settings", None)
            if type(settings) in byType:
                each.settings = byType[type(settings)]
    admin = _child(server, "admin")
    for domain in reloadPlan.added:
        local = addDomain(server, domain)[0]
        if admin is not None:
            # Ad-hoc commands (XEP-0050/0133) at the new domain's JID too.
            admin.serveDomain(local)
    stopping = []
    for domain in reloadPlan.removed:
        if c2s is not None:
            for factory in [*c2s.factories, *c2s.transports]:
                for stream in list(factory.streams):
                    if getattr(stream, "domain", None) == domain:
                        stream.streamError("host-gone")
        stopping.append(removeDomain(server, domain))
    return defer.gatherResults(stopping, consumeErrors=True)


def reload(server) -> defer.Deferred:
    """
    Read the node's configuration file again and apply it (see the module
    docstring).  A Deferred firing with the lines that say what changed
    (changes applied, then what needs a restart; empty when nothing did),
    or failing with L{ReloadRefused} whose text is the one-line error.
    Each line is logged too.
    """
    try:
        reloadPlan, tls = prepare(server, server.config.path)
    except ReloadRefused as e:
        log.error("Reload refused, keeping the running configuration: {error}",
                  error=str(e))
        return defer.fail(e)
    lines = reloadPlan.changes + reloadPlan.restart
    d = apply(server, reloadPlan, tls)

    def done(_):
        for line in lines:
            log.info("Reload: {line}", line=line)
        if not lines:
            log.info("Reload: nothing changed")
        return lines

    return d.addCallback(done)


class HangupService(service.Service):
    """
    SIGHUP reloads the configuration while the node runs (twistd adds this
    service; a program embedding xmppd keeps its own signal handling).  The
    handler only schedules L{reload} in the reactor, and the one it
    replaced is put back when the node stops.
    """

    def __init__(self, server, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.server = server
        self.reactor = reactor
        self.previous = None

    def startService(self) -> None:
        import signal
        service.Service.startService(self)
        if hasattr(signal, "SIGHUP"):
            self.previous = signal.signal(signal.SIGHUP, self.hangup)

    def stopService(self):
        import signal
        service.Service.stopService(self)
        if self.previous is not None:
            signal.signal(signal.SIGHUP, self.previous)
            self.previous = None

    def hangup(self, signum, frame) -> None:
        # Refusals are logged by reload itself.
        self.reactor.callFromThread(
            lambda: reload(self.server).addErrback(lambda failure: failure.trap(ReloadRefused)))
