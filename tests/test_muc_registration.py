"""
Tests for L{muc.registration}: registering with a room reserves a nick and
makes a member (XEP-0045 §7.10), reserved-nick discovery (§7.12), and the
refusals around them.
"""

from tests.muchelpers import MUC, NS_ADMIN, ROOM, errorCondition, statuses

JULIET = "juliet@example.org/balcony"
ROMEO = "romeo@example.org/orchard"
NURSE = "nurse@example.org/kitchen"
NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def room(**config):
    m = MUC()
    m.create(JULIET, "jul", config=config)
    return m


def ask(m, sender, query="", iqType="get"):
    m.send("<iq type='%s' id='reg' from='%s' to='%s'><query xmlns='%s'>%s</query></iq>"
           % (iqType, sender, ROOM, NS_REGISTER, query))
    [reply] = m.take(sender)
    assert reply["id"] == "reg"
    return reply


def register(m, sender, nick):
    return ask(m, sender, "<x xmlns='%s' type='submit'>"
               "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
               "<field var='muc#register_roomnick'><value>%s</value></field></x>"
               % (NS_DATA, nick), "set")


def fields(reply):
    [query] = reply.elements(NS_REGISTER, "query")
    [form] = query.elements(NS_DATA, "x")
    return {f["var"]: f for f in form.elements(NS_DATA, "field")}


def test_registrationForm():
    """Asking a room how to register gets a muc#register form asking for a nick."""
    m = room()

    reply = ask(m, ROMEO)

    assert reply["type"] == "result" and reply["from"] == ROOM
    found = fields(reply)
    assert [str(v) for v in found["FORM_TYPE"].elements(NS_DATA, "value")] == [
        "http://jabber.org/protocol/muc#register"]
    assert "muc#register_roomnick" in found


def test_registering():
    """Submitting the form makes the account a member with the nick reserved."""
    m = room()

    reply = register(m, ROMEO, "rom")

    assert reply["type"] == "result"
    r = m.service.rooms["room"]
    assert r.affiliationOf("romeo@example.org") == "member"
    assert r.registered["romeo@example.org"] == "rom"
    m.send("<iq type='get' id='l' from='%s' to='%s'><query xmlns='%s'>"
           "<item affiliation='member'/></query></iq>" % (JULIET, ROOM, NS_ADMIN))
    [members] = [s for s in m.take(JULIET) if s.name == "iq"]
    [query] = members.elements(NS_ADMIN, "query")
    [entry] = query.elements(NS_ADMIN, "item")
    assert entry["jid"] == "romeo@example.org" and entry["nick"] == "rom"


def test_registeredNickConflictOnJoin():
    """Someone else entering with a registered nick gets conflict."""
    m = room()
    register(m, ROMEO, "rom")

    [refusal] = m.join(NURSE, "rom")

    assert errorCondition(refusal) == "conflict"


def test_registeredNickConflictOnNickChange():
    """Someone else changing to a registered nick gets conflict."""
    m = room()
    register(m, ROMEO, "rom")
    m.join(NURSE, "nurse")

    m.send("<presence from='%s' to='%s/rom'/>" % (NURSE, ROOM))

    [refusal] = m.take(NURSE)
    assert errorCondition(refusal) == "conflict"


def test_registeredOwnerEnters():
    """The account that registered a nick enters with it as a member."""
    m = room()
    register(m, ROMEO, "rom")

    own = [p for p in m.join(ROMEO, "rom") if p.name == "presence"][-1]

    assert own["from"] == ROOM + "/rom" and "110" in statuses(own)


def test_alreadyRegistered():
    """Asking again once registered gets <registered/> and the registered nick as username."""
    m = room()
    register(m, ROMEO, "rom")

    reply = ask(m, ROMEO)

    [query] = reply.elements(NS_REGISTER, "query")
    assert list(query.elements(NS_REGISTER, "registered"))
    assert [str(u) for u in query.elements(NS_REGISTER, "username")] == ["rom"]


def test_removingRegistration():
    """<remove/> cancels a registration: the nick is free again and the account is no longer a member."""
    m = room()
    register(m, ROMEO, "rom")

    reply = ask(m, ROMEO, "<remove/>", "set")

    assert reply["type"] == "result"
    r = m.service.rooms["room"]
    assert "romeo@example.org" not in r.registered
    assert r.affiliationOf("romeo@example.org") == "none"
    got = m.join(NURSE, "rom")
    assert errorCondition(got[0]) is None


def test_registrationOff():
    """A room that takes no registrations answers service-unavailable."""
    m = room(**{"x-muc#roomconfig_registration": "0"})

    assert errorCondition(ask(m, ROMEO)) == "service-unavailable"
    assert errorCondition(register(m, ROMEO, "rom")) == "service-unavailable"


def test_outcastMayNotRegister():
    """A banned account asking to register gets forbidden."""
    m = room()
    m.send("<iq type='set' id='ban' from='%s' to='%s'><query xmlns='%s'>"
           "<item affiliation='outcast' jid='romeo@example.org'/></query></iq>"
           % (JULIET, ROOM, NS_ADMIN))
    m.take(JULIET)

    assert errorCondition(register(m, ROMEO, "rom")) == "forbidden"
    assert "romeo@example.org" not in m.service.rooms["room"].registered


def test_reservedNickDiscovery():
    """Disco#info on node x-roomuser-item tells a registered account its nick, and others no nick."""
    m = room()
    register(m, ROMEO, "rom")
    query = ("<iq type='get' id='n' from='%s' to='%s'><query xmlns='%s' node='x-roomuser-item'/>"
             "</iq>")

    m.send(query % (ROMEO, ROOM, NS_DISCO_INFO))
    [reply] = m.take(ROMEO)
    [info] = reply.elements(NS_DISCO_INFO, "query")
    assert info["node"] == "x-roomuser-item"
    [identity] = info.elements(NS_DISCO_INFO, "identity")
    assert identity["category"] == "conference" and identity["name"] == "rom"

    m.send(query % (NURSE, ROOM, NS_DISCO_INFO))
    [reply] = m.take(NURSE)
    [info] = reply.elements(NS_DISCO_INFO, "query")
    assert list(info.elements(NS_DISCO_INFO, "identity")) == []
