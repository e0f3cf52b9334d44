// A real XMPP client over WebSocket (RFC 7395) for tests/test_e2e_websocket.py:
// @xmpp/client logs in (SASL as the server offers it, bind), sends one chat
// message, waits for one back, logs out.  Every step is a JSON line on
// stdout for the test to read; any failure exits non-zero with the reason.
//
//   node wsclient.mjs SERVICE DOMAIN USER PASSWORD PEER BODY
import { client, xml } from "@xmpp/client";

const [service, domain, username, password, peer, body] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const fail = (reason) => {
  say({ event: "error", reason: String(reason) });
  process.exit(1);
};
// Bounded: the test waits less than this for each step.
setTimeout(() => fail("timed out"), 20000).unref();

const xmpp = client({ service, domain, username, password, resource: "web" });
xmpp.on("error", (err) => fail(err && (err.condition || err.message) || err));
xmpp.on("online", async (address) => {
  say({ event: "online", jid: address.toString() });
  await xmpp.send(xml("presence"));
  await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, body)));
  say({ event: "sent" });
});
xmpp.on("stanza", async (stanza) => {
  if (stanza.is("message") && stanza.getChild("body")) {
    say({ event: "message", from: stanza.attrs.from, body: stanza.getChildText("body") });
    await xmpp.stop();
    say({ event: "offline" });
    process.exit(0);
  }
});
xmpp.start().catch(fail);
