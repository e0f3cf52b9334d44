// A real FAST client (XEP-0484) over WebSocket for tests/test_e2e_fast.py:
// @xmpp/client 0.14 logs in with SASL2, keeping its FAST token in a file
// so that the next process (or a login after a server restart) can use
// it, as an app keeps it across launches.  One JSON line on stdout per
// step; any failure is an "error" line and a non-zero exit.
//
//   node fastclient.mjs SERVICE DOMAIN USER PASSWORD TOKENFILE USERAGENTID
import fs from "node:fs";
import { client, xml } from "@xmpp/client";

const [service, domain, username, password, tokenFile, agentId] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const fail = (reason) => {
  say({ event: "error", reason: String(reason) });
  process.exit(1);
};
// Bounded: the test waits less than this for the process to end.
setTimeout(() => fail("timed out"), 20000).unref();

const xmpp = client({
  service, domain, username, password, resource: "fast",
  // The same installation every time: FAST binds its token to this id.
  userAgent: xml("user-agent", { id: agentId }, xml("software", {}, "xmppd-tests")),
});
xmpp.fast.fetchToken = async () => {
  try {
    return JSON.parse(fs.readFileSync(tokenFile, "utf8"));
  } catch {
    return null;
  }
};
xmpp.fast.saveToken = async (token) => {
  fs.writeFileSync(tokenFile, JSON.stringify(token));
  say({ event: "token-saved", mechanism: token.mechanism, expiry: token.expiry });
};
xmpp.fast.deleteToken = async () => {
  fs.rmSync(tokenFile, { force: true });
  say({ event: "token-deleted" });
};
xmpp.on("error", (err) => fail(err && (err.condition || err.message) || err));
xmpp.on("online", async (address) => {
  say({ event: "online", jid: address.toString() });
  await xmpp.stop();
  say({ event: "offline" });
  process.exit(0);
});
xmpp.start().catch(fail);
