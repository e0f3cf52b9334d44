"""
TLS handshakes in memory (pyOpenSSL connections over memory BIOs), for
tests of what a server's TLS context offers: no sockets, no reactor.
"""

from __future__ import annotations

from OpenSSL import SSL


def handshake(client: SSL.Connection, server: SSL.Connection) -> None:
    """Run a handshake between two connections in memory (raises SSL.Error if it fails)."""
    client.set_connect_state()
    server.set_accept_state()
    done = set()
    for _ in range(20):
        for me, peer in ((client, server), (server, client)):
            if me not in done:
                try:
                    me.do_handshake()
                    done.add(me)
                except SSL.WantReadError:
                    pass
            try:
                peer.bio_write(me.bio_read(65536))
            except SSL.WantReadError:
                pass
        if len(done) == 2:
            return
    raise AssertionError("the handshake did not finish")
