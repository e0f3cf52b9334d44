# -*- test-case-name: tests.test_c2s -*-
"""
The traffic log (C{log.verbose = true}): every element in and out of every
stream, tagged with a per-stream serial so one conversation can be followed
in a busy log (STYLE "Logging").

Secrets never reach it: the content of SASL elements (passwords in PLAIN,
proofs in SCRAM) is replaced by its length.  Off by default, and free when
off: streams hold C{None} instead of a L{TrafficLog}.  When on, what a
stream sends is logged as the text it wrote, not serialized a second time.
"""

from __future__ import annotations

import itertools

from twisted.logger import Logger
from twisted.words.xish import domish

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_REGISTER = "jabber:iq:register"


def redacted(element: domish.Element, text: str | None = None) -> str:
    """
    C{element} as XML, with the payload of SASL elements and the passwords
    of in-band registration and password changes (XEP-0077) left out.
    C{text}, when given, is the element as the stream wrote it: logged as
    it is when nothing needs to be left out, rather than serialized again.
    """
    if element.uri == NS_SASL and element.name not in ("mechanisms", "failure"):
        attributes = "".join(" %s='%s'" % (k, v) for k, v in element.attributes.items()
                             if isinstance(k, str))
        return "<%s%s>[%d characters redacted]</%s>" % (
            element.name, attributes, len(str(element)), element.name)
    if element.name == "iq":
        for query in element.elements(NS_REGISTER, "query"):
            for password in query.elements(NS_REGISTER, "password"):
                if str(password):
                    # Serialize a copy: the stanza itself must stay intact.
                    copy = domish.Element((NS_REGISTER, "query"))
                    for child in query.elements():
                        if child is password:
                            copy.addElement("password", content="[redacted]")
                        else:
                            copy.addChild(child)
                    xml = element.toXml()
                    return xml.replace(query.toXml(), copy.toXml())
    return element.toXml() if text is None else text


class TrafficLog:
    log = Logger()

    def __init__(self):
        self._serials = itertools.count(1)

    def newSerial(self) -> int:
        return next(self._serials)

    def incoming(self, serial: int, peer: str, element: domish.Element) -> None:
        self.log.info("C2S#{serial} {peer} >> {xml}", serial=serial, peer=peer,
                      xml=redacted(element))

    def outgoing(self, serial: int, peer: str, obj, text: str | None = None) -> None:
        """C{obj} (an element or text) was written as C{text}, if given."""
        xml = redacted(obj, text) if isinstance(obj, domish.Element) else obj
        self.log.info("C2S#{serial} {peer} << {xml}", serial=serial, peer=peer, xml=xml)

    def header(self, serial: int, peer: str, root: domish.Element) -> None:
        self.log.info("C2S#{serial} {peer} >> stream header to={to!r} version={version!r}",
                      serial=serial, peer=peer, to=root.getAttribute("to"),
                      version=root.getAttribute("version"))
