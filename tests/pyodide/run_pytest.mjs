// Run pyjpip's unit tests under Pyodide in Node: Python 3.14 on WebAssembly, the browser's Python.
// pyjpip and pydicom come from static/wheels/python-core.zip and python-dicom.zip, the very archives the page loads;
// pytest from the pure-Python wheels that `build.py test` downloads into .cache/pyodide-test-wheels.
//
//   node tests/pyodide/run_pytest.mjs [pytest arguments]
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadPyjpip, root } from "../../tools/pyodide_node.mjs";

const { pyodide, sitePackages, install } = await loadPyjpip();
const testWheels = join(root, ".cache/pyodide-test-wheels");
for (const name of readdirSync(testWheels).filter((n) => n.endsWith(".whl"))) {
  install(join(testWheels, name), "wheel");
}
pyodide.FS.mkdirTree("/repo");
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root }, "/repo");
const shared = resolve(root, "../shared"); // conformance codestreams, beside the checkout as in CI
if (existsSync(shared)) {
  pyodide.FS.mkdirTree("/shared");
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: shared }, "/shared");
}
pyodide.globals.set("pytest_args", pyodide.toPy(process.argv.slice(2)));
let exitCode;
try {
  exitCode = pyodide.runPython(`
import os, sys
sys.dont_write_bytecode = True  # leave no 3.14 bytecode in the mounted checkout
sys.path = [p for p in sys.path if p not in ("", ".")]  # the checkout's pyjpip/ must not shadow the bundle
os.chdir("/repo")
import pyjpip
assert pyjpip.__file__.startswith("${sitePackages}"), f"pyjpip imported from {pyjpip.__file__}, not the bundle"
print(f"Python {sys.version.split()[0]} on {sys.platform}; pyjpip from {os.path.dirname(pyjpip.__file__)}")
import pytest
int(pytest.main(["tests/unit", "-p", "no:cacheprovider", "-m", "not cpython_only", *pytest_args]))
`);
} catch (error) {
  console.error(error.message);
  exitCode = 3;
}
process.exit(exitCode);
