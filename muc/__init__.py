"""
Multi-user chat (XEP-0045) for xmppd: one service per virtual host (its
domain from C{[muc] domain}, C{conference.{domain}} by default), run inside
the server (C{"muc"} in C{server.modules}) or as an external component
(XEP-0114, C{twistd -n xmppd-muc --config FILE}).

The pieces, each in its own module:

  - L{muc.room}: the room model.  Pure: no I/O and no streams; it takes
    parsed stanzas and emits stanzas through its host, and it fires hooks at
    each decision that a room option cares about.
  - L{muc.features}: one small module per room option (password,
    members-only, moderated, ...): its field of the configuration form, its
    vetoes, its disco feature.
  - L{muc.admin}, L{muc.owner}, L{muc.registration}, L{muc.invites}: the
    muc#admin and muc#owner protocols, room registration, invitations.
  - L{muc.notices}, L{muc.voice}: affiliation changes of accounts not in
    the room, told to the occupants; voice requests and their approval.
  - L{muc.service}: the route of the MUC domain: service disco, the room
    directory, loading persistent rooms from storage and unloading idle ones.
  - L{muc.broadcast}: fan-out that serializes a stanza once per room, not
    once per occupant.
  - L{muc.component}: the same service over an XEP-0114 connection.

Implements: XEP-0045 1.34.6, XEP-0249 1.2, XEP-0410 1.1.0, XEP-0421 0.1.0
"""
