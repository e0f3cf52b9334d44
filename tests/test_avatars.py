"""
Tests for L{xmppd.features.avatars}: user avatars (XEP-0084) on PEP, kept
in step with the vCard photo (XEP-0398), and the photo's hash in presence
(XEP-0153), over one in-memory domain.
"""

from __future__ import annotations

import base64
import hashlib

from twisted.internet import defer

from tests.domainhelpers import fromClient
from tests.helpers import parse
from tests.test_pep import JULIET, NS_PUBSUB, ROMEO, TYBALT, PEPDomain, answer, events
from xmppd.core.jid import parseJID
from xmppd.features.avatars import (NS_CONVERSION, NS_DATA, NS_METADATA, NS_UPDATE,
                                    AvatarsHandler, photoOf)
from xmppd.features.vcard import NS_VCARD, loadVCard

IMAGE = b"\x89PNG\r\n\x1a\n not really a png, but bytes all the same"
IMAGE_ID = hashlib.sha1(IMAGE).hexdigest()
IMAGE_B64 = base64.b64encode(IMAGE).decode("ascii")
OTHER = b"GIF89a another picture"
OTHER_ID = hashlib.sha1(OTHER).hexdigest()


class AvatarDomain(PEPDomain):
    """L{PEPDomain} with the vCard, avatars and disco features."""

    def __init__(self, tmp_path, subscription="both", sections=None):
        PEPDomain.__init__(self, tmp_path, subscription, sections=sections,
                           features=("disco", "clientcaps", "pep", "vcard", "avatars"))

    def publishAvatar(self, sender, image=IMAGE, kind="image/png", options=None):
        """What a XEP-0084 client does: the data first, then the metadata (§4.1, §4.2)."""
        itemId = hashlib.sha1(image).hexdigest()
        self.publish(sender, node=NS_DATA, itemId=itemId, options=options,
                     item="<data xmlns='%s'>%s</data>" % (
                         NS_DATA, base64.b64encode(image).decode("ascii")))
        return self.publish(sender, node=NS_METADATA, itemId=itemId, options=options,
                            item="<metadata xmlns='%s'><info id='%s' bytes='%d' type='%s' "
                                 "width='64' height='64'/></metadata>" % (
                                     NS_METADATA, itemId, len(image), kind))

    def vcard(self, user):
        return defer.ensureDeferred(loadVCard(self.domain, user, "example.org")).result


makeDomain = AvatarDomain


def vcardWithPhoto(binval=IMAGE_B64, kind="image/png"):
    return ("<vCard xmlns='%s'><FN>Juliet</FN><PHOTO><TYPE>%s</TYPE><BINVAL>%s</BINVAL>"
            "</PHOTO></vCard>" % (NS_VCARD, kind, binval))


# -- XEP-0084 on PEP ----------------------------------------------------------------

def test_metadataNotifiedThroughCaps(tmp_path):
    """A contact whose client says metadata+notify is told of the new avatar, with its info."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO, [NS_METADATA])
    domain.publishAvatar(JULIET)
    assert events(romeo, NS_METADATA) == [("juliet@example.org", [IMAGE_ID])]
    assert events(romeo, NS_DATA) == []
    [message] = [s for s in romeo.sent if s.name == "message"]
    info = message.event.items.item.metadata.info
    assert (info["bytes"], info["type"], info["width"]) == (str(len(IMAGE)), "image/png", "64")


def test_dataFetchedByItemId(tmp_path):
    """A contact fetches the image from the data node by the id the metadata gave."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO)
    domain.publishAvatar(JULIET)
    ident = domain.iq(ROMEO, "<pubsub xmlns='%s'><items node='%s'><item id='%s'/></items>"
                      "</pubsub>" % (NS_PUBSUB, NS_DATA, IMAGE_ID),
                      to="juliet@example.org", type="get")
    reply = parse(answer(romeo, ident).toXml())
    assert reply["type"] == "result"
    assert str(reply.pubsub.items.item.data).strip() == IMAGE_B64


def test_openAccessReadableByStranger(tmp_path):
    """An avatar published with access model open is readable by someone not a contact."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    tybalt = domain.online(TYBALT)
    domain.publishAvatar(JULIET, options={"pubsub#access_model": "open"})
    ident = domain.iq(TYBALT, "<pubsub xmlns='%s'><items node='%s'/></pubsub>"
                      % (NS_PUBSUB, NS_DATA), to="juliet@example.org", type="get")
    assert answer(tybalt, ident)["type"] == "result"


def test_presenceAccessRefusesStranger(tmp_path):
    """With the default access model a stranger cannot read the avatar's data."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    tybalt = domain.online(TYBALT)
    domain.publishAvatar(JULIET)
    ident = domain.iq(TYBALT, "<pubsub xmlns='%s'><items node='%s'/></pubsub>"
                      % (NS_PUBSUB, NS_DATA), to="juliet@example.org", type="get")
    assert answer(tybalt, ident)["type"] == "error"


# -- XEP-0398 §2 discovery -------------------------------------------------------------

def test_conversionAdvertised(tmp_path):
    """disco#info on an account lists urn:xmpp:pep-vcard-conversion:0."""
    domain = makeDomain(tmp_path)
    handler = domain.handler(AvatarsHandler)
    features = handler.getDiscoInfo(parseJID(JULIET), parseJID("juliet@example.org"))
    assert [f for f in features if f == NS_CONVERSION]
    assert handler.getDiscoInfo(parseJID(JULIET), parseJID("example.org")) == []


# -- XEP-0398 §3.1 PEP to vCard ----------------------------------------------------------

def test_pepAvatarBecomesVCardPhoto(tmp_path):
    """An avatar published in PEP shows as the vCard photo an old client reads."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.send("<iq from='%s' type='set' id='v'><vCard xmlns='%s'><FN>Juliet</FN></vCard>"
                "</iq>" % (JULIET, NS_VCARD))
    domain.publishAvatar(JULIET)
    vcard = domain.vcard("juliet")
    assert photoOf(vcard)[:2] == (IMAGE_ID, "image/png")
    assert str(vcard.FN) == "Juliet"


def test_dataNotMatchingIdIgnored(tmp_path):
    """Metadata whose id is not the SHA-1 of the data leaves the vCard alone."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET, node=NS_DATA, itemId=OTHER_ID,
                   item="<data xmlns='%s'>%s</data>" % (NS_DATA, IMAGE_B64))
    domain.publish(JULIET, node=NS_METADATA, itemId=OTHER_ID,
                   item="<metadata xmlns='%s'><info id='%s' bytes='1' type='image/gif'/>"
                        "</metadata>" % (NS_METADATA, OTHER_ID))
    assert domain.vcard("juliet") is None


def test_urlInfoSkipped(tmp_path):
    """Of several infos the one without a url is converted (§3.1)."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET, node=NS_DATA, itemId=IMAGE_ID,
                   item="<data xmlns='%s'>%s</data>" % (NS_DATA, IMAGE_B64))
    domain.publish(JULIET, node=NS_METADATA, itemId=IMAGE_ID,
                   item="<metadata xmlns='%s'><info id='ffff' bytes='9' type='image/jpeg' "
                        "url='https://example.org/a.jpg'/><info id='%s' bytes='%d' "
                        "type='image/png'/></metadata>" % (NS_METADATA, IMAGE_ID, len(IMAGE)))
    assert photoOf(domain.vcard("juliet"))[0] == IMAGE_ID


def test_emptyMetadataRemovesPhoto(tmp_path):
    """Disabling the avatar (empty metadata, XEP-0084 §4.5) removes the vCard photo."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.publishAvatar(JULIET)
    domain.publish(JULIET, node=NS_METADATA, itemId="current",
                   item="<metadata xmlns='%s'/>" % (NS_METADATA,))
    assert photoOf(domain.vcard("juliet")) is None


# -- XEP-0398 §3.2 vCard to PEP ----------------------------------------------------------

def test_vcardPhotoPublishedInPEP(tmp_path):
    """A photo set by an old client's vCard reaches contacts as a XEP-0084 avatar."""
    domain = makeDomain(tmp_path)
    juliet = domain.online(JULIET)
    romeo = domain.online(ROMEO, [NS_METADATA])
    domain.send("<iq from='%s' type='set' id='v'>%s</iq>" % (JULIET, vcardWithPhoto()))
    assert [s["type"] for s in juliet.sent if s.getAttribute("id") == "v"] == ["result"]
    assert events(romeo, NS_METADATA) == [("juliet@example.org", [IMAGE_ID])]
    data = domain.storage.pubsub.getItems("juliet@example.org", NS_DATA, [IMAGE_ID]).result
    assert parse(data[0].payload).children[0].strip() == IMAGE_B64


def test_noLoop(tmp_path):
    """Each avatar change gives contacts exactly one notification, whichever side it came from."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO, [NS_METADATA])
    domain.publishAvatar(JULIET)
    domain.send("<iq from='%s' type='set' id='v'>%s</iq>" % (
        JULIET, vcardWithPhoto(base64.b64encode(OTHER).decode("ascii"), "image/gif")))
    domain.send("<iq from='%s' type='set' id='w'>%s</iq>" % (
        JULIET, vcardWithPhoto(base64.b64encode(OTHER).decode("ascii"), "image/gif")))
    assert events(romeo, NS_METADATA) == [("juliet@example.org", [IMAGE_ID]),
                                          ("juliet@example.org", [OTHER_ID])]


def test_vcardWithoutPhotoLeavesPEP(tmp_path):
    """A vCard stored without a photo does not erase the PEP avatar."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO, [NS_METADATA])
    domain.publishAvatar(JULIET)
    domain.send("<iq from='%s' type='set' id='v'><vCard xmlns='%s'><FN>J</FN></vCard></iq>"
                % (JULIET, NS_VCARD))
    assert len(events(romeo, NS_METADATA)) == 1


# -- XEP-0398 §4, XEP-0153 §4.1 the hash in presence --------------------------------------

def hashIn(presence):
    [update] = list(presence.elements(NS_UPDATE, "x"))
    return str(update.photo)


def test_presenceGetsHash(tmp_path):
    """The user's presence carries the current photo hash, replacing the client's."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.publishAvatar(JULIET)
    presence = fromClient(domain, "<presence from='%s'><x xmlns='%s'><photo>0bad</photo></x>"
                                  "</presence>" % (JULIET, NS_UPDATE))
    domain.clock.advance(0)
    assert hashIn(presence) == IMAGE_ID


def test_presenceHashFromStorage(tmp_path):
    """After a restart the hash comes from the stored vCard, then from memory."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.send("<iq from='%s' type='set' id='v'>%s</iq>" % (JULIET, vcardWithPhoto()))
    handler = domain.handler(AvatarsHandler)
    handler.hashes.clear()
    presence = fromClient(domain, "<presence from='%s'/>" % (JULIET,))
    domain.clock.advance(0)
    assert hashIn(presence) == IMAGE_ID
    assert handler.hashes["juliet@example.org"] == IMAGE_ID


def test_presenceWithoutPhoto(tmp_path):
    """An account without a photo advertises an empty photo element (no avatar)."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    presence = fromClient(domain, "<presence from='%s' to='romeo@example.org'/>" % (JULIET,))
    domain.clock.advance(0)
    assert hashIn(presence) == ""


def test_presenceHashFollowsChange(tmp_path):
    """A new vCard photo changes the hash of the next presence without reading storage."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    fromClient(domain, "<presence from='%s'/>" % (JULIET,))
    domain.send("<iq from='%s' type='set' id='v'>%s</iq>" % (JULIET, vcardWithPhoto()))
    presence = fromClient(domain, "<presence from='%s'/>" % (JULIET,))
    assert hashIn(presence) == IMAGE_ID


def test_emptyPhotoUntouched(tmp_path):
    """A client's explicit empty photo element goes out as it was (XEP-0398 §4)."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.publishAvatar(JULIET)
    presence = fromClient(domain, "<presence from='%s'><x xmlns='%s'><photo/></x></presence>"
                                  % (JULIET, NS_UPDATE))
    domain.clock.advance(0)
    assert hashIn(presence) == ""


def test_emptyUpdateOverwritten(tmp_path):
    """An update element without a photo child is overwritten with the hash (XEP-0398 §4)."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    domain.publishAvatar(JULIET)
    presence = fromClient(domain, "<presence from='%s'><x xmlns='%s'/></presence>"
                                  % (JULIET, NS_UPDATE))
    domain.clock.advance(0)
    assert hashIn(presence) == IMAGE_ID


def test_hashCacheBounded(tmp_path):
    """The node keeps the hashes of at most [avatars] accounts_cached accounts."""
    domain = AvatarDomain(tmp_path, sections={"avatars": {"accounts_cached": 1}})
    domain.online(JULIET)
    domain.online(ROMEO)
    fromClient(domain, "<presence from='%s'/>" % (JULIET,))
    fromClient(domain, "<presence from='%s'/>" % (ROMEO,))
    domain.clock.advance(0)
    assert list(domain.handler(AvatarsHandler).hashes) == ["romeo@example.org"]


def test_unavailableUntouched(tmp_path):
    """Unavailable presence gets no avatar hash."""
    domain = makeDomain(tmp_path)
    domain.online(JULIET)
    presence = fromClient(domain, "<presence from='%s' type='unavailable'/>" % (JULIET,))
    assert list(presence.elements(NS_UPDATE, "x")) == []


def test_badBinval(tmp_path):
    """A vCard whose BINVAL is not base64 is stored and converts to nothing."""
    domain = makeDomain(tmp_path)
    juliet = domain.online(JULIET)
    domain.send("<iq from='%s' type='set' id='v'>%s</iq>" % (JULIET, vcardWithPhoto("!!!")))
    assert [s["type"] for s in juliet.sent if s.getAttribute("id") == "v"] == ["result"]
    assert domain.storage.pubsub.getNode("juliet@example.org", NS_DATA).result is None



def test_withoutPEP(tmp_path):
    """Without the pep feature a vCard photo still gives the presence hash, and nothing fails."""
    domain = PEPDomain(tmp_path, features=("disco", "vcard", "avatars"))
    juliet = domain.bind(JULIET)
    domain.send("<iq from='%s' type='set' id='v'>%s</iq>" % (JULIET, vcardWithPhoto()))
    assert [s["type"] for s in juliet.sent if s.getAttribute("id") == "v"] == ["result"]
    presence = fromClient(domain, "<presence from='%s'/>" % (JULIET,))
    assert hashIn(presence) == IMAGE_ID
