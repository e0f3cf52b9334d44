"""
Small helpers every kind of test uses: XML literals and TOML values.
"""

import json

from twisted.words.xish import domish


def parse(xml: str) -> domish.Element:
    """One element from an XML literal, namespaced as a client stanza."""
    result = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = result.append
    stream.DocumentEndEvent = lambda: None
    stream.parse("<s xmlns='jabber:client'>" + xml + "</s>")
    [element] = result
    return element


def toml(value) -> str:
    """C{value} written as a TOML value (for the config files tests write)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for everything we write
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, dict):
        # An inline table; keys quoted, so dots in them stay part of the key.
        return "{" + ", ".join("%s = %s" % (json.dumps(k), toml(v))
                               for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")
