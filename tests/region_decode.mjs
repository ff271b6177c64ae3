// Decode codestreams with the browser's decoder (static/openjpeg/region_decoder.*) under Node, for
// tests/integration/test_region_decoder.py. stdin: JSON [{file, reduce, region}]; stdout: one JSON
// line per job, {width, height, components, precision, signed, samples (base64)} or {error}.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const RegionDecoder = require(join(root, "static/openjpeg/region_decoder.js"));
const codec = await RegionDecoder({ wasmBinary: readFileSync(join(root, "static/openjpeg/region_decoder.wasm")) });
const jobs = JSON.parse(readFileSync(0, "utf8"));
for (const { file, reduce = 0, region = null } of jobs) {
  const bytes = readFileSync(file);
  const input = codec._malloc(bytes.length);
  codec.HEAPU8.set(bytes, input);
  const status = codec._decode_region(input, bytes.length, reduce, 0, ...(region || [0, 0, 0, 0]));
  codec._free(input);
  if (status !== 0) {
    console.log(JSON.stringify({ error: codec.UTF8ToString(codec._last_error()) }));
    continue;
  }
  const from = codec._result_pixels();
  const samples = Buffer.from(codec.HEAPU8.subarray(from, from + codec._result_bytes())).toString("base64");
  console.log(JSON.stringify({ width: codec._result_width(), height: codec._result_height(), components: codec._result_components(),
                               precision: codec._result_precision(), signed: codec._result_signed(), samples }));
  codec._release();
}
