"""
The MUC service as an external component (issue 6, item 7): the same code
path as C{twistd -n xmppd-muc} (L{muc.launch}, L{muc.component}) connected
to a real node over XEP-0114, used by slixmpp clients with their XEP-0045
plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest_twisted
from twisted.internet import defer

from muc.launch import Options, makeService
from tests.e2e import DOMAIN, TIMEOUT, reactor, wait, writeConfig
from xmppd.config.registry import DEFAULT_FEATURES

MUC = "conference." + DOMAIN
ROOM = "lounge@" + MUC
SECRET = "the MUC component's secret"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def componentConfig(path, port: int) -> str:
    writeConfig(path / "muc.toml", {
        "server": {"domains": [DOMAIN], "data_dir": str(path / "muc-data")},
        "storage": {"backend": "sqlite"},
        "muc_component": {"connect": ["tcp:host=127.0.0.1:port=%d" % port],
                          "secret": SECRET},
    })
    return str(path / "muc.toml")


async def mucClient(node, user: str):
    client = node.client(user)
    client.xmpp.register_plugin("xep_0030")
    client.xmpp.register_plugin("xep_0004")
    client.xmpp.register_plugin("xep_0045")
    await node.addUser(user)
    await client.login()
    return client


@pytest_twisted.ensureDeferred
async def test_roomThroughExternalComponent(makeServer, tmp_path):
    """Users of a node create, join and talk in a room served by the MUC component process."""
    node = await makeServer({
        "server": {"modules": [m for m in DEFAULT_FEATURES if m != "muc"]},
        "components": {"listen": "tcp:0:interface=127.0.0.1", "secrets": {MUC: SECRET}},
    })
    port = (await node.service.getServiceNamed("components").ready).getHost().port
    options = Options()
    options.parseOptions(["--config", componentConfig(tmp_path, port)])
    tree = makeService(options)
    tree.startService()
    try:
        muc = tree.getServiceNamed(MUC)
        await muc.componentRoute.whenConnected().addTimeout(TIMEOUT, reactor())
        romeo = await mucClient(node, "romeo")
        juliet = await mucClient(node, "juliet")
        items = await wait(romeo.xmpp.plugin["xep_0030"].get_items(jid=DOMAIN))
        assert MUC in [item[0] for item in items["disco_items"]["items"]]
        romeoMUC = romeo.xmpp.plugin["xep_0045"]
        julietMUC = juliet.xmpp.plugin["xep_0045"]

        joined = await wait(romeoMUC.join_muc_wait(
            ROOM, "romeo", timeout=TIMEOUT))
        own = joined[0]
        assert "201" in {str(s) for s in own["muc"]["status_codes"]}
        form = await wait(romeoMUC.get_room_config(ROOM))
        form["type"] = "submit"
        await wait(romeoMUC.set_room_config(ROOM, form))

        await wait(julietMUC.join_muc_wait(ROOM, "juliet",
                                                                timeout=TIMEOUT))
        romeo.xmpp.send_message(mto=ROOM, mbody="Good morrow, cousin", mtype="groupchat")
        while True:
            message = await juliet.nextMessage()
            if message["type"] == "groupchat":
                break
        assert message["from"] == ROOM + "/romeo"
        assert message["body"] == "Good morrow, cousin"
    finally:
        await defer.maybeDeferred(tree.stopService).addTimeout(TIMEOUT, reactor())


def test_componentWithoutNodesExplains(tmp_path):
    """twistd -n xmppd-muc with no node to connect to exits with one line saying what to set."""
    writeConfig(tmp_path / "muc.toml", {"server": {"domains": [DOMAIN],
                                                   "data_dir": str(tmp_path / "data")}})
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=",
         "xmppd-muc", "--config",
         str(tmp_path / "muc.toml")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = (result.stderr + result.stdout).strip().splitlines()
    assert lines[-1].startswith("xmppd-muc: muc_component.connect: list the xmppd nodes"), lines
    assert "Traceback" not in result.stderr
