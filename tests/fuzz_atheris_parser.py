"""
A coverage-guided fuzz target for the hardened stream parser, for atheris
(libFuzzer for Python, PyPI C{atheris}): C{scripts/fuzz atheris [seconds]}.

Hypothesis (tests/test_fuzz_parser.py) generates inputs from a grammar;
atheris instead mutates bytes towards new branches of the parser and of
expat underneath, which finds what a grammar does not think of.  The input's
first byte chooses a split point, the rest is a client stream (after a
valid header if the second byte is odd); the property is the suite's: only
the parser's declared errors, the same outcome fed whole or split, and the
limits held.  A crash is written by libFuzzer to C{crash-*}; add its bytes
as an C{@example} of L{tests.test_fuzz_parser.test_arbitraryBytes} with the fix.
"""

import os
import sys

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

# Only the parser is instrumented: instrumenting Twisted and the rest on
# import takes minutes and guides nothing.
import xmppd  # noqa: E402,F401

sys.modules.pop("xmppd.stream.xmlparser", None)
with atheris.instrument_imports(include=["xmppd.stream.xmlparser"]):
    import xmppd.stream.xmlparser  # noqa: E402,F401
from tests.test_fuzz_parser import HEADER, LIMITS, run  # noqa: E402


def target(data: bytes) -> None:
    if len(data) < 2:
        return
    cut, withHeader, data = data[0], data[1] & 1, data[2:]
    if withHeader:
        data = HEADER + data
    cut = cut * len(data) // 255
    whole = run([data], **LIMITS)
    assert run([data[:cut], data[cut:]], **LIMITS) == whole


#: Where the search starts when no corpus directory is given: a control
#: byte pair (split point, header flag), then stanzas using what the parser
#: handles (namespaces, prefixes, references, nesting, whitespace, footer).
SEEDS = [
    b"\x80\x01<message to='a@b' type='chat'><body>x &amp; y &#65;</body></message>",
    b"\x40\x01<iq xmlns:p='urn:p' p:a='1'><query xmlns='urn:q'><p:item><x/></p:item></query></iq> ",
    b"\x10\x00<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'"
    b" xmlns='jabber:client'><presence/></stream:stream>",
    b"\x20\x01<a><a><a><a><a><a><a><a></a></a></a></a></a></a></a></a>",
]


if __name__ == "__main__":
    argv = sys.argv
    if not [a for a in argv[1:] if not a.startswith("-")]:
        import tempfile
        corpus = tempfile.mkdtemp(prefix="xmppd-fuzz-corpus-")
        for number, seed in enumerate(SEEDS):
            with open(os.path.join(corpus, "seed%d" % number), "wb") as f:
                f.write(seed)
        argv = argv + [corpus]
    atheris.Setup(argv, target)
    atheris.Fuzz()
