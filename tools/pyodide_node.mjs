// Pyodide in Node with pyjpip and pydicom installed from static/wheels/python-{core,dicom}.zip, the very
// archive the browser loads: what tests and benchmarks use to run the browser's Python outside it.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Pyodide with the site's Python: its standard library (part precompiled) and pyjpip's bundles. */
export async function loadPyjpip(options = {}) {
  const pyodide = await loadPyodide({ stdLibURL: join(root, "static/pyodide/python_stdlib.zip"), ...options });
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  const install = (path, format) =>
    pyodide.unpackArchive(new Uint8Array(readFileSync(path)), format, { extractDir: sitePackages });
  install(join(root, "static/wheels/python-core.zip"), "zip");
  install(join(root, "static/wheels/python-dicom.zip"), "zip");
  return { pyodide, sitePackages, install };
}
