"""
External components (XEP-0114): the server side that accepts them and the
client side that runs one of ours (a MUC service) as a component.
"""
