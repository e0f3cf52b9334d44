"""
Tests for what OMEMO (XEP-0384) asks of PEP (L{xmppd.features.pep}), in
memory: device lists and bundles of both versions (C{urn:xmpp:omemo:2}
and C{eu.siacs.conversations.axolotl}) published with publish-options
C{access_model=open} as slixmpp-omemo, Conversations and Dino publish
them, read by a stranger, republished by a second device (the
preconditions match), reconfigured when an older node disagrees, and a
device list change notified to a contact with C{+notify} and to a
stranger who subscribed explicitly.
"""

from __future__ import annotations

from tests.domainhelpers import errorCondition
from tests.helpers import parse
from xmppd.core.jid import parseJID
from tests.test_pep import (
    JULIET, JULIET2, NS_INFO, NS_PUBSUB, ROMEO, TYBALT, PEPDomain, answer, events, pubsubCondition,
)

NS_OWNER = NS_PUBSUB + "#owner"
TWO = "urn:xmpp:omemo:2"
DEVICES = TWO + ":devices"
BUNDLES = TWO + ":bundles"
OLD = "eu.siacs.conversations.axolotl"
OLD_DEVICES = OLD + ".devicelist"
JULIET_BARE = "juliet@example.org"

#: What slixmpp-omemo asks for the device list nodes and the old bundle nodes.
LIST_OPTIONS = {"pubsub#access_model": "open", "pubsub#persist_items": "true",
                "pubsub#max_items": "1"}
#: What it asks for the urn:xmpp:omemo:2 bundles node (one item per device).
BUNDLE_OPTIONS = {"pubsub#access_model": "open", "pubsub#persist_items": "true",
                  "pubsub#max_items": "max"}


def deviceList(*ids) -> str:
    return "<devices xmlns='%s'>%s</devices>" % (
        TWO, "".join("<device id='%d'/>" % ident for ident in ids))


def bundle(ident) -> str:
    return "<bundle xmlns='%s'><spk id='%d'>c3Br</spk><ik>aWs=</ik></bundle>" % (TWO, ident)


def oldList(*ids) -> str:
    return "<list xmlns='%s'>%s</list>" % (OLD, "".join("<device id='%d'/>" % i for i in ids))


def itemsQuery(domain, sender, node, maxItems=None, itemIds=()):
    """C{sender} asks Juliet's C{node} for items; the reply."""
    attribute = " max_items='%d'" % maxItems if maxItems else ""
    body = "".join("<item id='%s'/>" % ident for ident in itemIds)
    stream = domain.sessions.get(parseJID(sender)).stream
    ident = domain.iq(sender, "<pubsub xmlns='%s'><items node='%s'%s>%s</items></pubsub>"
                      % (NS_PUBSUB, node, attribute, body), to=JULIET_BARE, type="get")
    return answer(stream, ident)


def devicesIn(reply) -> list:
    """The device ids in the one device list item of C{reply} (re-parsed: payloads go out as text)."""
    [item] = parse(reply.toXml()).pubsub.items.elements(NS_PUBSUB, "item")
    [devices] = item.elements(TWO, "devices")
    return [device["id"] for device in devices.elements(TWO, "device")]


def itemIds(reply) -> list:
    return [item["id"] for item in reply.pubsub.items.elements(NS_PUBSUB, "item")]


def publishDevice(domain, sender, device, devices):
    """One device's start-up as slixmpp-omemo does it: its bundle, then the device list."""
    stream = domain.sessions.get(parseJID(sender)).stream
    replies = [answer(stream, domain.publish(sender, node=BUNDLES, itemId=str(device),
                                             item=bundle(device), options=BUNDLE_OPTIONS)),
               answer(stream, domain.publish(sender, node=DEVICES, itemId="current",
                                             item=deviceList(*devices),
                                             options=LIST_OPTIONS))]
    return [reply["type"] for reply in replies]


def test_deviceListOpenToStranger(tmp_path):
    """A stranger (no presence subscription) reads Juliet's urn:xmpp:omemo:2 device list."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    assert publishDevice(domain, JULIET, 11, [11]) == ["result", "result"]
    node = domain.storage.pubsub.getNode(JULIET_BARE, DEVICES).result
    assert node.config["pubsub#access_model"] == "open"
    domain.online(TYBALT)
    reply = itemsQuery(domain, TYBALT, DEVICES, maxItems=1)
    assert reply["type"] == "result"
    assert itemIds(reply) == ["current"]
    assert devicesIn(reply) == ["11"]


def test_bundleByIdToStranger(tmp_path):
    """A stranger fetches one device's bundle by its item id among the devices' bundles."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.online(JULIET2)
    assert publishDevice(domain, JULIET, 11, [11]) == ["result", "result"]
    assert publishDevice(domain, JULIET2, 22, [11, 22]) == ["result", "result"]
    domain.online(TYBALT)
    reply = itemsQuery(domain, TYBALT, BUNDLES, itemIds=["22"])
    assert reply["type"] == "result"
    assert itemIds(reply) == ["22"]
    assert sorted(itemIds(itemsQuery(domain, TYBALT, BUNDLES))) == ["11", "22"]


def test_secondDeviceMeetsPreconditions(tmp_path):
    """A second device republishing with the same publish-options (max_items max too) succeeds."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.online(JULIET2)
    publishDevice(domain, JULIET, 11, [11])
    assert publishDevice(domain, JULIET2, 22, [11, 22]) == ["result", "result"]
    domain.online(TYBALT)
    reply = itemsQuery(domain, TYBALT, DEVICES)
    assert itemIds(reply) == ["current"]
    assert devicesIn(reply) == ["11", "22"]


def test_missingBundleItemNotFound(tmp_path):
    """Asking for the bundle of a device that published none gives an empty result, not an error."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    publishDevice(domain, JULIET, 11, [11])
    domain.online(TYBALT)
    reply = itemsQuery(domain, TYBALT, BUNDLES, itemIds=["99"])
    assert reply["type"] == "result"
    assert itemIds(reply) == []


def test_missingDeviceListNotFound(tmp_path):
    """Before a first OMEMO publish, the device list node is item-not-found (clients treat it as empty)."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.online(TYBALT)
    assert errorCondition(itemsQuery(domain, TYBALT, DEVICES, maxItems=1)) == "item-not-found"


def test_oldmemoNodesOpen(tmp_path):
    """The old version's device list and per-device bundle node are open and read with max_items 1."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    bundleNode = OLD + ".bundles:11"
    for node, item in ((bundleNode, "<bundle xmlns='%s'/>" % OLD), (OLD_DEVICES, oldList(11))):
        ident = domain.publish(JULIET, node=node, item=item, itemId="current",
                               options=LIST_OPTIONS)
        assert answer(juliet, ident)["type"] == "result"
    domain.online(TYBALT)
    for node in (bundleNode, OLD_DEVICES):
        reply = itemsQuery(domain, TYBALT, node, maxItems=1)
        assert reply["type"] == "result"
        assert itemIds(reply) == ["current"]


def test_deviceListNotifiedToContact(tmp_path):
    """Romeo, a contact whose caps say devices+notify, hears of Juliet's new device; Tybalt does not."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO, [DEVICES, OLD_DEVICES])
    tybalt = domain.online(TYBALT, [DEVICES])
    romeo.take()
    publishDevice(domain, JULIET, 11, [11])
    assert events(romeo, DEVICES) == [(JULIET_BARE, ["current"])]
    assert events(romeo, BUNDLES) == []
    assert events(tybalt, DEVICES) == []


def test_strangerSubscribedNotified(tmp_path):
    """A stranger subscribing to the open device list (as slixmpp-omemo does) gets it, then its changes."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    publishDevice(domain, JULIET, 11, [11])
    tybalt = domain.online(TYBALT)
    ident = domain.iq(TYBALT, "<pubsub xmlns='%s'><subscribe node='%s' jid='%s'/></pubsub>"
                      % (NS_PUBSUB, DEVICES, "tybalt@example.org"), to=JULIET_BARE)
    assert answer(tybalt, ident)["type"] == "result"
    domain.clock.advance(0)
    assert events(tybalt, DEVICES) == [(JULIET_BARE, ["current"])]
    tybalt.take()
    domain.online(JULIET2)
    publishDevice(domain, JULIET2, 22, [11, 22])
    assert events(tybalt, DEVICES) == [(JULIET_BARE, ["current"])]


def test_reconfigureAfterPreconditionNotMet(tmp_path):
    """A device list made with presence access refuses open; the owner reconfigures, then publishes."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    domain.publish(JULIET, node=DEVICES, item=deviceList(11))
    reply = answer(juliet, domain.publish(JULIET, node=DEVICES, item=deviceList(11),
                                          options=LIST_OPTIONS))
    assert errorCondition(reply) == "conflict"
    assert pubsubCondition(reply) == "precondition-not-met"
    fields = "".join("<field var='%s'><value>%s</value></field>" % pair
                     for pair in LIST_OPTIONS.items())
    ident = domain.iq(JULIET, "<pubsub xmlns='%s'><configure node='%s'>"
                              "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
                              "type='hidden'><value>%s#node_config</value></field>%s</x>"
                              "</configure></pubsub>" % (NS_OWNER, DEVICES, NS_PUBSUB, fields),
                      to=JULIET_BARE)
    assert answer(juliet, ident)["type"] == "result"
    reply = answer(juliet, domain.publish(JULIET, node=DEVICES, item=deviceList(11),
                                          options=LIST_OPTIONS))
    assert reply["type"] == "result"
    domain.online(TYBALT)
    assert itemIds(itemsQuery(domain, TYBALT, DEVICES)) == ["current"]


def test_bundleRetractedAndOldBundleNodeDeleted(tmp_path):
    """A removed device's bundle is retracted (omemo:2) and its node deleted (old version)."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    publishDevice(domain, JULIET, 11, [11])
    oldNode = OLD + ".bundles:11"
    domain.publish(JULIET, node=oldNode, item="<bundle xmlns='%s'/>" % OLD,
                   options=LIST_OPTIONS)
    ident = domain.iq(JULIET, "<pubsub xmlns='%s'><retract node='%s' notify='false'>"
                              "<item id='11'/></retract></pubsub>" % (NS_PUBSUB, BUNDLES),
                      to=JULIET_BARE)
    assert answer(juliet, ident)["type"] == "result"
    ident = domain.iq(JULIET, "<pubsub xmlns='%s'><delete node='%s'/></pubsub>"
                      % (NS_OWNER, oldNode), to=JULIET_BARE)
    assert answer(juliet, ident)["type"] == "result"
    domain.online(TYBALT)
    assert itemIds(itemsQuery(domain, TYBALT, BUNDLES)) == []
    assert errorCondition(itemsQuery(domain, TYBALT, oldNode, maxItems=1)) == "item-not-found"


def test_deviceListsOnContactLogin(tmp_path):
    """Romeo, logging in after Juliet set OMEMO up, gets her device lists of both versions."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    publishDevice(domain, JULIET, 11, [11])
    assert answer(juliet, domain.publish(JULIET, node=OLD_DEVICES, item=oldList(11),
                                         options=LIST_OPTIONS))["type"] == "result"
    romeo = domain.online(ROMEO, [DEVICES, OLD_DEVICES])
    domain.clock.advance(0)
    assert events(romeo, DEVICES) == [(JULIET_BARE, ["current"])]
    assert events(romeo, OLD_DEVICES) == [(JULIET_BARE, ["current"])]
    assert events(romeo, BUNDLES) == []


def test_accountAdvertisesWhatOMEMOClientsCheck(tmp_path):
    """disco#info on one's own account lists the pubsub features OMEMO clients look for first."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.iq(JULIET, "<query xmlns='%s'/>" % NS_INFO,
                      to=JULIET_BARE, type="get")
    reply = answer(juliet, ident)
    features = {f["var"] for f in reply.query.elements(NS_INFO, "feature")}
    for feature in ("publish-options", "access-open", "persistent-items", "config-node",
                    "item-ids", "retract-items", "delete-nodes", "auto-create"):
        assert NS_PUBSUB + "#" + feature in features
