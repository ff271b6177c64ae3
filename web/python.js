// Boots Pyodide from this site (never a CDN) and installs pyjpip and pydicom from local archives.
import { loadPyodide } from "./pyodide/pyodide.mjs";

const here = (path) => new URL(path, import.meta.url).href;

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Start Python and import pyjpip.browser.
 * packages: "bundle" (bytecode precompiled for Pyodide at build time) or "wheels" (the plain wheels).
 */
export async function startPython({ packages = "bundle" } = {}) {
  const manifestPromise = fetch(here("./wheels/manifest.json")).then((r) => {
    if (!r.ok) throw new Error(`GET wheels/manifest.json: HTTP ${r.status}`);
    return r.json();
  });
  const pyodide = await loadPyodide({ indexURL: here("./pyodide/") });
  performance.mark("pyodide-ready");
  const manifest = await manifestPromise;
  const archives = packages === "wheels"
    ? manifest.wheels.map((file) => [file, "wheel"])
    : [[manifest.bundle, "zip"]];
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  const contents = await Promise.all(archives.map(([file]) => fetchBytes(here(`./wheels/${file}`))));
  archives.forEach(([, format], i) => pyodide.unpackArchive(contents[i], format, { extractDir: sitePackages }));
  const browser = pyodide.pyimport("pyjpip.browser");
  pyodide.runPython("import pyjpip.jpip.viewing, pyjpip.transport.pyodide_fetch");  // every page streams by JPIP
  performance.mark("packages-imported");
  return { pyodide, browser };
}
