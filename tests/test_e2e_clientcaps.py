"""
End-to-end: a slixmpp client with entity capabilities (xep_0115) and a PEP
interest (xep_0163's C{+notify}) logs in, and the real node learns its
features by asking it (L{xmppd.features.clientcaps}).
"""


import pytest_twisted
from twisted.internet import defer

from tests.e2e import DOMAIN, TIMEOUT, reactor, wait
from xmppd.core.hooks import OBSERVE
from xmppd.features.clientcaps.tracker import CAPS_CHANGED, capsOf

ensureDeferred = pytest_twisted.ensureDeferred

AVATAR = "urn:xmpp:avatar:metadata"


def interestLearnt(domain, jid: str, node: str) -> defer.Deferred:
    """Fires once the node knows that C{jid} wants C{node} notifications; at most TIMEOUT."""
    caps = capsOf(domain)
    learnt = defer.Deferred()

    def onChanged(event):
        if event.jid.full() == jid and caps.wantsNotify(event.jid, node) and not learnt.called:
            learnt.callback(event.features)

    if caps.wantsNotify(jid, node):
        return defer.succeed(caps.features(jid))
    domain.hooks.add(CAPS_CHANGED, onChanged, OBSERVE)
    learnt.addBoth(lambda result: (domain.hooks.remove(CAPS_CHANGED, onChanged), result)[1])
    return learnt.addTimeout(TIMEOUT, reactor())


@ensureDeferred
async def test_clientFeaturesLearnt(server):
    """A client announcing caps with avatar+notify is known to want avatar notifications."""
    await server.addUser("romeo")
    romeo = server.client("romeo", "orchard")
    for plugin in ("xep_0030", "xep_0115", "xep_0163"):
        romeo.xmpp.register_plugin(plugin)
    await romeo.login()
    romeo.xmpp.plugin["xep_0163"].add_interest(AVATAR)
    await wait(romeo.xmpp.plugin["xep_0115"].update_caps(broadcast=False))
    domain = server.service.getServiceNamed(DOMAIN)
    learnt = interestLearnt(domain, romeo.jid.full, AVATAR)

    romeo.xmpp.send_presence()
    features = await learnt

    assert AVATAR + "+notify" in features
    assert "http://jabber.org/protocol/disco#info" in features
    assert not capsOf(domain).wantsNotify(romeo.jid.full, "urn:xmpp:avatar:data")
