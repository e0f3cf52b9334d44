"""
Tests for L{xmppd.features.pubsub.nodeconfig} and
L{xmppd.features.pubsub.settings}: node configuration values, defaults
and checks (XEP-0060 §8.2, §8.3, §16.4.4) and the C{[pubsub]} section.
"""

import pytest

from xmppd.config import ConfigError, configFromDict
from xmppd.features.pubsub import nodeconfig
from xmppd.features.pubsub.nodeconfig import NodeConfig
from xmppd.features.pubsub.settings import PubSubConfig

SETTINGS = PubSubConfig()


def test_defaults():
    """A new node is open, publishers-only, keeps items and sends the last one on subscription."""
    config = NodeConfig(nodeconfig.defaults(SETTINGS), SETTINGS)
    assert (config.accessModel, config.publishModel) == ("open", "publishers")
    assert config.persistItems and config.deliverPayloads and config.deliverNotifications
    assert config.maxItems == SETTINGS.default_max_items
    assert config.sendLastPublishedItem == "on_sub"


@pytest.mark.parametrize("var, value, stored", [
    ("pubsub#persist_items", "true", "1"),
    ("pubsub#persist_items", "0", "0"),
    ("pubsub#max_items", "max", "max"),
    ("pubsub#max_items", "07", "7"),
    ("pubsub#access_model", "roster", "roster"),
    ("pubsub#send_last_published_item", "on_sub_and_presence", "on_sub_and_presence"),
    ("pubsub#roster_groups_allowed", ["A", "B"], ["A", "B"]),
])
def test_canonicalValues(var, value, stored):
    """Accepted values are stored in one canonical form."""
    assert nodeconfig.canonical(var, value, SETTINGS) == stored


@pytest.mark.parametrize("var, value", [
    ("pubsub#persist_items", "maybe"),
    ("pubsub#max_items", "0"),
    ("pubsub#max_items", "-1"),
    ("pubsub#max_items", "100000"),
    ("pubsub#access_model", "everyone"),
    ("pubsub#publish_model", "anyone"),
    ("pubsub#notification_type", "chat"),
])
def test_refusedValues(var, value):
    """A value a field does not take is not-acceptable (§8.2.5.3)."""
    with pytest.raises(Exception) as caught:
        nodeconfig.canonical(var, value, SETTINGS)
    assert caught.value.condition == "not-acceptable"


def test_maxItemsMax():
    """max_items 'max' keeps as many items as the service allows."""
    config = NodeConfig({"pubsub#max_items": "max"}, SETTINGS)
    assert config.maxItems == SETTINGS.max_items


def test_unknownFieldsIgnored():
    """A configuration form's unknown fields are ignored, known ones applied."""
    config = nodeconfig.validate({"x#y": "1", "pubsub#title": "T"}, SETTINGS)
    assert config["pubsub#title"] == "T" and "x#y" not in config


def test_formRoundTrip():
    """The configuration form lists every field with its current value."""
    form = nodeconfig.toForm(nodeconfig.defaults(SETTINGS))
    assert set(nodeconfig.FIELDS) <= set(form.fields)
    assert form.fields["pubsub#access_model"].value == "open"
    assert form.fields["pubsub#persist_items"].value is True


def test_section():
    """[pubsub] takes its options and checks them, naming the key."""
    config = configFromDict({"server": {"domains": ["example.org"]},
                             "pubsub": {"max_items": 50, "node_creation": "anyone"}})
    assert (config.pubsub.max_items, config.pubsub.node_creation) == (50, "anyone")
    with pytest.raises(ConfigError, match="pubsub.node_creation"):
        configFromDict({"server": {"domains": ["example.org"]},
                        "pubsub": {"node_creation": "nobody"}})
    with pytest.raises(ConfigError, match="pubsub.default_max_items"):
        configFromDict({"server": {"domains": ["example.org"]},
                        "pubsub": {"max_items": 5, "default_max_items": 10}})
    with pytest.raises(ConfigError, match="pubsub.domain"):
        configFromDict({"server": {"domains": ["example.org"]},
                        "pubsub": {"domain": "ps.{host}"}})
