// Decode codestreams with the browser's decoder (static/openjpeg/region_decoder.*) under Node, for
// tests/integration/test_region_decoder.py. stdin: JSON [{file, reduce, region, layers, keep, lowres}]
// (layers 0 or absent: all; keep: keep_coefficients(1); lowres {reduce, x0, y0, width, height, data}:
// set_lowres with data the base64 of little-endian int32 coefficients); stdout: one JSON line per
// job, {width, height, components, precision, signed, samples (base64)} or {error}, with
// coefficients (base64 int32, or null) when keep was asked and lowres_result when lowres was given.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const RegionDecoder = require(join(root, "static/openjpeg/region_decoder.js"));
const codec = await RegionDecoder({ wasmBinary: readFileSync(join(root, "static/openjpeg/region_decoder.wasm")) });
const jobs = JSON.parse(readFileSync(0, "utf8"));
for (const { file, reduce = 0, region = null, layers = 0, keep = false, lowres = null } of jobs) {
  const bytes = readFileSync(file);
  const input = codec._malloc(bytes.length);
  codec.HEAPU8.set(bytes, input);
  let low = 0;
  if (lowres) {
    const data = Buffer.from(lowres.data, "base64");
    low = codec._malloc(data.length);
    codec.HEAPU8.set(data, low);
    codec._set_lowres(low, lowres.reduce, lowres.x0, lowres.y0, lowres.width, lowres.height);
  }
  if (keep) codec._keep_coefficients(1);
  const status = codec._decode_region(input, bytes.length, reduce, layers, ...(region || [0, 0, 0, 0]));
  codec._free(input);
  if (low) codec._free(low);
  const extra = lowres ? { lowres_result: codec._lowres_result() } : {};
  if (status !== 0) {
    console.log(JSON.stringify({ error: codec.UTF8ToString(codec._last_error()) || "failed", ...extra }));
    continue;
  }
  const from = codec._result_pixels();
  const samples = Buffer.from(codec.HEAPU8.subarray(from, from + codec._result_bytes())).toString("base64");
  if (keep) {
    const kept = codec._result_coefficients();
    const count = codec._result_width() * codec._result_height() * 4;
    extra.coefficients = kept ? Buffer.from(codec.HEAPU8.subarray(kept, kept + count)).toString("base64") : null;
  }
  console.log(JSON.stringify({ width: codec._result_width(), height: codec._result_height(), components: codec._result_components(),
                               precision: codec._result_precision(), signed: codec._result_signed(), samples, ...extra }));
  codec._release();
}
