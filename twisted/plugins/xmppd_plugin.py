"""
twistd plugin: C{twistd -n xmppd --config FILE}.

Kept tiny and import-light: twistd imports every plugin to list them, so the
server itself is only imported when this plugin is chosen.
"""

from twisted.application.service import ServiceMaker

xmppd = ServiceMaker(
    "xmppd",
    "xmppd.launch",
    "An XMPP server on Twisted and wokkel",
    "xmppd",
)
