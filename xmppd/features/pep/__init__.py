"""
Personal eventing (XEP-0163): a publish-subscribe service on every
account's bare JID, built on the XEP-0060 engine of
L{xmppd.features.pubsub}.

  - L{settings}: the C{[pep]} configuration section (defaults and bounds);
  - L{engine}: one account's service: the engine with PEP's defaults,
    permissions, notification recipients (contacts whose caps say
    C{NODE+notify}) and last items for a contact's new resource;
  - L{handler}: the feature C{"pep"}: IQs to bare JIDs, service discovery,
    presence and caps events, account removal.
"""
