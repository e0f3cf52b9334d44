# -*- test-case-name: tests.test_pubsub_config -*-
"""
Node configuration (XEP-0060 §8.2, §8.3, §16.4.4 C{pubsub#node_config}):
the fields this service offers, their defaults, how a submitted form is
checked, and a typed view (L{NodeConfig}) of a stored configuration.

Stored configurations keep canonical strings (booleans C{"1"}/C{"0"},
C{max_items} a number or C{"max"}), as the store contract asks
(C{config} of L{xmppd.storage.interfaces.PubSubNode}); publish-options
preconditions (§7.1.5) compare these canonical strings, so C{"true"} in
a precondition matches a node stored with C{"1"}.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from dataclasses import dataclass

from wokkel import data_form

from xmppd.features.pubsub.errors import error

__all__ = ["ACCESS_MODELS", "FIELDS", "NS_NODE_CONFIG", "NS_PUBLISH_OPTIONS", "NodeConfig",
           "canonical", "defaults", "formValues", "toForm", "validate"]

NS_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

ACCESS_MODELS = ("open", "presence", "roster", "whitelist", "authorize")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")
NOTIFICATION_TYPES = ("headline", "normal")


@dataclass(frozen=True)
class Field:
    """One configuration field: its form type, label and allowed values."""

    type: str
    label: str
    options: tuple[str, ...] = ()


FIELDS: dict[str, Field] = {
    "pubsub#title": Field("text-single", "A friendly name for the node"),
    "pubsub#type": Field("text-single", "The type of node data, usually its payload namespace"),
    "pubsub#access_model": Field("list-single", "Who may subscribe and retrieve items",
                                 ACCESS_MODELS),
    "pubsub#publish_model": Field("list-single", "Who may publish items", PUBLISH_MODELS),
    "pubsub#max_items": Field("text-single", "Max number of items to persist (or 'max')"),
    "pubsub#persist_items": Field("boolean", "Persist items to storage"),
    "pubsub#deliver_payloads": Field("boolean", "Deliver payloads with event notifications"),
    "pubsub#deliver_notifications": Field("boolean", "Deliver event notifications"),
    "pubsub#notify_config": Field("boolean",
                                  "Notify subscribers when the node configuration changes"),
    "pubsub#notify_delete": Field("boolean", "Notify subscribers when the node is deleted"),
    "pubsub#notify_retract": Field("boolean",
                                   "Notify subscribers when items are removed from the node"),
    "pubsub#send_last_published_item": Field("list-single",
                                             "When to send the last published item",
                                             SEND_LAST),
    "pubsub#roster_groups_allowed": Field(
        "list-multi", "Roster groups allowed to subscribe (access model roster)"),
    "pubsub#notification_type": Field("list-single", "The type of notification messages",
                                      NOTIFICATION_TYPES),
}

BOOLEAN_TRUE = ("1", "true")
BOOLEAN_FALSE = ("0", "false")


def defaults(settings) -> dict:
    """A new node's configuration (§8.3) under the service's C{[pubsub]} settings."""
    return {
        "pubsub#title": "",
        "pubsub#type": "",
        "pubsub#access_model": "open",
        "pubsub#publish_model": "publishers",
        "pubsub#max_items": str(settings.default_max_items),
        "pubsub#persist_items": "1",
        "pubsub#deliver_payloads": "1",
        "pubsub#deliver_notifications": "1",
        "pubsub#notify_config": "0",
        "pubsub#notify_delete": "1",
        "pubsub#notify_retract": "1",
        "pubsub#send_last_published_item": "on_sub",
        "pubsub#roster_groups_allowed": [],
        "pubsub#notification_type": "headline",
    }


def canonical(var: str, value, settings) -> str | list[str]:
    """
    The stored form of C{value} for field C{var}.

    @raise StanzaError: C{not-acceptable} for a value the field does not
        take (§8.2.5.3 "the form contains a value that is not supported").
    """
    field = FIELDS[var]
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if field.type == "list-multi":
        return [str(v) for v in values]
    if len(values) != 1:
        raise error("not-acceptable", text=f"{var} takes exactly one value")
    text = str(values[0]).strip() if values[0] is not None else ""
    if field.type == "boolean":
        if text.lower() in BOOLEAN_TRUE:
            return "1"
        if text.lower() in BOOLEAN_FALSE:
            return "0"
        raise error("not-acceptable", text=f"{var} is a boolean")
    if field.options and text not in field.options:
        raise error("not-acceptable", text=f"{var} takes one of: {', '.join(field.options)}")
    if var == "pubsub#max_items":
        if text == "max":
            return text
        if not text.isdigit() or int(text) < 1:
            raise error("not-acceptable", text="pubsub#max_items is a number >= 1 or 'max'")
        if int(text) > settings.max_items:
            raise error("not-acceptable", text=f"pubsub#max_items may not exceed "
                                               f"{settings.max_items}")
        return str(int(text))
    return text


def validate(submitted: dict, settings, base: dict | None = None) -> dict:
    """
    C{base} (the defaults when C{None}) changed by the C{submitted} fields
    (var -> value or list of values); unknown fields are ignored, as
    wokkel's form filtering does, and C{FORM_TYPE} is dropped.
    """
    config = dict(defaults(settings) if base is None else base)
    for var, value in submitted.items():
        if var in FIELDS:
            config[var] = canonical(var, value, settings)
    return config


def formValues(form: data_form.Form) -> dict:
    """A submitted form's fields as var -> value (one) or list (multi)."""
    values = {}
    for var, field in form.fields.items():
        if var == "FORM_TYPE":
            continue
        if field.fieldType in ("list-multi", "jid-multi", "text-multi") or \
                FIELDS.get(var, Field("", "")).type == "list-multi":
            values[var] = [str(v) for v in field.values]
        else:
            values[var] = field.values[0] if len(field.values) == 1 else list(field.values)
    return values


def toForm(config: dict, formType: str = "form") -> data_form.Form:
    """The configuration as a C{pubsub#node_config} form (§8.2.1, §8.3)."""
    form = data_form.Form(formType, formNamespace=NS_NODE_CONFIG)
    for var, field in FIELDS.items():
        value = config.get(var)
        options = [data_form.Option(o) for o in field.options]
        if field.type == "list-multi":
            form.addField(data_form.Field(field.type, var=var, label=field.label,
                                          values=list(value or []), options=options))
        elif field.type == "boolean":
            form.addField(data_form.Field(field.type, var=var, label=field.label,
                                          value=value == "1"))
        else:
            form.addField(data_form.Field(field.type, var=var, label=field.label,
                                          value=value or "", options=options))
    return form


class NodeConfig:
    """A stored configuration read as typed values (what the engine decides with)."""

    __slots__ = ("values", "settings")

    def __init__(self, values: dict, settings):
        self.values = values
        self.settings = settings

    def _get(self, var: str):
        value = self.values.get(var)
        return defaults(self.settings)[var] if value is None else value

    def _flag(self, var: str) -> bool:
        return self._get(var) == "1"

    @property
    def accessModel(self) -> str:
        return self._get("pubsub#access_model")

    @property
    def publishModel(self) -> str:
        return self._get("pubsub#publish_model")

    @property
    def maxItems(self) -> int:
        """Items kept; C{"max"} means the service's limit (§12.12 C{max})."""
        value = self._get("pubsub#max_items")
        return self.settings.max_items if value == "max" else min(int(value),
                                                                   self.settings.max_items)

    @property
    def persistItems(self) -> bool:
        return self._flag("pubsub#persist_items")

    @property
    def deliverPayloads(self) -> bool:
        return self._flag("pubsub#deliver_payloads")

    @property
    def deliverNotifications(self) -> bool:
        return self._flag("pubsub#deliver_notifications")

    @property
    def notifyConfig(self) -> bool:
        return self._flag("pubsub#notify_config")

    @property
    def notifyDelete(self) -> bool:
        return self._flag("pubsub#notify_delete")

    @property
    def notifyRetract(self) -> bool:
        return self._flag("pubsub#notify_retract")

    @property
    def sendLastPublishedItem(self) -> str:
        return self._get("pubsub#send_last_published_item")

    @property
    def rosterGroups(self) -> list[str]:
        return list(self._get("pubsub#roster_groups_allowed") or [])

    @property
    def notificationType(self) -> str:
        return self._get("pubsub#notification_type")
