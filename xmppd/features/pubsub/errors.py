# -*- test-case-name: tests.test_pubsub_errors -*-
"""
The stanza errors of publish-subscribe (XEP-0060 §6-§8, §14.6 the
C{pubsub#errors} conditions): one function per condition a client can
trigger, so the engine says I{what} went wrong and the XMPP side turns it
into the error stanza wokkel sends back.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from twisted.words.protocols.jabber.error import StanzaError
from wokkel.pubsub import NS_PUBSUB_ERRORS, PubSubError

__all__ = ["NS_PUBSUB_ERRORS", "PubSubError", "StanzaError", "error"]


def error(condition: str, pubsubCondition: str | None = None, text: str | None = None,
          feature: str | None = None) -> StanzaError:
    """
    The stanza error C{condition}, with the XEP-0060 application condition
    C{pubsubCondition} (C{"precondition-not-met"}) when given.
    """
    if pubsubCondition is None:
        return StanzaError(condition, text=text)
    return PubSubError(condition, pubsubCondition, feature=feature, text=text)
