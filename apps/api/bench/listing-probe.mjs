// The control-plane bench's listing client, in a process of its own: one untimed `GET <path>`,
// then "ready" on stdout, then `GET <path>` every 100 ms until a line arrives on stdin, then one
// JSON object on stdout with each request's latency and when it was sent (epoch ms), and the
// failures. The untimed request is this process's warm-up: a process's first fetch loads and
// compiles its HTTP client (about 100 ms on an idle machine, up to 800 ms under the bench's
// load), which as the first timed request was the p99 of the short runs. As ctl or the console
// on another machine, it shares no event loop with the bench's thousands of simulated agents,
// whose stalls would otherwise be counted as the API's.
//   node listing-probe.mjs URL TOKEN [PATH]
const [url, token, path = "/api/v1/services"] = process.argv.slice(2);
if (!url || !token) {
  process.stderr.write("usage: node listing-probe.mjs URL TOKEN [PATH]\n");
  process.exit(2);
}
const latencies = [];
const sentAt = [];
const failures = [];
let probing = true;
process.stdin.once("data", () => (probing = false));
process.stdin.once("end", () => (probing = false));

const warmUp = await fetch(url + path, { headers: { authorization: `Bearer ${token}` } });
await warmUp.arrayBuffer();
process.stdout.write("ready\n");

while (probing) {
  const s = Date.now();
  try {
    const res = await fetch(url + path, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    latencies.push(Date.now() - s);
    sentAt.push(s);
  } catch (e) {
    failures.push(`GET ${path}: ${String(e.message).slice(0, 200)}`);
  }
  await new Promise((r) => setTimeout(r, 100));
}
process.stdout.write(JSON.stringify({ latencies, sentAt, failures }) + "\n");
