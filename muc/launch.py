# -*- test-case-name: tests.test_e2e_muc_component -*-
"""
How twistd starts the MUC component: C{twistd -n xmppd-muc --config FILE}
(see L{muc.component}).  Same options and the same one-line errors as the
server's (L{xmppd.launch}).
"""

from __future__ import annotations

from xmppd.config import ConfigError
from xmppd.launch import Options as ServerOptions


class Options(ServerOptions):
    longdesc = ("Run the xmppd MUC service (XEP-0045) as an external component "
                "(XEP-0114) of one or more xmppd nodes.  Without --config: "
                "$XMPPD_CONFIG, else ./xmppd.toml.")


def makeService(options: Options):
    from muc.component import makeService as make
    try:
        return make(options["xmppdConfig"])
    except (ConfigError, OSError, ValueError) as e:
        raise SystemExit("xmppd-muc: %s" % (e,))
