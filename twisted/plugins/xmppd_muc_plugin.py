"""
twistd plugin: C{twistd -n xmppd-muc --config FILE}, the MUC service as an
external component (see L{muc.component}).  Import-light, like the server's.
"""

from twisted.application.service import ServiceMaker

xmppdMUC = ServiceMaker(
    "xmppd-muc",
    "muc.launch",
    "xmppd's multi-user chat service as an external component (XEP-0114)",
    "xmppd-muc",
)
