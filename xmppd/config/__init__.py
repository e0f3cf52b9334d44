# -*- test-case-name: tests.test_config -*-
"""
The server's configuration: one TOML file, validated once, frozen.

  - L{xmppd.config.schema}: the option DSL (L{section}, L{option}, the
    checks such as L{integer} or L{endpointString}, L{ConfigError});
  - L{xmppd.config.sections}: the node's own sections (C{[server]},
    C{[c2s]}, C{[http]}, C{[sasl]}, C{[tls]}, C{[storage]}, C{[limits]}, C{[log]});
  - L{xmppd.config.registry}: features by name, and the modules that declare
    sections of their own;
  - L{xmppd.config.loading}: reading and validating the file into a
    L{Config} (L{loadConfig}), and finding it (L{findConfigFile});
  - L{xmppd.config.hosts}: virtual hosts, the C{[hosts."example.org"]}
    tables and the effective settings of a served domain.

The names features and services use are re-exported here, so a feature
declares its options with C{from xmppd.config import integer, option,
section} whichever module defines them.  The configuration sits at the
bottom of the layers (README, "Where things are"): it imports no other part
of xmppd, and loads features only by name.
"""

from xmppd.config.schema import (SECTIONS, Check, ConfigError, Table, bareJIDList, boolean, choice, describe,
                                 domainList, endpointString, filePath, integer, normalizeDomain,
                                 number, option, options, section, splitEndpoint, string,
                                 stringTable, unknownKey)
from xmppd.config.sections import (SASL_MECHANISMS, C2SConfig, HTTPConfig, LimitsConfig, LogConfig,
                                   SASLConfig, ServerConfig, StorageConfig, TLSConfig, featureList)
from xmppd.config.hosts import HOSTS
from xmppd.config.loading import (CONFIG_ENVIRONMENT, DEFAULT_CONFIG, Config, configFromDict,
                                  findConfigFile, loadConfig)

__all__ = [
    "C2SConfig", "CONFIG_ENVIRONMENT", "HTTPConfig", "Check", "Config", "ConfigError", "DEFAULT_CONFIG", "HOSTS",
    "LimitsConfig", "LogConfig", "SASLConfig", "SASL_MECHANISMS", "SECTIONS", "ServerConfig", "StorageConfig", "TLSConfig", "Table",
    "bareJIDList", "boolean", "choice", "configFromDict", "describe", "domainList", "endpointString", "featureList", "filePath",
    "findConfigFile", "integer", "loadConfig", "normalizeDomain", "number", "option", "options",
    "section", "splitEndpoint", "string", "stringTable", "unknownKey",
]
