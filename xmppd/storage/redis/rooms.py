# -*- test-case-name: tests.test_storage_rooms -*-
"""
The Redis store of multi-user chat rooms (L{IRoomStore}, XEP-0045 §10.1.3
persistent rooms) and their archives (XEP-0313 §3.3.2): one hash of room
records per MUC service (name -> JSON C{[state, updated]}), and an archive
per room, the OWNER C{r:name@service}, queried and written by the account
archive's scripts (L{xmppd.storage.redis.archive}).
"""

from __future__ import annotations

import json
from collections.abc import Collection

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import ArchivedMessage, IRoomStore, RoomRecord
from xmppd.storage.redis import keys
from xmppd.storage.redis.archive import ARCHIVE_LUA, REMOVE_OLDER, appendArgs, runQuery
from xmppd.storage.redis.engine import RedisEngine, Script

GET = Script("getRoom", keys.LUA + r"""
return redis.call("HGET", kRooms(ARGV[1]), ARGV[2])
""")

LIST = Script("listRooms", keys.LUA + r"""
return redis.call("HGETALL", kRooms(ARGV[1]))
""")

PUT = Script("putRoom", keys.LUA + r"""
redis.call("HSET", kRooms(ARGV[1]), ARGV[2], ARGV[3])
return 1
""")

DELETE = Script("deleteRoom", keys.LUA + ARCHIVE_LUA + r"""
dropArchive("r:" .. ARGV[2] .. "@" .. ARGV[1])
return redis.call("HDEL", kRooms(ARGV[1]), ARGV[2])
""")

APPEND = Script("appendRoomArchive", keys.LUA + ARCHIVE_LUA + r"""
return appendArchive("r:" .. ARGV[2] .. "@" .. ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
""")

REPLACE = Script("replaceRoomMessage", keys.LUA + r"""
local key = kMamMsg("r:" .. ARGV[2] .. "@" .. ARGV[1])
if redis.call("HEXISTS", key, ARGV[3]) == 0 then return 0 end
redis.call("HSET", key, ARGV[3], ARGV[4])
return 1
""")


@implementer(IRoomStore)
class RedisRoomStore:
    """Room records in one hash per service, archives as account archives are."""

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    def get(self, service: str, name: str) -> defer.Deferred:
        d = self._engine.read(GET, (), [service, name])
        return d.addCallback(lambda text: None if text is None
                             else _record(service, name, text))

    def put(self, service: str, name: str, state: str) -> defer.Deferred:
        if not isinstance(state, str):
            return defer.fail(TypeError("room state is JSON text (str)"))
        text = json.dumps([state, self._engine.seconds()])
        return self._engine.write(PUT, (), [service, name, text]).addCallback(lambda _: None)

    def delete(self, service: str, name: str) -> defer.Deferred:
        return self._engine.write(DELETE, (), [service, name]).addCallback(
            lambda removed: bool(int(removed)))

    def list(self, service: str) -> defer.Deferred:
        d = self._engine.read(LIST, (), [service])
        return d.addCallback(lambda flat: sorted(
            (_record(service, flat[i], flat[i + 1]) for i in range(0, len(flat), 2)),
            key=lambda record: record.name))

    def appendMessage(self, service: str, name: str,
                      message: ArchivedMessage) -> defer.Deferred:
        return self._engine.write(APPEND, (), [service, name] + appendArgs(message)
                                  ).addCallback(lambda _: None)

    def queryMessages(self, service: str, name: str, peer: str | None = None,
                      start: float | None = None, end: float | None = None,
                      afterId: str | None = None, beforeId: str | None = None,
                      ids: Collection[str] | None = None, limit: int | None = 50,
                      reverse: bool = False) -> defer.Deferred:
        return runQuery(self._engine, keys.roomArchive(service, name), peer, start, end,
                        afterId, beforeId, ids, limit, reverse)

    def replaceMessage(self, service: str, name: str, id: str, xml: str) -> defer.Deferred:
        return self._engine.write(REPLACE, (), [service, name, str(id), str(xml)]).addCallback(
            lambda replaced: bool(int(replaced)))

    def removeMessagesOlderThan(self, cutoff: float) -> defer.Deferred:
        return self._engine.write(REMOVE_OLDER, (), ["r:", repr(float(cutoff))]).addCallback(int)


def _record(service: str, name: str, text: str) -> RoomRecord:
    state, updated = json.loads(text)
    return RoomRecord(service, name, state, float(updated))
