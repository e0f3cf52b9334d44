"""
Entity capabilities of other entities (XEP-0115), learnt from presence:
which features each full JID announces, for PEP's C{+notify} interest
(XEP-0163 §4).  L{xmppd.features.clientcaps.tracker} holds what is known
and is the interface other features use (its C{__all__}: C{capsOf},
C{CAPS_CHANGED}, C{CapsEvent}, C{EntityCaps});
L{xmppd.features.clientcaps.verify} checks a disco#info answer against a
C{ver}; L{xmppd.features.clientcaps.handler} is the feature that feeds it
from the domain's hooks.  The server's own caps are L{xmppd.features.caps}.
"""
