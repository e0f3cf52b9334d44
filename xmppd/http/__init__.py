# -*- test-case-name: tests.test_http -*-
"""
The web side of a node (issue 15): one HTTP service, L{xmppd.http.service},
that carries everything XMPP does over HTTP.  It sits beside the stream
kinds (c2s, s2s, components) and imports none of them: what it serves is
added by whoever owns it, through L{xmppd.http.service.HTTPService.putChild}
(the WebSocket and BOSH transports of the client stream,
L{xmppd.c2s.websocket} and L{xmppd.c2s.bosh}, are put there by L{xmppd.tap}).  Connection discovery (XEP-0156) is
L{xmppd.http.discovery}.
"""
