"""
Client-to-server streams (RFC 6120): the client stream, its negotiation
(STARTTLS, SASL, bind) and the listeners on 5222 and 5223.
"""
