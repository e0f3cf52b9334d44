# -*- test-case-name: tests.test_storage_issue5,tests.test_storage -*-
"""
The SQLite schema: the steps that build it, one per release that added
tables.

The schema version is C{PRAGMA user_version}; L{MIGRATIONS} lists the steps
that build it, and a store that needs tables appends a step.  The engine
(L{xmppd.storage.sqlite.engine}) applies the missing steps when it opens a
file; the stores (the other modules of this package) only read and write
the tables built here.
"""

from __future__ import annotations

#: Schema steps: applying step N (counting from 1) takes the schema from
#: version N - 1 to N.  Append new steps; never edit one that has shipped.
#: Every table holding data of an account must reference
#: C{users (username, domain) ON DELETE CASCADE}: removing the user row is how
#: an account and everything it owns are removed.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE users (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               PRIMARY KEY (username, domain)
           ) WITHOUT ROWID""",
        "CREATE INDEX users_by_domain ON users (domain, username)",
        """CREATE TABLE scram_credentials (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               mechanism TEXT NOT NULL,
               salt BLOB NOT NULL,
               iterations INTEGER NOT NULL,
               stored_key BLOB NOT NULL,
               server_key BLOB NOT NULL,
               PRIMARY KEY (username, domain, mechanism),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
    ),
    (
        # Rosters (RFC 6121 §2).  groups is a JSON array of strings, in the
        # order the client gave them; the flags are 0 or 1.
        """CREATE TABLE roster_items (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               jid TEXT NOT NULL,
               name TEXT,
               subscription TEXT NOT NULL,
               ask INTEGER NOT NULL,
               groups TEXT NOT NULL,
               approved INTEGER NOT NULL,
               pending_in INTEGER NOT NULL,
               pending_in_status TEXT,
               PRIMARY KEY (username, domain, jid),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
        # A roster without a row here is at version 0.
        """CREATE TABLE roster_versions (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               version INTEGER NOT NULL,
               PRIMARY KEY (username, domain),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
        """CREATE TABLE account_data (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               key TEXT NOT NULL,
               value TEXT NOT NULL,
               PRIMARY KEY (username, domain, key),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
    ),
    (
        # Offline messages (XEP-0160).  AUTOINCREMENT: ids grow in the order
        # messages were stored and are never reused, even after the newest
        # is delivered and deleted.
        """CREATE TABLE offline_messages (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               xml TEXT NOT NULL,
               stamp REAL NOT NULL,
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           )""",
        "CREATE INDEX offline_messages_by_account ON offline_messages (username, domain, id)",
        # Message archives (XEP-0313).  seq is the archive order; id is the
        # stanza-id (XEP-0359) given out to clients, unique per account, and
        # never used for ordering.
        """CREATE TABLE archive (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               id TEXT NOT NULL,
               stamp REAL NOT NULL,
               peer TEXT NOT NULL,
               xml TEXT NOT NULL,
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           )""",
        "CREATE UNIQUE INDEX archive_by_id ON archive (username, domain, id)",
        "CREATE INDEX archive_by_account ON archive (username, domain, seq)",
        "CREATE INDEX archive_by_peer ON archive (username, domain, peer, seq)",
        "CREATE INDEX archive_by_stamp ON archive (username, domain, stamp)",
        # The retention sweep crosses every account.
        "CREATE INDEX archive_by_age ON archive (stamp)",
    ),
    (
        # Multi-user chat (XEP-0045 §10.1.3): persistent rooms.  Rooms
        # belong to no account, so nothing here references users.  state is
        # JSON text owned by muc/; updated is the epoch seconds of the last
        # put.  Not WITHOUT ROWID: a room's state can outgrow the small rows
        # that layout suits.
        """CREATE TABLE rooms (
               service TEXT NOT NULL,
               name TEXT NOT NULL,
               state TEXT NOT NULL,
               updated REAL NOT NULL,
               PRIMARY KEY (service, name)
           )""",
        # Room archives (XEP-0313 §3.3.2), shaped like the account archive
        # so both share their queries (xmppd.storage.sqlite.archive).  No
        # foreign key to rooms: a room that is not persistent has no row
        # there but may still be archived.  peer is the sender's occupant JID.
        """CREATE TABLE room_archive (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               service TEXT NOT NULL,
               room TEXT NOT NULL,
               id TEXT NOT NULL,
               stamp REAL NOT NULL,
               peer TEXT NOT NULL,
               xml TEXT NOT NULL
           )""",
        "CREATE UNIQUE INDEX room_archive_by_id ON room_archive (service, room, id)",
        "CREATE INDEX room_archive_by_room ON room_archive (service, room, seq)",
        "CREATE INDEX room_archive_by_peer ON room_archive (service, room, peer, seq)",
        "CREATE INDEX room_archive_by_stamp ON room_archive (service, room, stamp)",
        "CREATE INDEX room_archive_by_age ON room_archive (stamp)",
    ),
    (
        # Publish-subscribe (XEP-0060) and PEP (XEP-0163).  service is a
        # pubsub domain or, for PEP, an account's bare JID; nothing
        # references users: removing an account deletes its PEP nodes and
        # its subscriptions and affiliations explicitly (sqlite/pubsub.py
        # forgetAccount), in the same transaction.  config is JSON text
        # owned by the pubsub feature.  The integer id is what items,
        # subscriptions and affiliations hang off, so a node deleted and
        # created again never finds its predecessor's rows.
        """CREATE TABLE pubsub_nodes (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               service TEXT NOT NULL,
               node TEXT NOT NULL,
               config TEXT NOT NULL,
               created REAL NOT NULL,
               UNIQUE (service, node)
           )""",
        # seq orders a node's items: republishing an id deletes its row and
        # inserts a new one, which makes it the newest (XEP-0060 §7.1.2).
        """CREATE TABLE pubsub_items (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
               id TEXT NOT NULL,
               payload TEXT NOT NULL,
               publisher TEXT NOT NULL,
               published REAL NOT NULL
           )""",
        "CREATE UNIQUE INDEX pubsub_items_by_id ON pubsub_items (node_id, id)",
        "CREATE INDEX pubsub_items_by_node ON pubsub_items (node_id, seq)",
        # options is JSON text (pubsub#subscribe_options).
        """CREATE TABLE pubsub_subscriptions (
               node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
               jid TEXT NOT NULL,
               subid TEXT NOT NULL,
               state TEXT NOT NULL,
               options TEXT NOT NULL,
               PRIMARY KEY (node_id, jid, subid)
           ) WITHOUT ROWID""",
        # Account removal finds an entity's rows on every service.
        "CREATE INDEX pubsub_subscriptions_by_jid ON pubsub_subscriptions (jid)",
        """CREATE TABLE pubsub_affiliations (
               node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
               jid TEXT NOT NULL,
               affiliation TEXT NOT NULL,
               PRIMARY KEY (node_id, jid)
           ) WITHOUT ROWID""",
        "CREATE INDEX pubsub_affiliations_by_jid ON pubsub_affiliations (jid)",
    ),
    (
        # A pending subscription request is redelivered whole (RFC 6121
        # §3.1.3): its extension children, as XML text, beside its status.
        "ALTER TABLE roster_items ADD COLUMN pending_in_extensions TEXT",
    ),
    (
        # FAST tokens (XEP-0484): two slots per client ("current", "new"),
        # the token's SHA-256 only, never the token.
        """CREATE TABLE fast_tokens (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               user_agent TEXT NOT NULL,
               slot TEXT NOT NULL CHECK (slot IN ('current', 'new')),
               mechanism TEXT NOT NULL,
               hash BLOB NOT NULL,
               issued REAL NOT NULL,
               expiry REAL NOT NULL,
               PRIMARY KEY (username, domain, user_agent, slot),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)
