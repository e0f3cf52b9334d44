"""
Privacy lists (XEP-0016) and the one policy check that enforces them
together with the block list (XEP-0191): L{rules} is the pure list model
(items, ordering, matching), L{policy} the per-domain check on the delivery
hooks that both features share, L{handler} the C{jabber:iq:privacy}
protocol.
"""
