"""
The embedded, durable storage backend: one SQLite file.

L{SQLiteStorage} (in L{xmppd.storage.sqlite.backend}) assembles the engine
and the stores; code outside L{xmppd.storage} reaches it only through
L{xmppd.storage.makeStorage}.  The modules:

  - C{engine}: the connection, its worker thread, transactions, group
    commit, and applying the migrations of C{schema};
  - C{schema}: the tables, as migration steps;
  - one module per store: C{accounts} (users and SCRAM credentials),
    C{rosters}, C{accountdata} (private XML, vCards, ...), C{offline},
    C{archive} (account archives, and the queries room archives share),
    C{rooms} (rooms and their archives), C{pubsub} (publish-subscribe
    nodes, items, subscriptions and affiliations, PEP included);
  - C{backend}: L{SQLiteStorage}, the engine with every store on it.
"""

from xmppd.storage.sqlite.backend import SQLiteStorage
from xmppd.storage.sqlite.engine import CannotOpenDatabase

__all__ = ["CannotOpenDatabase", "SQLiteStorage"]
