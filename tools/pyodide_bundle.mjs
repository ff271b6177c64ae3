// Make a bundle (static/wheels/python-core.zip, python-dicom.zip): the given wheels installed into Pyodide's own Python
// (3.14 on WebAssembly, run here under Node) with bytecode precompiled by that same interpreter,
// so the browser unpacks ready .pyc files instead of compiling every module at import.
//
//   node tools/pyodide_bundle.mjs OUT.zip WHEEL...
//
// The .py sources stay beside their bytecode so tracebacks show code. Bytecode is written as
// unchecked-hash .pyc (PEP 552): valid whatever timestamps the unpacked files get.
// pydicom's own test files (test_files/, charset_files/) are left out: the viewer never reads them.
import { readFileSync, writeFileSync } from "node:fs";
import { loadPyodide } from "pyodide";

const [out, ...wheels] = process.argv.slice(2);
if (!out || wheels.length === 0) {
  console.error("usage: node tools/pyodide_bundle.mjs OUT.zip WHEEL...");
  process.exit(2);
}
const pyodide = await loadPyodide({ stdout: () => {}, stderr: (s) => console.error(s) });
const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
for (const wheel of wheels) {
  pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: sitePackages });
}
pyodide.globals.set("distribution_files", pyodide.toPy(wheels.map((w) => w.split("/").pop().split("-")[0])));
pyodide.runPython(`
import importlib.metadata, importlib.util, os, py_compile, site, zipfile

EXCLUDED = ("pydicom/data/test_files/", "pydicom/data/charset_files/")
site_packages = site.getsitepackages()[0]
with zipfile.ZipFile("/tmp/bundle.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
    for name in sorted(distribution_files):
        for record in sorted(importlib.metadata.distribution(name).files, key=str):
            relative = str(record)
            if relative.startswith(EXCLUDED) or relative.endswith(".pyc") or ".." in relative:
                continue
            source = os.path.join(site_packages, relative)
            if not os.path.isfile(source):
                continue
            bundle.write(source, relative)
            if relative.endswith(".py"):
                cached = importlib.util.cache_from_source(source)
                py_compile.compile(source, cfile=cached, doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                bundle.write(cached, os.path.relpath(cached, site_packages))
`);
writeFileSync(out, pyodide.FS.readFile("/tmp/bundle.zip"));
console.log(`${out}: ${wheels.length} wheels precompiled for Python ${pyodide.runPython("import sys; sys.version.split()[0]")}`);
