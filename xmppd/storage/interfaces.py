# -*- test-case-name: tests.test_storage -*-
"""
Storage contracts.

Every method returns a L{Deferred}, even on backends that could answer at
once, so callers never change when the backend does.  Usernames and domains
are passed as already-prepared strings (see L{xmppd.core.jid}): storage compares
them byte for byte and never normalizes.  Later features (rosters, offline
messages, archive, rooms, private XML, vCards) add their own interfaces here
and one attribute each on L{IStorage}.
"""

from dataclasses import dataclass, field

from zope.interface import Attribute, Interface


class StorageError(Exception):
    """Base of the errors a storage backend raises on purpose."""


class UserExists(StorageError):
    """The account to create exists already."""


class NoSuchUser(StorageError):
    """The account named does not exist."""


class IUserStore(Interface):
    """Accounts and their SCRAM credentials (never passwords)."""

    def addUser(username, domain, credentials):
        """
        Create an account.

        @param credentials: C{dict} of SASL mechanism name (C{"SCRAM-SHA-1"},
            C{"SCRAM-SHA-256"}) to L{xmppd.core.scram.ScramCredential}.
        @return: Deferred firing C{None}; fails with L{UserExists}.
        """

    def getCredentials(username, domain):
        """
        @return: Deferred firing the C{dict} given to L{addUser} or
            L{setCredentials}, or C{None} when the account does not exist.
        """

    def setCredentials(username, domain, credentials):
        """
        Replace all credentials; fails with L{NoSuchUser}.  When a stored
        credential is dropped or changed (a new password), the account's
        FAST tokens (L{IFastTokenStore}) go in the same step; credentials
        that only add keys for another hash keep them.
        """

    def removeUser(username, domain):
        """
        Remove the account and all its data (every per-feature table or key
        hangs off the account, e.g. SQLite tables cascade from C{users});
        fails with L{NoSuchUser}.
        """

    def userExists(username, domain):
        """@return: Deferred firing C{bool}."""

    def listUsers(domain=None):
        """
        @return: Deferred firing a sorted C{list} of C{(username, domain)}
            tuples, for all domains or only C{domain}.
        """


#: RFC 6121 §3: the subscription states a roster item can be in.
SUBSCRIPTIONS = ("none", "to", "from", "both")


@dataclass(frozen=True)
class RosterItem:
    """
    One contact in an account's roster (RFC 6121 §2.1.2), plus the two
    flags of the subscription state machine that clients never set directly:
    C{ask} (we asked the contact, no answer yet: "pending out") and
    C{pendingIn} (the contact asked us, no answer yet: "pending in", kept so
    the request can be delivered again at the next login, §3.1.3).
    C{approved} is a pre-approval (§3.4).  An item with subscription "none"
    and only C{pendingIn} set is not shown to the user (§2.1.6's hidden
    items); see L{RosterItem.visible}.
    """

    jid: str
    name: str | None = None
    subscription: str = "none"
    ask: bool = False
    groups: tuple[str, ...] = ()
    approved: bool = False
    pendingIn: bool = False
    #: The status text of the pending inbound request, redelivered with it.
    pendingInStatus: str | None = None
    #: The pending inbound request's extension children (an XEP-0172 nick,
    #: an XEP-0379 token, ...) as XML text, redelivered with it (RFC 6121
    #: §3.1.3: the request is delivered as it was sent).
    pendingInExtensions: str | None = None

    @property
    def visible(self) -> bool:
        """Whether the item belongs in roster results and pushes."""
        return self.subscription != "none" or self.ask or not self.pendingIn


@dataclass(frozen=True)
class Roster:
    """An account's whole roster with its version (RFC 6121 §2.6)."""

    version: int
    items: dict[str, RosterItem] = field(default_factory=dict)


class IRosterStore(Interface):
    """
    Rosters, keyed by the contact's bare JID string.  Every change bumps the
    roster's version (a counter per account) and returns the new one.
    Writes for an account that does not exist fail with L{NoSuchUser} and
    create nothing; reads for one return the empty answer.
    """

    def getRoster(username, domain):
        """@return: Deferred firing a L{Roster} (version 0 and no items if none)."""

    def getItem(username, domain, jid):
        """@return: Deferred firing the L{RosterItem} for C{jid}, or C{None}."""

    def setItem(username, domain, item):
        """Create or replace the item for C{item.jid}; Deferred firing the new version."""

    def removeItem(username, domain, jid):
        """
        Remove the item (no error when absent); Deferred firing the
        roster's version afterwards.
        """


class IAccountDataStore(Interface):
    """
    Small per-account documents under string keys, for features whose data
    is one value or a handful (vCard "vcard", private XML
    "private:<namespace>", block list "blocklist", last activity "last").
    Values are strings (serialized XML or JSON); removed with the account.
    Writes for an account that does not exist fail with L{NoSuchUser}.
    """

    def get(username, domain, key):
        """@return: Deferred firing the value, or C{None}."""

    def set(username, domain, key, value):
        """Store C{value} (a C{str}) under C{key}; Deferred firing C{None}."""

    def delete(username, domain, key):
        """Remove C{key} (no error when absent); Deferred firing C{None}."""

    def getAll(username, domain, prefix=""):
        """@return: Deferred firing a C{dict} of the keys starting with C{prefix}."""


@dataclass(frozen=True)
class OfflineMessage:
    """A message kept for an account with no available resource (XEP-0160)."""

    id: int
    #: The serialized <message/>, as it would have been delivered.
    xml: str
    #: When the server accepted it (seconds since the epoch), for <delay/>.
    stamp: float


class IOfflineStore(Interface):
    """
    Offline messages, oldest first.  C{store} returns only once the message
    is durable (on disk for SQLite): the offline feature acknowledges a
    message to its sender after that, never before (issue 5's rule).
    """

    def store(username, domain, xml, stamp):
        """
        Append a message (C{xml} a C{str}); Deferred firing its id, once the
        message is durable.  Ids increase in the order messages are stored
        and are never reused.  Fails with L{NoSuchUser} if no account.
        """

    def count(username, domain):
        """@return: Deferred firing how many messages wait (0 for no account)."""

    def fetch(username, domain, limit=None):
        """
        @return: Deferred firing a list of at most C{limit} (all when
            C{None}) L{OfflineMessage}s, oldest first; fetching removes
            nothing.
        """

    def delete(username, domain, ids):
        """
        Remove the messages with these ids; Deferred firing C{None}.  Absent
        ids, and an account that no longer exists, are ignored.
        """


@dataclass(frozen=True)
class ArchivedMessage:
    """One message in an account's archive (XEP-0313)."""

    #: The stanza-id (XEP-0359) the server gave it; unique per archive.
    id: str
    #: When it was archived, seconds since the epoch.
    stamp: float
    #: The bare JID of the other party (for "with" filtering).
    peer: str
    #: The serialized <message/>.
    xml: str


@dataclass(frozen=True)
class ArchivePage:
    """One page of an archive query (XEP-0313 with XEP-0059 paging)."""

    messages: tuple[ArchivedMessage, ...]
    #: True when the page reaches the end of the results in its direction.
    complete: bool
    #: Total number of results matching the query, if the backend knows it.
    count: int | None = None


class IArchiveStore(Interface):
    """
    Message archives, in archive order (the order messages were appended).
    Archive ids are opaque strings; order never depends on them.
    """

    def append(username, domain, message):
        """
        Append an L{ArchivedMessage}; Deferred firing C{None}.  Fails with
        L{NoSuchUser} if no account, with L{StorageError} if the account's
        archive holds that id already.
        """

    def query(username, domain, peer=None, start=None, end=None, afterId=None,
              beforeId=None, ids=None, limit=50, reverse=False):
        """
        Messages matching every filter given: C{peer} (bare JID string),
        C{start}/C{end} (inclusive epoch seconds), C{ids} (a collection of
        archive ids).  Paging: C{afterId} starts after that message,
        C{beforeId} before it (both may be given: the messages between);
        the paging ids need not match the filters, only exist in the
        account's archive.  Of that range, the page is the first C{limit}
        messages, or with C{reverse} the last C{limit} (XEP-0059 "before":
        paging from the newest backwards).  C{limit=None} means no limit;
        C{0} gives only the count.

        @return: Deferred firing an L{ArchivePage}: messages always in
            archive order (oldest first) whatever the direction; C{complete}
            when no message of the range lies beyond the page in the
            direction of paging (after it, or with C{reverse} before it);
            C{count} the number of messages matching the filters, paging
            ignored.  An unknown C{afterId}/C{beforeId} fails with
            L{ItemNotFound}; an account without an archive gives an empty,
            complete page.
        """

    def removeOlderThan(cutoff):
        """
        Remove every account's messages archived before C{cutoff}
        (retention); Deferred firing how many were removed.
        """


class ItemNotFound(StorageError):
    """An id given to page from does not exist (XEP-0313 answers item-not-found)."""


@dataclass(frozen=True)
class RoomRecord:
    """A persistent room's saved state (owned by muc/, opaque to storage)."""

    #: The MUC domain, e.g. C{"conference.example.org"}.
    service: str
    #: The room's localpart, already prepared.
    name: str
    #: JSON text written by muc/; storage never parses it.
    state: str
    #: Epoch seconds of the last L{IRoomStore.put}, from the storage's clock.
    updated: float


class IRoomStore(Interface):
    """
    Multi-user chat rooms (XEP-0045 §10.1.3 persistent rooms) and their
    message archives (XEP-0313 §3.3.2 MUC archives), keyed by C{(service,
    name)} strings compared exactly.  Rooms belong to no account: removing
    a user leaves them alone.  A room's archive exists independently of its
    record, so a non-persistent room may be archived too; L{delete} removes
    both.

    In the archive, L{ArchivedMessage.peer} is the sender's occupant JID as
    the room showed it (C{room@service/nick}), the value a MAM "with" filter
    on a room archive is compared with.  Storage treats it as opaque text.
    """

    def get(service, name):
        """@return: Deferred firing the L{RoomRecord}, or C{None}."""

    def put(service, name, state):
        """
        Create or replace the room's record with C{state} (a C{str}),
        stamping C{updated} with the current time; Deferred firing C{None}.
        """

    def delete(service, name):
        """
        Remove the room's record and its whole archive; Deferred firing
        whether the room had a record (its archive goes either way).
        """

    def list(service):
        """
        @return: Deferred firing the C{list} of L{RoomRecord}s of C{service},
            sorted by name (code point order).
        """

    def appendMessage(service, name, message):
        """
        Append an L{ArchivedMessage} to the room's archive; Deferred firing
        C{None}, once durable.  Fails with L{StorageError} if the room's
        archive holds that id already.  The room need not have a record.
        """

    def queryMessages(service, name, peer=None, start=None, end=None, afterId=None,
                      beforeId=None, ids=None, limit=50, reverse=False):
        """
        Exactly L{IArchiveStore.query}, on the room's archive: the same
        filters, paging, L{ArchivePage} and L{ItemNotFound}.
        """

    def replaceMessage(service, name, id, xml):
        """
        Replace the serialized stanza of the room's archived message C{id}
        with C{xml}, keeping its id, stamp, peer and place in the archive
        order: a moderated message becomes its tombstone (XEP-0425 §4,
        XEP-0424 §5).  Durable when it fires, and seen by every call made
        after it.

        @return: Deferred firing whether the archive held that id.
        """

    def removeMessagesOlderThan(cutoff):
        """
        Remove every room's archived messages older than C{cutoff}
        (retention); Deferred firing how many were removed.
        """


#: The affiliations a node keeps with an entity (XEP-0060 §4.1); "none" is
#: their absence.
PUBSUB_AFFILIATIONS = frozenset(("owner", "publisher", "publish-only", "member", "outcast"))
#: The subscription states a node keeps (XEP-0060 §4.2).
PUBSUB_STATES = frozenset(("subscribed", "pending", "unconfigured"))


class NodeExists(StorageError):
    """The publish-subscribe node to create exists already (XEP-0060 §8.1: conflict)."""


class NoSuchNode(StorageError):
    """The publish-subscribe node named does not exist (XEP-0060: item-not-found)."""


@dataclass(frozen=True)
class PubSubNode:
    """
    One publish-subscribe node (XEP-0060) of a service: a pubsub domain
    (C{"pubsub.example.org"}) or, for PEP (XEP-0163), an account's bare JID
    (C{"juliet@example.org"}).  Owned by the pubsub feature: storage
    keeps the configuration as given and never interprets it.
    """

    service: str
    node: str
    #: The node configuration, C{pubsub#node_config} field var -> value: a
    #: C{str}, or a C{list} of C{str} for list-multi and jid-multi fields.
    config: dict
    #: Epoch seconds when the node was created, from the storage's clock.
    created: float


@dataclass(frozen=True)
class PubSubItem:
    """A published item, as it is stored and sent back (XEP-0060 §7.1)."""

    #: The item id, unique within its node (generated by the service when
    #: the publisher gave none).
    id: str
    #: The item's payload serialized as XML text (one element, or C{""} for
    #: an item without payload): storage never parses it.
    payload: str
    #: The full JID of the publisher, as text.
    publisher: str
    #: Epoch seconds of the publication, from the storage's clock.
    published: float


@dataclass(frozen=True)
class PubSubSubscription:
    """One subscription of an entity to a node (XEP-0060 §6.1, §8.8)."""

    service: str
    node: str
    #: The subscribed JID as text (bare or full, exactly as subscribed).
    jid: str
    #: The subscription id, unique per (service, node, jid) (§6.1.6).
    subid: str
    #: C{"subscribed"}, C{"pending"} or C{"unconfigured"}.
    state: str
    #: The subscription options, C{pubsub#subscribe_options} field var ->
    #: value (C{str} or C{list} of C{str}), as given.
    options: dict


class IPubSubStore(Interface):
    """
    Publish-subscribe nodes, their items, subscriptions and affiliations
    (XEP-0060), for the C{pubsub.} services and for PEP on every account
    (XEP-0163), keyed by C{(service, node)} strings compared exactly.

    PEP nodes belong to their account: removing the account
    (L{IUserStore.removeUser}, also from C{xmppctl deluser} with no server
    running) removes its PEP service and its subscriptions and affiliations
    everywhere, as L{removeService} and L{removeEntity} do, in the same
    transaction where the backend has them.

    Writes fire their Deferred once durable, like the offline store: a
    publish acknowledged to its publisher survives a restart.
    """

    def createNode(service, node, config, owner):
        """
        Create the node with C{config} (see L{PubSubNode.config}) and make
        C{owner} (a bare JID as text) its owner (affiliation C{"owner"});
        Deferred firing the new L{PubSubNode}.  Fails with L{NodeExists}.
        """

    def getNode(service, node):
        """@return: Deferred firing the L{PubSubNode}, or C{None}."""

    def listNodes(service):
        """
        @return: Deferred firing the C{list} of L{PubSubNode}s of C{service},
            sorted by node name (code point order).
        """

    def configureNode(service, node, config):
        """Replace the node's configuration; fails with L{NoSuchNode}."""

    def deleteNode(service, node):
        """
        Remove the node with its items, subscriptions and affiliations;
        Deferred firing C{None}.  Fails with L{NoSuchNode}.
        """

    def removeService(service):
        """
        Remove every node of C{service} as L{deleteNode} does (an account's
        PEP service when the account is removed); Deferred firing the
        C{list} of node names removed.
        """

    def publish(service, node, item, maxItems=None):
        """
        Store L{PubSubItem} C{item} as the node's newest item.  An item with
        the same id is replaced (XEP-0060 §7.1.2: it becomes the newest).
        With C{maxItems} (an C{int} >= 1), the oldest items beyond that
        many are removed in the same transaction.  Deferred firing the
        C{list} of ids removed that way, once durable.  Fails with
        L{NoSuchNode}.
        """

    def getItems(service, node, ids=None, maxItems=None):
        """
        The node's items, newest first: those with the given C{ids} (any
        order given; unknown ids are left out), else all of them, at most
        C{maxItems}.  Deferred firing a C{list} of L{PubSubItem}s.  Fails
        with L{NoSuchNode}.
        """

    def retract(service, node, itemId):
        """
        Remove one item; Deferred firing whether it existed.  Fails with
        L{NoSuchNode}.
        """

    def purge(service, node):
        """Remove every item of the node; fails with L{NoSuchNode}."""

    def setSubscription(subscription):
        """
        Create or replace the L{PubSubSubscription} with its C{(service,
        node, jid, subid)}; Deferred firing C{None}.  Fails with
        L{NoSuchNode}.
        """

    def removeSubscription(service, node, jid, subid):
        """Remove one subscription; Deferred firing whether it existed."""

    def getSubscriptions(service, node=None, jid=None):
        """
        The subscriptions of C{service}, of one C{node} and/or of one
        C{jid} (compared exactly) when given; Deferred firing a C{list} of
        L{PubSubSubscription}s sorted by (node, jid, subid).
        """

    def setAffiliation(service, node, jid, affiliation):
        """
        Set the affiliation of the bare JID C{jid} (text) with the node:
        C{"owner"}, C{"publisher"}, C{"publish-only"}, C{"member"} or
        C{"outcast"}; C{"none"} removes it.  Deferred firing C{None}.
        Fails with L{NoSuchNode}.
        """

    def getAffiliations(service, node=None, jid=None):
        """
        The affiliations of C{service}, of one C{node} and/or one C{jid}
        when given; Deferred firing a C{list} of C{(node, jid,
        affiliation)} tuples sorted by (node, jid).
        """

    def removeEntity(jid):
        """
        Remove every subscription whose JID is C{jid} or a full JID of it
        (C{jid} is a bare JID as text), and every affiliation of C{jid}, on
        every service; Deferred firing C{None}.  For account removal.
        """


@dataclass(frozen=True)
class PubSubNodeRecord:
    """
    One whole node of an account's PEP service (XEP-0163), for
    L{IStorage.importAccounts}: what XEP-0227 §4.9 carries of it.
    """

    node: str
    #: As L{PubSubNode.config}.
    config: dict = field(default_factory=dict)
    #: Oldest first: the last is the node's newest item.
    items: tuple[PubSubItem, ...] = ()
    #: Bare JID (text) -> affiliation.  The account owns its nodes unless
    #: this says otherwise about it.
    affiliations: dict[str, str] = field(default_factory=dict)
    #: Their C{service} and C{node} are the account's bare JID and L{node}.
    subscriptions: tuple[PubSubSubscription, ...] = ()

    def check(self) -> None:
        """
        Refuse, as L{IPubSubStore} would, what no backend may import.

        @raise ValueError: an affiliation or a subscription state is not
            one a node keeps.
        """
        for jid, affiliation in self.affiliations.items():
            if affiliation not in PUBSUB_AFFILIATIONS:
                raise ValueError(f"not an affiliation: {affiliation!r} ({jid})")
        for subscription in self.subscriptions:
            if subscription.state not in PUBSUB_STATES:
                raise ValueError(f"not a subscription state: {subscription.state!r} "
                                 f"({subscription.jid})")


#: The two token slots of one client (XEP-0484 §5.1): the token in use,
#: and the one issued last, not used yet.
FAST_SLOTS = ("current", "new")


@dataclass(frozen=True)
class FastToken:
    """
    One FAST token (XEP-0484) as it is stored: never the token, only its
    SHA-256 hash, bound to the client (the SASL2 user-agent id) and to the
    mechanism it was requested for.
    """

    #: The SASL2 C{<user-agent id=.../>} of the client it was issued to.
    userAgent: str
    #: The HT mechanism (C{HT-SHA-256-NONE}, ...) it may be used with.
    mechanism: str
    #: SHA-256 of the token's UTF-8 text (32 bytes).
    hash: bytes
    #: Epoch seconds of issue and of expiry.
    issued: float
    expiry: float
    #: C{"new"} until it is first used, then C{"current"} (L{FAST_SLOTS}).
    slot: str = "new"


def credentialsChanged(old: dict | None, new: dict) -> bool:
    """
    Whether replacing C{old} credentials by C{new} changes the password (so
    the account's FAST tokens must go): a stored credential is dropped or
    different.  Only adding keys for another hash, as a PLAIN login does
    for an imported account, is not.
    """
    return any(new.get(mechanism) != credential
               for mechanism, credential in (old or {}).items())


class IFastTokenStore(Interface):
    """
    FAST tokens (XEP-0484), two slots per client of an account (§5.1, the
    implementation note): C{"new"} holds the token issued last until it is
    used once, C{"current"} the token in use.  So a client that lost the
    answer carrying a new token still logs in with the one it has, and at
    most two tokens per client are ever valid.

    Tokens belong to their account: removing the account removes them, and
    so does a password change (L{IUserStore.setCredentials} with
    credentials that drop or change a stored one; adding keys for another
    hash, as a PLAIN login does for imported accounts, is no change of
    password and keeps them).  Expired tokens stay until replaced or
    revoked; whoever checks a token checks its expiry.
    """

    def issue(username, domain, token):
        """
        Put the L{FastToken} C{token} in its client's C{"new"} slot,
        replacing a token issued before and never used (§3.5: tokens not
        used are invalidated by a new one); Deferred firing C{None}.
        Fails with L{NoSuchUser}.
        """

    def get(username, domain, userAgent):
        """
        @return: Deferred firing the C{list} of the client's L{FastToken}s,
            the C{"new"} one first (the order a login tries them in);
            empty for an unknown account or client.
        """

    def promote(username, domain, userAgent, hash):
        """
        The token of the C{"new"} slot whose hash is C{hash} was used: make
        it the client's C{"current"} token, which invalidates the one there
        (§3.5: tokens with an earlier expiry go once a later one is used).
        Nothing happens when the C{"new"} slot holds another hash.  Deferred
        firing whether it moved.
        """

    def revoke(username, domain, userAgent=None, hash=None):
        """
        Remove the tokens of one client (C{userAgent}), only the one with
        C{hash} if given, or with neither every token of the account;
        Deferred firing how many went.
        """

    def list(username, domain):
        """
        @return: Deferred firing the account's L{FastToken}s sorted by
            (user agent, slot), for C{xmppctl fast list}.
        """


@dataclass(frozen=True)
class AccountRecord:
    """A whole new account for L{IStorage.importAccounts}."""

    username: str
    domain: str
    credentials: dict
    roster: tuple[RosterItem, ...] = ()
    data: dict[str, str] = field(default_factory=dict)
    #: The nodes of the account's PEP service.
    pep: tuple[PubSubNodeRecord, ...] = ()


class IStorage(Interface):
    """One opened store: the collection of every per-feature store."""

    users = Attribute("L{IUserStore}")
    rosters = Attribute("L{IRosterStore}")
    accountData = Attribute("L{IAccountDataStore}")
    offline = Attribute("L{IOfflineStore}")
    archive = Attribute("L{IArchiveStore}")
    rooms = Attribute("L{IRoomStore}")
    pubsub = Attribute("L{IPubSubStore}")
    fast = Attribute("L{IFastTokenStore}")

    def importAccounts(records):
        """
        Create the accounts of C{records} (L{AccountRecord}s) with their
        rosters (version 1 when there are items), data and PEP nodes (a
        node left behind under a new account's bare JID is replaced), all
        or nothing: if any account exists already, fail with L{UserExists}
        and write nothing; a PEP record with an affiliation or a
        subscription state that L{IPubSubStore} refuses fails with
        C{ValueError}, and writes nothing either.  Bulk provisioning (C{xmppctl import}) uses it so thousands
        of accounts cost one transaction, not one per row.
        """

    def open():
        """Open (and create or migrate) the store; Deferred firing C{None}."""

    def close():
        """Flush and close; Deferred firing C{None}.  Idempotent."""
