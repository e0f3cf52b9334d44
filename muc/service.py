# -*- test-case-name: tests.test_muc_service -*-
"""
The MUC service of one domain (XEP-0045 §6): the route of
C{conference.example.org}, its rooms, service discovery and the directory
of public rooms.

  - Stanzas to the service itself: disco#info (identity conference/text,
    §6.2), disco#items (the public rooms, loaded or not, §6.3), ping; other
    IQs get service-unavailable, messages and presence are ignored.
  - Stanzas to a room: the room model (L{muc.room}) takes presence and
    messages; IQs to the room go by namespace (disco, muc#admin, muc#owner,
    registration, and the C{"room/iq"} hook for the archive).  A room that
    is not in memory is looked up in storage first; stanzas for it wait
    (at most L{MAX_WAITING} per room) until it is there, held meanwhile
    (L{xmppd.core.stanzas.hold}), so what their senders send next waits
    behind them (RFC 6120 §10.1, L{xmppd.core.ordering}).
  - Creating (§10.1): available presence to a room that exists nowhere
    creates it, for whoever C{[muc] room_creation} allows
    (C{not-allowed} otherwise).  The creator becomes its owner; the room is
    locked until configured, unless the client used the old groupchat
    protocol (no C{<x xmlns='…muc'/>}), which gets an instant room.
  - Keeping (§4.2): a persistent room is saved whenever its configuration,
    affiliations or subject change, and when it is unloaded; an empty
    persistent room is unloaded after C{[muc] idle_unload} seconds and
    restored transparently by its next stanza.  The last occupant leaving
    a temporary room destroys it.
  - Stopping: every occupant gets unavailable presence with status 332
    (system shutdown); persistent rooms are saved with their history.

In a cluster (issue 14, item 6) each room is owned by one node at a time:
given a L{xmppd.cluster.lease.RoomOwnership} (L{useOwnership}), the service
claims a room's lease before it reads the room from storage, keeps it while
the room is in memory (the ownership renews it) and releases it once the
room is saved and unloaded, destroyed, or the service stops.  A room whose
lease another node holds, or that is free but preferred to another node
(rendezvous hashing over the live nodes spreads rooms, see
L{xmppd.cluster.lease}), is not loaded here: its stanzas go to
C{forward(stanza, node)}, the hook the inter-node transport fills; without
it they are answered C{service-unavailable} (type C{wait}).  A stanza
that arrived that way (marked relayed) claims the room where it arrived.
A room whose lease is lost (another node took it after this one could not
renew in time) is dropped from memory unsaved, its occupants told 332 so
their clients join again, through the owner.

In-process, L{makeHandler} (the feature C{"muc"} of C{server.modules})
adds one service per served domain to the node and lists it in the
domain's disco items (§6.1).  As an external component
(L{muc.component}) the same service talks to xmppd over XEP-0114.
"""

from __future__ import annotations

# xmppd before wokkel: importing the package applies the shim that lets
# wokkel import on current Twisted (xmppd._compat), even when this module is
# the first one loaded (the external component).
from xmppd.core.hooks import Hooks
from xmppd.core.jid import InvalidJID, makeJID, parseJID, prepLocalpart
from xmppd.core.metrics import Sample
from xmppd.core.modules import ServiceRefused
from xmppd.core.router import IRoute
from xmppd.core.stanzas import errorReply, hold, marks
from xmppd.core.checks import serviceDomain
from xmppd.features.disco import ServiceItemHandler

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish
from zope.interface import implementer

from muc import (admin, features, invites, nickname, owner, registration, state,
                 voice)
from muc.broadcast import sendPrepared
from muc.events import DiscoEvent, IQEvent
from muc.protocol import (
    NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_ROOMINFO,
    NS_PING, NS_REGISTER, STATUS_SHUTDOWN, child, element, itemElement, roomError, userX)
from muc.room import Room, parseNick
# Importing MUCConfig declares the [muc] configuration section (xmppd.config @section).
from muc.settings import MUCConfig

#: Stanzas that may wait for one room to be read from storage.
MAX_WAITING = 100

NS_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"
NS_STABLE_ID = "http://jabber.org/protocol/muc#stable_id"


@implementer(IRoute)
class MUCService(service.Service):
    """See the module docstring."""

    log = Logger()

    def __init__(self, domain: str, router, storage, clock, settings: MUCConfig, secret: bytes,
                 localDomains=()):
        self.domain = domain
        self.name = domain
        self.router = router
        self._storage = storage
        self.clock = clock
        self.settings = settings
        self._secret = secret
        #: Accounts of these domains may create rooms with room_creation "local".
        self.localDomains = frozenset(localDomains)
        self.hooks = Hooks()
        self.options = []
        for module in features.load():
            self.options.extend(module.OPTIONS)
            register = getattr(module, "register", None)
            if register is not None:
                register(self.hooks)
        self.hooks.logTable()
        self.rooms: dict[str, Room] = {}
        #: Room name -> the stanzas waiting for it to load, each with its hold.
        self.loading: dict[str, list[tuple[domish.Element, defer.Deferred]]] = {}
        self.unloadCalls: dict[str, object] = {}
        #: Names of rooms known to be stored (so a change of mind deletes them).
        self.stored: set[str] = set()
        #: In a cluster, which rooms this node owns (L{useOwnership}); C{None} alone.
        self.ownership = None
        #: In a cluster, C{forward(stanza, node)} hands a stanza for a room
        #: another node owns to that node; C{None}: answered service-unavailable.
        self.forward = None
        #: In-process, the served domain this service is beside (L{makeService}),
        #: whose administrators administer its rooms; C{None} as a component.
        self.servedDomain: str | None = None

    def useOwnership(self, ownership, forward=None) -> None:
        """Run in a cluster: own rooms through C{ownership}'s leases (see the module docstring)."""
        self.ownership = ownership
        self.forward = forward
        ownership.onLost = self.roomLost

    @property
    def secret(self) -> bytes:
        """
        The secret occupant ids are keyed by: bytes, or a callable read when
        used (a node's secret becomes its cluster's once Redis is reached,
        and occupant ids must agree on every node).
        """
        return self._secret() if callable(self._secret) else self._secret

    @property
    def storage(self):
        """The room store (L{xmppd.storage.interfaces.IRoomStore})."""
        storage = self._storage() if callable(self._storage) else self._storage
        return storage.rooms

    def metricSamples(self):
        """The rooms this node holds in memory and their occupants (at scrape time)."""
        labels = {"domain": self.domain}
        rooms = list(self.rooms.values())
        yield Sample("xmppd_muc_rooms", "gauge", "MUC rooms loaded", labels, len(rooms))
        yield Sample("xmppd_muc_occupants", "gauge", "MUC occupants", labels,
                     sum(len(room.occupants) for room in rooms))

    def startService(self) -> None:
        service.Service.startService(self)
        self.router.addRoute(self.domain, self)
        self.log.info("MUC service {domain} is up", domain=self.domain)

    def stopService(self):
        self.router.removeRoute(self.domain, self)
        waiting, self.loading = self.loading, {}
        for stanzas in waiting.values():
            for stanza, held in stanzas:
                self.bounce(stanza, "service-unavailable", "the service is stopping")
                held.callback(None)
        saves = []
        for room in list(self.rooms.values()):
            self.sayGoodbye(room)
            if room.config.get("persistent"):
                saves.append(self.save(room))
        for call in self.unloadCalls.values():
            if call.active():
                call.cancel()
        self.unloadCalls.clear()
        self.rooms.clear()
        service.Service.stopService(self)
        done = defer.DeferredList(saves)
        if self.ownership is not None:
            # Saved first, so that the next owner reads what we had.
            done.addCallback(lambda _: self.ownership.stop())
        return done

    def sayGoodbye(self, room: Room) -> None:
        """Every occupant leaves with status 332 (removed by a system shutdown, XEP-0045)."""
        for occupant in list(room.occupants.values()):
            presence = element("presence", **{"from": occupant.roomJID.full(),
                                              "type": "unavailable"})
            presence.addChild(userX([STATUS_SHUTDOWN], itemElement(
                room.affiliationOf(occupant.bare), "none")))
            room.sendToSelf(occupant, presence)
        room.occupants.clear()
        room.byJID.clear()

    # -- what a room asks of its service -------------------------------

    def send(self, stanza: domish.Element) -> None:
        self.router.route(stanza)

    def fanout(self, prepared, jid) -> None:
        sendPrepared(self.router, prepared, jid)

    def roomChanged(self, room: Room) -> None:
        if room.config.get("persistent") and not room.locked and not room.destroyed:
            self.save(room)

    def roomConfigured(self, room: Room) -> None:
        if room.config.get("persistent"):
            self.save(room)
        elif room.name in self.stored:
            self.stored.discard(room.name)
            self.storage.delete(self.domain, room.name).addErrback(
                lambda f: self.log.failure("Forgetting room {room}", f, room=room.jidText))
        if not room.occupants:
            self.roomEmpty(room)

    def roomEmpty(self, room: Room) -> None:
        if room.destroyed or self.rooms.get(room.name) is not room:
            return
        if not room.config.get("persistent") or room.locked:
            self.forget(room, delete=room.name in self.stored)
            return
        if self.settings.idle_unload <= 0:
            self.unload(room.name)
            return
        call = self.unloadCalls.pop(room.name, None)
        if call is not None and call.active():
            call.cancel()
        self.unloadCalls[room.name] = self.clock.callLater(
            self.settings.idle_unload, self.unload, room.name)

    def roomDestroyed(self, room: Room) -> defer.Deferred:
        return self.forget(room, delete=True)

    def onUserX(self, room, stanza, sender, x) -> None:
        invites.onUserX(room, stanza, sender, x)

    def onRoomMessage(self, room, stanza, sender) -> bool:
        """A message to the room itself that is neither groupchat nor muc#user: voice requests."""
        return voice.onRoomMessage(room, stanza, sender)

    # -- keeping rooms -------------------------------------------------

    def save(self, room: Room) -> defer.Deferred:
        self.stored.add(room.name)
        d = self.storage.put(self.domain, room.name, state.dump(room))
        d.addErrback(lambda f: self.log.failure("Saving room {room}", f, room=room.jidText))
        return d

    def unload(self, name: str) -> None:
        self.unloadCalls.pop(name, None)
        room = self.rooms.get(name)
        if room is None or room.occupants:
            return
        del self.rooms[name]
        saved = self.save(room)
        if self.ownership is not None:
            saved.addCallback(lambda _: self.ownership.release(room.jidText))
        self.log.debug("Unloaded idle room {room}", room=room.jidText)

    def forget(self, room: Room, delete: bool) -> defer.Deferred:
        """Drop C{room} from memory (and storage when C{delete}); fires once it is gone."""
        room.destroyed = True
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        call = self.unloadCalls.pop(room.name, None)
        if call is not None and call.active():
            call.cancel()
        done = defer.succeed(None)
        if delete:
            self.stored.discard(room.name)
            done = self.storage.delete(self.domain, room.name).addErrback(
                lambda f: self.log.failure("Deleting room {room}", f, room=room.jidText))
        if self.ownership is not None:
            done.addCallback(lambda _: self.ownership.release(room.jidText))
        return done

    async def destroyRoom(self, name: str, reason: str | None = None,
                          alternate: str | None = None) -> int:
        """
        Destroy room C{name} for the node's administrators (issue 17,
        L{xmppd.admin.operations.AdminOperations.destroyRoom}) as its owner
        would (§10.9, L{muc.owner.destroyRoom}): every occupant gets
        unavailable presence with C{<destroy/>}, C{reason} and the
        C{alternate} venue, and the room leaves memory and storage.  A
        persistent room that is not loaded has no occupants: it is deleted
        from storage.  Returns how many occupants were told, once the room
        is gone from storage.

        In a cluster the room's lease is claimed first: a room another node
        holds is refused (naming that node), since only its owner may act
        on it.

        @raise ServiceRefused: there is no such room, it is being loaded,
            or another node holds it.
        """
        jid = makeJID(name, self.domain).full()
        if not self.running:
            raise ServiceRefused(f"the MUC service {self.domain} is not running")
        if name in self.loading:
            raise ServiceRefused(f"room {jid} is being loaded; try again in a moment")
        room = self.rooms.get(name)
        if room is not None and (self.ownership is None or self.ownership.owns(jid)):
            told = sum(len(o.sessions) for o in room.occupants.values())
            self.log.info("Room {room} destroyed by an administrator", room=jid)
            await owner.destroyRoom(room, alternate, reason)
            return told
        if self.ownership is not None:
            holder = await self.ownership.claim(jid, relayed=True)
            if holder != self.ownership.node:
                raise ServiceRefused(
                    f"room {jid} is held by cluster node {holder}: destroy it there "
                    f"(its xmppctl or console), or as the room's owner from a client")
            room = self.rooms.get(name)
            if room is not None and not room.destroyed:
                # Loaded meanwhile (the claim waited on Redis): told as above.
                told = sum(len(o.sessions) for o in room.occupants.values())
                await owner.destroyRoom(room, alternate, reason)
                return told
        try:
            record = await self.storage.get(self.domain, name)
            if record is None:
                raise ServiceRefused(f"there is no room {jid}")
            await self.storage.delete(self.domain, name)
        finally:
            if self.ownership is not None and name not in self.rooms:
                self.ownership.release(jid)
        self.stored.discard(name)
        self.log.info("Stored room {room} destroyed by an administrator", room=jid)
        return 0

    def roomLost(self, jid: str) -> None:
        """Another node owns room C{jid} now: drop it from memory, unsaved (see the docstring)."""
        room = self.rooms.get(jid.split("@", 1)[0])
        if room is not None and room.jidText == jid:
            self.drop(room)

    def drop(self, room: Room) -> None:
        self.log.info("Room {room} is owned by another node now; dropped here",
                      room=room.jidText)
        self.sayGoodbye(room)
        del self.rooms[room.name]
        call = self.unloadCalls.pop(room.name, None)
        if call is not None and call.active():
            call.cancel()

    def toOwner(self, stanza: domish.Element, node: str) -> None:
        """A stanza for a room that node C{node} owns."""
        if self.forward is not None:
            self.forward(stanza, node)
        else:
            reply = errorReply(stanza, "service-unavailable",
                               "the room is served by another node", errorType="wait")
            if reply is not None:
                self.send(reply)

    def newRoom(self, name: str) -> Room:
        room = Room(self, makeJID(name, self.domain))
        self.rooms[name] = room
        return room

    def load(self, name: str, stanza: domish.Element) -> None:
        """Read room C{name} from storage; C{stanza} and later ones wait for it."""
        waiting = self.loading.get(name)
        if waiting is not None:
            if len(waiting) < MAX_WAITING:
                waiting.append((stanza, hold(stanza)))
            else:
                self.bounce(stanza, "resource-constraint", "the room is busy, try again")
            return
        self.loading[name] = [(stanza, hold(stanza))]

        def restored(record):
            if not self.running:
                return  # Stopped meanwhile: stopService answered what waited.
            # A stored state that cannot be read fails here, before the
            # room is registered: no half-restored room, and never a new
            # room in its place that would overwrite what is stored.
            if name not in self.rooms and record is not None:
                room = Room(self, makeJID(name, self.domain))
                state.restore(room, record.state)
                self.rooms[name] = room
                self.stored.add(name)

        def loaded(_):
            for queued, held in self.loading.pop(name, []):
                try:
                    self.deliverToRoom(name, queued, loadedNow=True)
                finally:
                    held.callback(None)
            if self.ownership is not None and name not in self.rooms:
                # Nothing was loaded or created (a query to no room): no lease to keep.
                self.ownership.release(makeJID(name, self.domain).full())

        def failed(failure):
            self.log.failure("Loading room {name}", failure, name=name)
            for queued, held in self.loading.pop(name, []):
                self.bounce(queued, "internal-server-error", "the room could not be loaded")
                held.callback(None)

        def claimed(owner):
            if owner == self.ownership.node:
                return self.storage.get(self.domain, name).addCallback(restored)
            room = self.rooms.get(name)
            if room is not None:
                self.drop(room)
            for queued, held in self.loading.pop(name, []):
                try:
                    self.toOwner(queued, owner)
                finally:
                    held.callback(None)

        if self.ownership is None:
            d = self.storage.get(self.domain, name)
            d.addCallback(restored)
        else:
            # A stanza another node sent here is served here: claimed, never
            # sent on again (L{xmppd.cluster.lease}), so it cannot ping-pong.
            d = self.ownership.claim(makeJID(name, self.domain).full(),
                                     marks(stanza).clusterRelayed)
            d.addCallback(claimed)
        d.addCallbacks(loaded, failed)

    # -- routing ---------------------------------------------------------

    def deliver(self, stanza: domish.Element) -> None:
        try:
            sender = parseJID(stanza.getAttribute("from") or "")
            to = parseJID(stanza["to"])
        except (InvalidJID, KeyError):
            return
        if to.user is None:
            self.onServiceStanza(stanza, sender)
            return
        try:
            name = prepLocalpart(to.user)
        except InvalidJID:
            self.bounce(stanza, "jid-malformed", "not a valid room name")
            return
        self.deliverToRoom(name, stanza)

    def deliverToRoom(self, name: str, stanza: domish.Element, loadedNow: bool = False) -> None:
        room = self.rooms.get(name)
        if (room is not None and self.ownership is not None and not loadedNow
                and not self.ownership.owns(room.jidText)):
            # The lease may have expired (Redis unreachable for a whole
            # lease time): act no more on what may be stale, claim it anew.
            self.drop(room)
            room = None
        if room is None:
            if not loadedNow:
                self.load(name, stanza)
                return
            room = self.create(name, stanza)
            if room is None:
                return
        else:
            call = self.unloadCalls.pop(name, None)
            if call is not None and call.active():
                call.cancel()
        sender = parseJID(stanza["from"])
        nick = parseNick(parseJID(stanza["to"]).resource)
        kind = stanza.name
        try:
            if kind == "presence":
                room.onPresence(stanza, sender, nick)
            elif kind == "message":
                room.onMessage(stanza, sender, nick)
            elif kind == "iq":
                if nick is not None:
                    room.onOccupantIQ(stanza, sender, nick)
                else:
                    self.onRoomIQ(room, stanza, sender)
        except Exception:
            self.log.failure("Room {room} failed on a stanza", room=room.jidText)
            self.bounce(stanza, "internal-server-error")
        if not room.occupants and self.rooms.get(name) is room:
            # Nobody is in it after this stanza (a query, an error, a join
            # refused): the room is idle again, so the unload timer starts
            # over; a room read from storage for a query is unloaded too.
            self.roomEmpty(room)

    def create(self, name: str, stanza: domish.Element) -> Room | None:
        """§10.1: available presence with a nick creates a room that exists nowhere."""
        sender = parseJID(stanza["from"])
        nick = parseNick(parseJID(stanza["to"]).resource)
        if stanza.name != "presence" or stanza.getAttribute("type") is not None:
            if stanza.name == "presence":
                return None
            self.bounce(stanza, "item-not-found", "there is no such room")
            return None
        if nick is None:
            self.bounce(stanza, "jid-malformed", "a room is entered as room@service/nick")
            return None
        try:
            wanted = nickname.enforce(nick)
        except nickname.InvalidNickname as e:
            # No room for a creator the room would refuse (RFC 8266, muc.nickname).
            reply = roomError("%s@%s" % (name, self.domain), stanza, "jid-malformed", str(e),
                              "modify")
            if reply is not None:
                self.send(reply)
            return None
        if not self.mayCreate(sender):
            self.bounce(stanza, "not-allowed", "you may not create rooms here")
            return None
        room = self.newRoom(name)
        room.affiliations[sender.userhost()] = "owner"
        room.locked = child(stanza, NS_MUC, "x") is not None
        self.log.info("{jid} created room {room}", jid=sender.full(), room=room.jidText)
        room.join(stanza, sender, wanted, created=True, requested=nick)
        if not room.locked:
            self.roomConfigured(room)
        return None

    def mayCreate(self, sender) -> bool:
        policy = self.settings.room_creation
        if sender.userhost() in self.settings.admins:
            return True
        if policy == "anyone":
            return True
        if policy == "local":
            return sender.host in self.localDomains and sender.user is not None
        return False

    def bounce(self, stanza, condition: str, text: str | None = None) -> None:
        reply = errorReply(stanza, condition, text)
        if reply is not None:
            self.send(reply)

    # -- IQs to a room ---------------------------------------------------

    def onRoomIQ(self, room: Room, iq: domish.Element, sender) -> None:
        iqType = iq.getAttribute("type")
        if iqType in ("result", "error"):
            return
        query = firstElement(iq)
        if query is None or iqType not in ("get", "set"):
            self.bounce(iq, "bad-request")
            return
        key = (query.uri, iqType)
        if key == (NS_DISCO_INFO, "get"):
            self.sendRoomInfo(room, iq, sender, query.getAttribute("node"))
        elif key == (NS_DISCO_ITEMS, "get"):
            self.sendRoomItems(room, iq, sender)
        elif query.uri == NS_MUC_ADMIN:
            admin.onAdminIQ(room, iq, query, sender)
        elif query.uri == NS_MUC_OWNER:
            owner.onOwnerIQ(room, iq, query, sender)
        elif query.uri == NS_REGISTER:
            registration.onRegisterIQ(room, iq, query, sender)
        elif key == (NS_PING, "get"):
            self.send(result(iq, room.jidText))
        elif not room.hooks.fire("room/iq", IQEvent(room, iq, sender,
                                                    room.byJID.get(sender.full()))):
            self.bounce(iq, "service-unavailable")

    def sendRoomInfo(self, room: Room, iq, sender, node: str | None) -> None:
        if room.locked and room.affiliationOf(sender.userhost()) != "owner":
            self.bounce(iq, "item-not-found", "there is no such room")
            return
        reply = result(iq, room.jidText)
        query = reply.addElement((NS_DISCO_INFO, "query"))
        if node == "x-roomuser-item":
            # §7.12: the nick the asker registered, if any.
            query["node"] = node
            nick = room.registered.get(sender.userhost())
            if nick is not None:
                identity = query.addElement("identity")
                identity.attributes.update(category="conference", type="text", name=nick)
            self.send(reply)
            return
        if node:
            self.bounce(iq, "item-not-found")
            return
        identity = query.addElement("identity")
        identity.attributes.update(category="conference", type="text",
                                   name=room.config.get("name") or room.name)
        event = DiscoEvent(room, [NS_MUC, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_SELF_PING,
                                  NS_STABLE_ID])
        room.hooks.notify("room/disco", event)
        for feature in dict.fromkeys(event.features):
            query.addElement("feature")["var"] = feature
        form = query.addElement((NS_DATA, "x"))
        form["type"] = "result"
        fields = [("FORM_TYPE", None, NS_MUC_ROOMINFO)]
        fields += [(var, label, value) for var, (label, value) in event.info.items()]
        if room.subject:
            fields.append(("muc#roominfo_subject", "Subject", room.subject))
        for var, label, value in fields:
            field = form.addElement("field")
            field["var"] = var
            if label:
                field["label"] = label
            if var == "FORM_TYPE":
                field["type"] = "hidden"
            for v in (value if isinstance(value, (list, tuple)) else [value]):
                field.addElement("value", content=str(v))
        self.send(reply)

    def sendRoomItems(self, room: Room, iq, sender) -> None:
        """§6.5: the occupants, to those in the room; nobody else learns who is there."""
        reply = result(iq, room.jidText)
        query = reply.addElement((NS_DISCO_ITEMS, "query"))
        if sender.full() in room.byJID:
            for occupant in room.occupants.values():
                query.addElement("item")["jid"] = occupant.roomJID.full()
        self.send(reply)

    # -- the service itself ----------------------------------------------

    def onServiceStanza(self, stanza: domish.Element, sender) -> None:
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
            return
        query = firstElement(stanza)
        if query is None:
            self.bounce(stanza, "bad-request")
            return
        key = (query.uri, stanza["type"])
        if key == (NS_DISCO_INFO, "get") and not query.getAttribute("node"):
            reply = result(stanza, self.domain)
            info = reply.addElement((NS_DISCO_INFO, "query"))
            identity = info.addElement("identity")
            identity.attributes.update(category="conference", type="text",
                                       name=self.settings.name)
            for feature in (NS_MUC, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING,
                            "urn:xmpp:occupant-id:0"):
                info.addElement("feature")["var"] = feature
            self.send(reply)
        elif key == (NS_DISCO_ITEMS, "get") and not query.getAttribute("node"):
            self.listRooms(stanza)
        elif key == (NS_PING, "get"):
            self.send(result(stanza, self.domain))
        else:
            self.bounce(stanza, "service-unavailable")

    def listRooms(self, iq: domish.Element) -> None:
        """§6.3: public rooms, in memory or only in storage, sorted by address."""

        def listed(records):
            rooms = {}
            for record in records:
                if record.name not in self.rooms:
                    config = state.configOf(record.state)
                    if config.get("public", True):
                        rooms[record.name] = config.get("name") or record.name
            for name, room in self.rooms.items():
                if room.config.get("public") and not room.locked:
                    rooms[name] = room.config.get("name") or name
            reply = result(iq, self.domain)
            query = reply.addElement((NS_DISCO_ITEMS, "query"))
            for name in sorted(rooms):
                item = query.addElement("item")
                item["jid"] = "%s@%s" % (name, self.domain)
                item["name"] = rooms[name]
            self.send(reply)

        def failed(failure):
            self.log.failure("Listing rooms", failure)
            self.bounce(iq, "internal-server-error")

        self.storage.list(self.domain).addCallbacks(listed, failed)


def firstElement(parent: domish.Element) -> domish.Element | None:
    for elem in parent.elements():
        return elem
    return None


def result(iq: domish.Element, sender: str) -> domish.Element:
    return element("iq", **{"type": "result", "id": iq.getAttribute("id"), "from": sender,
                            "to": iq.getAttribute("from")})


# -- in-process wiring -------------------------------------------------------

def mucDomainOf(settings: MUCConfig, domain: str) -> str:
    return serviceDomain(settings.domain, domain)


def makeService(server, domain: str) -> MUCService:
    """The C{"muc"} feature's service for the served C{domain}, on C{[muc] domain}."""
    settings = server.config.muc
    muc = MUCService(mucDomainOf(settings, domain), server.router, lambda: server.storage,
                     server.clock, settings, lambda: server.secret,
                     localDomains=server.config.server.domains)
    muc.servedDomain = domain
    cluster = getattr(server, "cluster", None)
    if cluster is not None:
        # In a cluster each room is owned by one node at a time (a lease).
        cluster.ownRooms(muc)
    return muc


def makeHandler(domain) -> ServiceItemHandler:
    """The C{"muc"} feature inside a served domain: its disco items list the service (§6.1)."""
    settings = domain.config.muc
    return ServiceItemHandler(mucDomainOf(settings, domain.domain), settings.name)
