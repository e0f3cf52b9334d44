# -*- test-case-name: tests.test_pubsub_service -*-
"""
The XMPP side of publish-subscribe requests: wokkel's
L{wokkel.pubsub.PubSubService} with the parts of XEP-0060 wokkel 18.0.0
does not parse or answer.

Extended here, because wokkel lacks them:
  - C{<publish-options/>} next to C{<publish/>} (§7.1.5): L{Request.publishOptions};
  - C{notify} on C{<retract/>} (§7.2.2.1): L{Request.notify};
  - C{<redirect uri=…/>} in C{<delete/>} (§8.4.1): L{Request.redirect};
  - the owner's subscription changes (§8.8.2) wokkel does not parse:
    L{Request.subscriptions} as C{(JID, state, subid)};
  - C{max_items} below 1 is C{bad-request} (wokkel takes any integer);
  - a C{FORM_TYPE} field without C{type='hidden'} still names its form;
  - a malformed JID anywhere in a request is C{jid-malformed}, not an
    internal error; a form that wokkel's type checks refuse is
    C{bad-request}; node configuration forms are checked by
    L{xmppd.features.pubsub.nodeconfig} (its values, its C{not-acceptable}).

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.protocols.jabber import error as jabberError
from twisted.words.protocols.jabber import jid as jabberJID
from wokkel import data_form, pubsub
from wokkel.pubsub import NS_PUBSUB, NS_PUBSUB_OWNER, BadRequest, Unsupported

from xmppd.features.pubsub import nodeconfig

NS_PUBLISH_OPTIONS = nodeconfig.NS_PUBLISH_OPTIONS

__all__ = ["NS_PUBLISH_OPTIONS", "Request", "Service"]


class Request(pubsub.PubSubRequest):
    """A publish-subscribe request with what wokkel leaves out (see the module)."""

    publishOptions = None
    notify = False
    redirect = None

    _parameters = dict(pubsub.PubSubRequest._parameters)
    _parameters["publish"] = ["node", "items", "publishOptions"]
    _parameters["retract"] = ["node", "itemIdentifiers", "notify"]
    _parameters["delete"] = ["node", "redirect"]
    _parameters["subscriptionsSet"] = ["nodeOrEmpty", "ownerSubscriptions"]

    def _parse_publishOptions(self, verbElement):
        for element in verbElement.parent.elements(NS_PUBSUB, "publish-options"):
            form = data_form.findForm(element, NS_PUBLISH_OPTIONS)
            if form is not None:
                if form.formType != "submit":
                    raise BadRequest(text="publish-options are a submitted form")
                self.publishOptions = nodeconfig.formValues(form)

    def _parse_notify(self, verbElement):
        self.notify = verbElement.getAttribute("notify", "").lower() in ("1", "true")

    def _parse_redirect(self, verbElement):
        for element in verbElement.elements(NS_PUBSUB_OWNER, "redirect"):
            self.redirect = element.getAttribute("uri")

    def _parse_ownerSubscriptions(self, verbElement):
        self.subscriptions = []
        for element in verbElement.elements(NS_PUBSUB_OWNER, "subscription"):
            if not element.getAttribute("jid") or not element.getAttribute("subscription"):
                raise BadRequest(text="a subscription needs jid and subscription")
            self.subscriptions.append((jabberJID.internJID(element["jid"]),
                                       element["subscription"], element.getAttribute("subid")))

    def parseElement(self, element):
        hideFormTypes(element)
        try:
            pubsub.PubSubRequest.parseElement(self, element)
        except jabberJID.InvalidFormat as e:
            raise jabberError.StanzaError("jid-malformed", text=str(e))
        except (ValueError, TypeError, data_form.Error) as e:
            raise BadRequest(text=str(e))
        except KeyError:
            raise BadRequest()
        if self.maxItems is not None and self.maxItems < 1:
            # §6.5.7: max_items is a positive integer; wokkel takes any int.
            raise BadRequest(text="max_items is a positive integer")


def hideFormTypes(element) -> None:
    """
    Mark C{FORM_TYPE} fields sent without a type as hidden, as XEP-0068 §3
    says they are: wokkel only finds a form by a hidden C{FORM_TYPE}, and
    clients (slixmpp among them) leave the type out.
    """
    for pubsubElement in element.elements():
        for verb in pubsubElement.elements():
            for holder in [verb, *verb.elements()]:
                for form in holder.elements(data_form.NS_X_DATA, "x"):
                    for field in form.elements(data_form.NS_X_DATA, "field"):
                        if field.getAttribute("var") == "FORM_TYPE" and \
                                field.getAttribute("type") is None:
                            field["type"] = "hidden"


class Service(pubsub.PubSubService):
    """
    wokkel's pubsub service on our L{Request}, with node configuration
    forms built and checked by L{nodeconfig} rather than wokkel's type
    conversion (which turns booleans into Python values and cannot say
    C{not-acceptable}).
    """

    def _onPubSubRequest(self, iq):
        # wokkel's own, except for the request class (and no legacy path).
        try:
            request = Request.fromElement(iq)
        except NotImplementedError:
            return defer.fail(Unsupported("", "request not understood"))
        resource = self.resource.locateResource(request)
        try:
            preProcessor = getattr(self, "_preProcess_%s" % request.verb)
        except AttributeError:
            pass
        else:
            request = preProcessor(resource, request)
            if request is None:
                return defer.succeed(None)
        handler = getattr(resource, request.verb, None)
        if handler is None:
            return defer.fail(Unsupported("", "Request verb: %s" % request.verb))
        d = defer.maybeDeferred(handler, request)
        try:
            cb = getattr(self, "_toResponse_%s" % request.verb)
        except AttributeError:
            pass
        else:
            d.addCallback(cb, resource, request)
        return d

    def _checkConfiguration(self, resource, form):
        """Checked by the resource (L{nodeconfig.validate})."""

    def _formFromConfiguration(self, resource, values):
        return nodeconfig.toForm(values)

