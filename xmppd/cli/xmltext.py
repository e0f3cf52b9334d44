# -*- test-case-name: tests.test_pie,tests.test_pie_pep -*-
"""
Escaping for the XML that C{xmppctl export} writes as text (XEP-0227
files): element text and single-quoted attribute values, with carriage
returns, newlines and tabs kept as character references so they read back
as written (XML 1.0 §2.11 and §3.3.3 would otherwise normalize them).
"""


def escape(text: str) -> str:
    """C{text} as element content."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def attr(text: str) -> str:
    """C{text} as a single-quoted attribute value, quotes included."""
    return "'" + (escape(text).replace("'", "&apos;").replace("\n", "&#10;")
                  .replace("\t", "&#9;")) + "'"
