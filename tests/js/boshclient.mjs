// A real XMPP client over BOSH (XEP-0124, XEP-0206) for tests/test_e2e_bosh.py:
// Strophe.js (the library of Converse.js and JSXC) in node, with xhr2 as the
// browser's XMLHttpRequest, logs in (SASL as the server offers it, restart,
// bind), sends one chat message, waits for one back, logs out.  Every step
// is a JSON line on stdout for the test to read; any failure exits non-zero
// with the reason.
//
//   node boshclient.mjs SERVICE JID PASSWORD PEER BODY
import XHR2 from "xhr2";
// Strophe logs with console.*: stdout is for the JSON lines.
for (const level of ["log", "debug", "info", "warn", "error"]) {
  console[level] = (...args) => process.stderr.write(args.join(" ") + "\n");
}
const { Strophe, $msg, $pres } = await import("strophe.js");
// A browser's XMLHttpRequest parses text/xml answers into responseXML; xhr2
// does not, and Strophe 5.0.0's fallback for that drops the parsed
// document, so the shim parses it (with the DOMParser Strophe installed).
class XMLHttpRequest extends XHR2 {
  get responseXML() {
    return this.readyState === 4 && this.responseText
      ? new DOMParser().parseFromString(this.responseText, "text/xml") : null;
  }
}
globalThis.XMLHttpRequest = XMLHttpRequest;

const [service, jid, password, peer, body] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const fail = (reason) => {
  say({ event: "error", reason: String(reason) });
  process.exit(1);
};
// Bounded: the test waits less than this for each step.
setTimeout(() => fail("timed out"), 20000).unref();

const connection = new Strophe.Connection(service);
process.on("uncaughtException", (e) => fail("uncaught: " + (e && e.stack || e)));
process.on("unhandledRejection", (e) => fail("unhandled: " + (e && e.stack || e)));
const names = Object.fromEntries(Object.entries(Strophe.Status).map(([k, v]) => [v, k]));
let online = false;
connection.addHandler((stanza) => {
  const text = stanza.getElementsByTagName("body")[0];
  if (text) {
    say({ event: "message", from: stanza.getAttribute("from"), body: text.textContent });
    connection.disconnect("done");
    return false;
  }
  return true;
}, null, "message");
connection.connect(jid, password, (status, condition) => {
  if (status === Strophe.Status.CONNECTED) {
    online = true;
    say({ event: "online", jid: connection.jid, mechanism: connection._sasl_mechanism?.mechname });
    connection.send($pres());
    connection.send($msg({ to: peer, type: "chat" }).c("body").t(body));
    say({ event: "sent" });
  } else if (status === Strophe.Status.DISCONNECTED) {
    if (!online) fail("disconnected before login: " + condition);
    say({ event: "offline" });
    process.exit(0);
  } else if ([Strophe.Status.CONNFAIL, Strophe.Status.AUTHFAIL, Strophe.Status.ERROR]
             .includes(status)) {
    fail(names[status] + ": " + condition);
  }
});
