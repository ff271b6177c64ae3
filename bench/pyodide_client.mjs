// The client parse + rebuild benchmark under Pyodide in Node, with pyjpip from the browser's bundle.
//   node bench/pyodide_client.mjs RUNS RESPONSE.jpp...      prints one JSON line
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadPyjpip, root } from "../tools/pyodide_node.mjs";

const [runs, ...files] = process.argv.slice(2);
const { pyodide } = await loadPyjpip({ stdout: () => {} });
pyodide.FS.mkdirTree("/mnt");
for (const file of files) pyodide.FS.writeFile(`/mnt/${file.split("/").pop()}`, new Uint8Array(readFileSync(file)));
pyodide.FS.writeFile("/mnt/jpip_client.py", readFileSync(join(root, "bench/jpip_client.py")));
const result = pyodide.runPython(`
import json, os, sys
sys.path = [p for p in sys.path if p not in ("", ".")] + ["/mnt"]
import jpip_client
responses = {n.replace(".jpp", ".j2k"): open(f"/mnt/{n}", "rb").read() for n in sorted(os.listdir("/mnt")) if n.endswith(".jpp")}
json.dumps({f"Pyodide (Python {sys.version.split()[0]}, Node)": jpip_client.measure_parse_and_rebuild(responses, ${Number(runs)})})
`);
console.log(result);
