# -*- test-case-name: tests.test_muc_owner -*-
"""
Room configuration options (XEP-0045 §10.2, §15.5.3 muc#roomconfig).

Each option is one field of the configuration form and one key of
C{room.config}; it lives with its behaviour in one module of
L{muc.features} (STYLE D).  This module holds the field kinds: how a value
is shown in the form and read back from a submitted one.  A value that
cannot be read raises L{ValueError} with a message the owner sees in the
C{not-acceptable} error.
"""

from __future__ import annotations

from wokkel import data_form

TRUE = ("1", "true")
FALSE = ("0", "false")


class Option:
    """One C{muc#roomconfig_*} field: see the module docstring."""

    fieldType = "text-single"
    #: Set on instances: the form variable, the C{room.config} key, label, default.
    var: str
    key: str
    label: str
    default: object

    def __init__(self, var: str, key: str, label: str, default):
        self.var = var
        self.key = key
        self.label = label
        self.default = default

    def current(self, room) -> object:
        """The value the room has now, shown in the form."""
        return room.config.get(self.key, self.default)

    def store(self, room, value) -> None:
        """Apply a submitted (parsed) value."""
        room.config[self.key] = value

    def defaultFor(self, settings) -> object:
        """The value a new room starts with; C{settings} is the [muc] config section."""
        return self.default

    def field(self, value) -> data_form.Field:
        return data_form.Field(self.fieldType, var=self.var, label=self.label,
                               value=value if value is not None else "")

    def parse(self, values: list[str], settings) -> object:
        return values[0] if values else ""


class TextOption(Option):
    def __init__(self, var, key, label, default="", maxLength=1000):
        Option.__init__(self, var, key, label, default)
        self.maxLength = maxLength

    def parse(self, values, settings):
        value = values[0] if values else ""
        if len(value) > self.maxLength:
            raise ValueError("%s is longer than %d characters" % (self.label, self.maxLength))
        return value


class PrivateOption(TextOption):
    fieldType = "text-private"


class BooleanOption(Option):
    fieldType = "boolean"

    def field(self, value):
        return data_form.Field(self.fieldType, var=self.var, label=self.label,
                               value="1" if value else "0")

    def parse(self, values, settings):
        if not values:
            return False
        value = values[0].strip().lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        raise ValueError("%s must be 1 or 0, not %r" % (self.label, values[0]))


class ChoiceOption(Option):
    """A C{list-single} field with fixed choices."""

    fieldType = "list-single"

    def __init__(self, var, key, label, default, choices: tuple[tuple[str, str], ...]):
        Option.__init__(self, var, key, label, default)
        self.choices = choices

    def field(self, value):
        return data_form.Field(self.fieldType, var=self.var, label=self.label, value=value,
                               options=[data_form.Option(v, l) for v, l in self.choices])

    def parse(self, values, settings):
        value = values[0] if values else self.default
        if value not in dict(self.choices):
            raise ValueError("%s must be one of %s" % (
                self.label, ", ".join(v for v, _ in self.choices)))
        return value


class MultiChoiceOption(ChoiceOption):
    """A C{list-multi} field; the value is a tuple of the chosen values."""

    fieldType = "list-multi"

    def field(self, value):
        return data_form.Field(self.fieldType, var=self.var, label=self.label,
                               values=list(value),
                               options=[data_form.Option(v, l) for v, l in self.choices])

    def parse(self, values, settings):
        known = dict(self.choices)
        for value in values:
            if value not in known:
                raise ValueError("%s: unknown value %r" % (self.label, value))
        return tuple(v for v, _ in self.choices if v in values)


class JIDListOption(Option):
    """A C{jid-multi} field; the value is a tuple of bare JID strings."""

    fieldType = "jid-multi"

    def field(self, value):
        return data_form.Field(self.fieldType, var=self.var, label=self.label,
                               values=list(value or ()))

    def parse(self, values, settings):
        from xmppd.core.jid import InvalidJID, parseJID
        jids = []
        for value in values:
            if not value.strip():
                continue
            try:
                jids.append(parseJID(value.strip()).userhost())
            except InvalidJID:
                raise ValueError("%s: %r is not a JID" % (self.label, value))
        return tuple(dict.fromkeys(jids))
