// Boots Pyodide from this site (never a CDN) and installs pyjpip and pydicom from local archives.
// The site's pyodide/python_stdlib.zip has the standard modules the pages import precompiled
// (tools/pyodide_stdlib.mjs): Pyodide's start no longer compiles asyncio, inspect, email, ...
import { loadPyodide } from "./pyodide/pyodide.mjs";

import { FetchPolicy } from "./fetch-policy.js";
import { DEFAULT_CONFIG } from "./viewer-config.js";

const here = (path) => new URL(path, import.meta.url).href;
const ownSite = new FetchPolicy(DEFAULT_CONFIG, new URL(import.meta.url).origin);  // Python's files: this site's

async function fetchBytes(url) {
  const response = await ownSite.fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Start Python and import pyjpip.browser. pyjpip comes first; pydicom (most of the bytes and of the
 * import time) only with ``dicom`` or when ``installDicom()`` is called: a bare JPEG 2000 page
 * never needs it.
 * packages: "bundle" (bytecode precompiled for Pyodide at build time) or "wheels" (the plain wheels).
 */
export async function startPython({ packages = "bundle", dicom = false } = {}) {
  const manifestPromise = ownSite.fetch(here("./wheels/manifest.json")).then((r) => {
    if (!r.ok) throw new Error(`GET wheels/manifest.json: HTTP ${r.status}`);
    return r.json();
  });
  const archivesOf = (manifest, part) => (packages === "wheels"
    ? manifest.wheels[part].map((file) => [file, "wheel"])
    : [[manifest.bundles[part], "zip"]]);
  const download = (archives) => Promise.all(archives.map(([file]) => fetchBytes(here(`./wheels/${file}`))));
  const coreBytes = manifestPromise.then((manifest) => download(archivesOf(manifest, "core")));
  const dicomBytes = dicom ? manifestPromise.then((manifest) => download(archivesOf(manifest, "dicom"))) : null;
  const pyodide = await loadPyodide({ indexURL: here("./pyodide/") });
  performance.mark("pyodide-ready");
  const manifest = await manifestPromise;
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  const unpack = (archives, contents) =>
    archives.forEach(([, format], i) => pyodide.unpackArchive(contents[i], format, { extractDir: sitePackages }));
  unpack(archivesOf(manifest, "core"), await coreBytes);
  let dicomInstalled = null;
  const installDicom = () => {
    dicomInstalled ??= (dicomBytes || download(archivesOf(manifest, "dicom")))
      .then((contents) => unpack(archivesOf(manifest, "dicom"), contents));
    return dicomInstalled;
  };
  if (dicom) await installDicom();
  const browser = pyodide.pyimport("pyjpip.browser");
  pyodide.runPython("import pyjpip.jpip.viewing, pyjpip.transport.pyodide_fetch");  // every page streams by JPIP
  performance.mark("packages-imported");
  return { pyodide, browser, installDicom };
}
