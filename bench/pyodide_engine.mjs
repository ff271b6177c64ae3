// The codestream engine benchmark under Pyodide in Node (Python 3.14 on WebAssembly), with pyjpip from
// the same precompiled bundle the browser loads. Prints one JSON line: { "Pyodide ...": results }.
//   node bench/pyodide_engine.mjs RUNS FILE...
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadPyjpip, root } from "../tools/pyodide_node.mjs";

const [runs, ...files] = process.argv.slice(2);
const { pyodide } = await loadPyjpip({ stdout: () => {} });
pyodide.FS.mkdirTree("/mnt");
for (const [i, file] of files.entries()) {
  pyodide.FS.writeFile(`/mnt/${i}-${file.split("/").pop()}`, new Uint8Array(readFileSync(file)));
}
pyodide.FS.writeFile("/mnt/codestream_engine.py", readFileSync(join(root, "bench/codestream_engine.py")));
const result = pyodide.runPython(`
import json, os, sys
sys.path = [p for p in sys.path if p not in ("", ".")] + ["/mnt"]
import codestream_engine
files = sorted(f"/mnt/{n}" for n in os.listdir("/mnt") if n.endswith(".j2k"))
results = codestream_engine.measure_files(files, ${Number(runs)})
json.dumps({f"Pyodide (Python {sys.version.split()[0]}, Node)": {k.split("-", 1)[1]: v for k, v in results.items()}})
`);
console.log(result);
