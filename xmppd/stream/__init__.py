"""
What every stream kind shares (client, server, component): the hardened
parser, the top-level elements and how they are written (C{elements}), the
stream base, limits and shaping, TLS, listening, closing and the traffic
log.  Nothing here knows what a stanza means, and nothing here imports a
stream kind: C{c2s}, C{s2s} and C{components} build on this layer.
"""
