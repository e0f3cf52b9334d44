"""
Server-to-server federation (RFC 6120 §4, §5, §6, §13.7; XEP-0220, XEP-0178,
XEP-0185, XEP-0368): the S2S service is the router's default route, so a
stanza for a domain no route serves leaves through an outgoing stream, and
stanzas from other servers arrive on incoming streams.

One module per job, kept small:

  - L{xmppd.s2s.config}: the C{[s2s]} section;
  - L{xmppd.s2s.dialback}: dialback keys (XEP-0185) and elements (XEP-0220);
  - L{xmppd.s2s.verify}: certificate checks (service-identity) and the TLS
    connection creators of both directions;
  - L{xmppd.s2s.resolver}: where a domain's server is (static overrides,
    DNS SRV, A/AAAA);
  - L{xmppd.s2s.streams}: what both directions of a stream share;
  - L{xmppd.s2s.incoming}: the receiving side;
  - L{xmppd.s2s.outgoing}: the initiating side and the per-destination
    queue;
  - L{xmppd.s2s.service}: the service that ties them to the node.

This file imports nothing, so that reading the configuration (which imports
L{xmppd.s2s.config}) does not load the rest.

Implements: XEP-0178 1.2, XEP-0185 1.0, XEP-0220 1.1.1, XEP-0288 1.0.1, XEP-0368 1.1.0
"""
