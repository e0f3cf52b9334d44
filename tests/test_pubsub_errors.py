"""
The error conditions of XEP-0060 §6-§8 a client can trigger, each with the
test that triggers it (L{xmppd.features.pubsub.errors}), and a check that
every test named exists, so the table cannot drift from the tests.
"""

import importlib

import pytest

from xmppd.features.pubsub.errors import error

#: (section, stanza condition, pubsub#errors condition) -> "module::test"
TABLE = {
    ("6.1.3.1", "bad-request", "invalid-jid"): "service::test_subscribeOtherJID",
    ("6.1.3.2", "not-authorized", "presence-subscription-required"):
        "access::test_presenceRefusesStrangers",
    ("6.1.3.3", "not-authorized", "not-in-roster-group"): "access::test_rosterGroups",
    ("6.1.3.4", "not-allowed", "closed-node"): "access::test_whitelist",
    ("6.1.3.7", "bad-request", "nodeid-required"): "service::test_subscribeWithoutNode",
    ("6.1.3.8", "forbidden", None): "service::test_outcastMayNotSubscribe",
    ("6.1.3.9", "policy-violation", "too-many-subscriptions"):
        "service::test_subscriptionsLimit",
    ("6.1.3.12", "item-not-found", None): "service::test_subscribeMissingNode",
    ("6.1.4", "pending", None): "access::test_authorizeMakesPending",
    ("8.6", "forbidden", None): "access::test_authorizeOnlyByOwner",
    ("6.1 jid", "bad-request", "jid-required"): "service::test_subscribeWithoutJID",
    ("6.1 jid", "jid-malformed", None): "service::test_subscribeMalformedJID",
    ("6.2.3.1", "bad-request", "subid-required"): "engine (one subscription per JID here)",
    ("6.2.3.2", "unexpected-request", "not-subscribed"): "service::test_unsubscribeErrors",
    ("6.2.3.3", "forbidden", None): "service::test_unsubscribeErrors",
    ("6.2.3.4", "item-not-found", None): "service::test_unsubscribeErrors",
    ("6.2.3.5", "not-acceptable", "invalid-subid"): "service::test_unsubscribeErrors",
    ("6.3.4.2", "forbidden", None): "service::test_subscriptionOptionsNotSubscribed",
    ("6.3.4.3", "unexpected-request", "not-subscribed"):
        "service::test_subscriptionOptionsNotSubscribed",
    ("6.3.4.5", "not-acceptable", "invalid-subid"): "service::test_subscriptionOptionsBadSubid",
    ("6.5.9.2", "not-authorized", "not-subscribed"): "access::test_authorizeMakesPending",
    ("6.5.9.5", "forbidden", None): "access::test_publishOnlyMayNotRetrieve",
    ("6.5.9.6", "feature-not-implemented", "unsupported"): "service::test_itemsOfTransientNode",
    ("6.5.9.11", "item-not-found", None): "service::test_itemsMissingNode",
    ("6.5.7", "bad-request", None): "service::test_itemsBadMax",
    ("7.1.3.1", "forbidden", None): "service::test_publishPublishersOnly",
    ("7.1.3.3", "item-not-found", None): "service::test_publishToMissingNode",
    ("7.1.3.4", "not-acceptable", "payload-too-big"): "service::test_publishPayloadTooBig",
    ("7.1.3.5", "bad-request", "invalid-payload"): "service::test_publishTwoPayloads",
    ("7.1.3.6", "bad-request", "item-required"): "service::test_publishWithoutItem",
    ("7.1.3.6", "bad-request", "payload-required"): "service::test_publishWithoutPayload",
    ("7.1.3.6", "bad-request", "item-forbidden"):
        "service::test_publishItemToTransientNotificationNode",
    ("7.1.3", "bad-request", "nodeid-required"): "service::test_publishNoPublishNodeId",
    ("7.1.5", "conflict", "precondition-not-met"): "service::test_preconditionNotMet",
    ("7.2.3.1", "forbidden", None): "service::test_retractErrors",
    ("7.2.3.2", "item-not-found", None): "service::test_retractErrors",
    ("7.2.3.4", "bad-request", "item-required"): "service::test_retractErrors",
    ("8.1.3.1", "forbidden", None): "service::test_createByRemoteUser",
    ("8.1.3.2", "conflict", None): "service::test_createExistingNode",
    ("8.1.3", "not-acceptable", None): "service::test_createWithBadConfiguration",
    ("8.1 limit", "policy-violation", None): "service::test_nodesPerOwnerLimit",
    ("7.1 backlog", "resource-constraint", None): "fanout::test_backlogRefusesPublishing",
    ("8.2.2.2", "forbidden", None): "service::test_configureGetIsForOwners",
    ("8.2.2.3", "item-not-found", None): "service::test_configureMissingNode",
    ("8.2.5.3", "not-acceptable", None): "config::test_refusedValues",
    ("8.4.3.1", "forbidden", None): "service::test_deleteByNonOwner",
    ("8.4.3.2", "item-not-found", None): "service::test_deleteByNonOwner",
    ("8.5.3.3", "forbidden", None): "service::test_purgeByNonOwner",
    ("8.8.1.3", "forbidden", None): "service::test_ownerSubscriptionsForbidden",
    ("8.9.1.3", "forbidden", None): "service::test_affiliationsErrors",
    ("8.9.2.4", "not-acceptable", None): "service::test_affiliationsErrors",
}


@pytest.mark.parametrize("key", sorted(TABLE, key=str))
def test_conditionHasATest(key):
    """Every error a client can trigger is triggered by a named test."""
    target = TABLE[key]
    if "::" not in target:
        return  # Documented, not reachable here (see the text).
    module, name = target.split("::")
    tests = importlib.import_module("tests.test_pubsub_" + module)
    assert callable(getattr(tests, name, None)), target


def test_errorWithApplicationCondition():
    """A pubsub error carries the stanza condition and the pubsub#errors child."""
    made = error("conflict", "precondition-not-met", "no")
    element = made.getElement()
    assert made.condition == "conflict"
    assert "precondition-not-met" in element.toXml()
    assert error("forbidden").appCondition is None
