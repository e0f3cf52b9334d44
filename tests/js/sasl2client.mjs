// A phone-like XMPP client for tests/test_e2e_sasl2.py: @xmpp/client over
// TCP (STARTTLS) logs in with SASL2 (XEP-0388) and Bind 2 (XEP-0386),
// enabling stream management inline, with a stable user-agent id; sends
// one chat message and waits for one back.  With MODE "resume" it then
// breaks its TCP connection, reconnects, resumes the session inline in
// SASL2 (XEP-0198) and waits for the message sent while it was away.
// Every step is a JSON line on stdout; any failure exits non-zero.
//
//   node sasl2client.mjs SERVICE DOMAIN USER PASSWORD PEER BODY AGENT MODE
import { client, xml } from "@xmpp/client";

const [service, domain, username, password, peer, body, agent, mode] =
  process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const fail = (reason) => {
  say({ event: "error", reason: String(reason) });
  process.exit(1);
};
// Bounded: the test waits less than this for each step.
setTimeout(() => fail("timed out"), 30000).unref();

const userAgent = xml("user-agent", { id: agent }, [
  xml("software", {}, "xmppd-e2e"),
  xml("device", {}, "test phone"),
]);
const xmpp = client({ service, domain, username, password, resource: "phone", userAgent });
xmpp.reconnect.delay = 200;
xmpp.on("error", (err) => fail((err && (err.condition || err.message)) || err));

xmpp.on("element", (element) => {
  if (element.is("success", "urn:xmpp:sasl:2")) {
    const bound = element.getChild("bound", "urn:xmpp:bind:0");
    const resumed = element.getChild("resumed", "urn:xmpp:sm:3");
    say({
      event: "sasl2-success",
      jid: element.getChildText("authorization-identifier"),
      bound: !!bound,
      enabled: !!(bound && bound.getChild("enabled", "urn:xmpp:sm:3")),
      resumed: !!resumed,
    });
  }
});

let online = 0;
let messages = 0;
xmpp.on("online", async (address) => {
  online += 1;
  say({ event: "online", jid: address.toString() });
  // A resumed session is online again with its presence; nothing to resend.
  if (online > 1) return;
  await xmpp.send(xml("presence"));
  await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, body)));
  // @xmpp/client goes online before it reads <bound/>'s <enabled/>.
  say({ event: "sent", sm: xmpp.streamManagement.enabled, smId: xmpp.streamManagement.id });
});
// With FAST the reconnect logs in with a token, whose proof @xmpp/client
// checks asynchronously (WebCrypto): the message resent after <resumed/>
// can then reach the handler below before the client has finished
// resuming, and stopping at that point would make it write to a closing
// connection.  So stop only once resumption is done.
let resumedDone;
const resumption = new Promise((resolve) => (resumedDone = resolve));
xmpp.streamManagement.on("resumed", () => {
  say({ event: "resumed", sm: xmpp.streamManagement.enabled });
  resumedDone();
});
xmpp.on("stanza", async (stanza) => {
  if (!(stanza.is("message") && stanza.getChild("body"))) return;
  messages += 1;
  say({ event: "message", from: stanza.attrs.from, body: stanza.getChildText("body") });
  if (mode === "resume" && messages === 1) {
    // The phone loses its network: no </stream:stream>, the socket just goes.
    xmpp.socket.socket.destroy();
    say({ event: "broken" });
    return;
  }
  if (mode === "resume") await resumption;
  await xmpp.stop();
  say({ event: "offline" });
  process.exit(0);
});
xmpp.start().catch(fail);
