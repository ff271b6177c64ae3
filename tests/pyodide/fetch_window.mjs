// pyjpip's JPIP client under Pyodide in Node, against a live server, through fetch with streamed bodies.
//   node tests/pyodide/fetch_window.mjs URL W,H LEN OUT.j2k
// Prints one JSON line: requests made, bytes received, bytes held.
import { writeFileSync } from "node:fs";
import { loadPyjpip } from "../../tools/pyodide_node.mjs";

const [url, fsiz, length, out] = process.argv.slice(2);
const { pyodide } = await loadPyjpip({ stdout: (s) => console.error(s) });
pyodide.globals.set("arguments", pyodide.toPy({ url, fsiz, length: Number(length) }));
const result = await pyodide.runPythonAsync(`
import json
from pyjpip.jpip.client import JPIPClient, ViewWindow
from pyjpip.transport.pyodide_fetch import fetch_window
from pyjpip.jpip.picture import rebuild_served
width, height = (int(v) for v in arguments["fsiz"].split(","))
window = ViewWindow(fsiz=(width, height))
client = JPIPClient(arguments["url"], length_limit=arguments["length"])
requests = await fetch_window(client, window)
view = rebuild_served(client, window)
codestream = view.codestream
json.dumps({"requests": requests, "received": client.bytes_received, "held": client.cache.bytes})
`);
writeFileSync(out, pyodide.globals.get("codestream").toJs());
console.log(result);
