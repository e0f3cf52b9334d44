"""
What every stream kind shares (client, server, component): the hardened
parser, the stream base, limits and shaping, TLS, closing and the traffic
log.  Nothing here knows what a stanza means.
"""
