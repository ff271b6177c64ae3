// Precompile Pyodide's standard library (static/pyodide/python_stdlib.zip): the npm package ships it
// as .py sources only, so the browser compiles every standard module it imports at every page load
// (Pyodide's start imports asyncio, inspect, email, ...: about 1 s of a 1.7 s start under Node).
// Here Pyodide's own Python (3.14 on WebAssembly, under Node) imports what the pages import (its
// own start, every module of the given bundles) and compiles the standard modules that took. Their
// bytecode replaces their source (<module>.pyc, where zipimport looks first): 3.4 MB instead of
// 2.5 (bytecode beside the sources, or for all 559 modules, would make it 4.5 or 7.0 MB); their
// traceback lines show file and line without the text. The other modules stay as they were.
// Bytecode is unchecked-hash .pyc (PEP 552), valid whatever the zip's timestamps.
//
//   node tools/pyodide_stdlib.mjs IN.zip OUT.zip BUNDLE.zip...
import { readFileSync, writeFileSync } from "node:fs";
import { loadPyodide } from "pyodide";

const [input, out, ...bundles] = process.argv.slice(2);
if (!input || !out) {
  console.error("usage: node tools/pyodide_stdlib.mjs IN.zip OUT.zip BUNDLE.zip...");
  process.exit(2);
}
const pyodide = await loadPyodide({ stdout: () => {}, stderr: (s) => console.error(s) });
pyodide.FS.writeFile("/tmp/stdlib-in.zip", new Uint8Array(readFileSync(input)));
const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
for (const bundle of bundles) {
  pyodide.unpackArchive(new Uint8Array(readFileSync(bundle)), "zip", { extractDir: sitePackages });
}
const summary = pyodide.runPython(`
import importlib, importlib.util, os, pkgutil, sys, zipfile

archive = next(p for p in sys.path if p.endswith(".zip"))  # where Pyodide mounts the standard library
site_packages = ${JSON.stringify(sitePackages)}
for top in sorted(os.listdir(site_packages)):
    if os.path.isfile(os.path.join(site_packages, top, "__init__.py")):
        package = importlib.import_module(top)
        for module in pkgutil.walk_packages(package.__path__, top + "."):
            if not module.name.endswith("__main__") and ".tests" not in module.name and ".test_" not in module.name:
                try:
                    importlib.import_module(module.name)
                except Exception:  # optional parts (a missing optional dependency): not imported by pages either
                    pass
used = {m.__file__.split(archive + "/", 1)[1] for m in list(sys.modules.values())
        if (getattr(m, "__file__", None) or "").startswith(archive + "/")}
compiled = failed = 0
with zipfile.ZipFile("/tmp/stdlib-in.zip") as source, \\
        zipfile.ZipFile("/tmp/stdlib-out.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
    for info in source.infolist():
        data = source.read(info)
        if info.filename not in used:
            target.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            continue
        try:
            code = compile(data, f"{archive}/{info.filename}", "exec", dont_inherit=True)
        except SyntaxError:  # not Python 3.14 (none so far): left as source
            target.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            failed += 1
            continue
        pyc = importlib._bootstrap_external._code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False)
        entry = zipfile.ZipInfo(info.filename[:-3] + ".pyc", info.date_time)
        target.writestr(entry, bytes(pyc), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        compiled += 1
f"{compiled} of the modules the pages import compiled ({failed} could not be) for Python {sys.version.split()[0]}"
`);
writeFileSync(out, pyodide.FS.readFile("/tmp/stdlib-out.zip"));
console.log(`${out}: ${summary}`);
