# twistd -ny xmppd.tac
#
# Reads the configuration from $XMPPD_CONFIG, else ./xmppd.toml, else the
# built-in defaults, and builds the same service tree as the twistd plugin.
from twisted.application import service

from xmppd.config import findConfigFile
from xmppd.launch import loadOrExit, makeServiceOrExit

application = service.Application("xmppd")
makeServiceOrExit(loadOrExit(findConfigFile())).setServiceParent(application)
