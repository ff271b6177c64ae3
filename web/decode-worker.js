// Classic Web Worker: decodes JPEG 2000 / HTJ2K codestreams with OpenJPEG compiled to WebAssembly
// (tools/wasm: OpenJPEG 2.5.3 plus region decoding). In: {id, codestream, reduce, layers, region}
// where region [x0, y0, x1, y1] is on the reference grid (omitted: the whole image). Out: the
// samples, pixel-interleaved, 8-bit, 16-bit or (above 16 bits) 32-bit little-endian, or {id, error}.
// keep: also return `coefficients` (Int32, reversible grey-scale only: the LL band of that
// resolution, unclamped); lowres {data: Int32Array, reduce, x0, y0, width, height}: such
// coefficients of a lower resolution (absolute coordinates there), so only the finer levels are
// decoded (`lowres: true` in the reply when they were used). upsample: components subsampled more
// than the first come on its sample grid (a JP2 file's 4:2:0 sYCC), each sample repeated; without it
// such a codestream is refused.
/* global RegionDecoder */
importScripts("openjpeg/region_decoder.js");

const ready = RegionDecoder({ locateFile: (file) => `openjpeg/${file}` });
let working = false;  // a real job came: warming up stops

function decode(codec, codestream, reduce, layers, region, keep = false, lowres = null, upsample = false) {
  const input = codec._malloc(codestream.byteLength);
  const low = lowres ? codec._malloc(lowres.data.byteLength) : 0;
  try {
    codec.HEAPU8.set(codestream, input);
    if (low) {
      codec.HEAPU8.set(new Uint8Array(lowres.data.buffer, lowres.data.byteOffset, lowres.data.byteLength), low);
      codec._set_lowres(low, lowres.reduce, lowres.x0, lowres.y0, lowres.width, lowres.height);
    }
    codec._keep_coefficients(keep ? 1 : 0);
    codec._upsample_components(upsample ? 1 : 0);
    const [x0, y0, x1, y1] = region || [0, 0, 0, 0];
    return codec._decode_region(input, codestream.byteLength, reduce, layers, x0, y0, x1, y1);
  } finally {
    codec._free(input);
    if (low) codec._free(low);
  }
}

// The browser compiles a WebAssembly function on its first call and optimises it once it runs hot:
// decoding two small codestreams (reversible 5/3 and irreversible 9/7, made at build time) a few
// times while the page starts saves the first real picture most of that cost (a 256x313 one: 69 -> 25 ms).
// One decode per task, so a real job is never kept waiting for more than one of them.
// Fixed files of this site (the page's fetch policy is fetch-policy.js; CSP connect-src bounds this worker too).
const WARMUP = ["openjpeg/warmup-reversible.j2k", "openjpeg/warmup-irreversible.j2k"];
const WARMUP_ROUNDS = 4;
(async () => {
  const [codec, ...codestreams] = await Promise.all([ready, ...WARMUP.map((url) =>
    fetch(url, { redirect: "error", credentials: "same-origin" }).then((response) => (response.ok ? response.arrayBuffer() : null)).then((b) => b && new Uint8Array(b)))]);
  for (let round = 0; round < WARMUP_ROUNDS; round++) {
    for (const codestream of codestreams.filter(Boolean)) {
      await new Promise((resolve) => setTimeout(resolve));
      if (working) return;
      decode(codec, codestream, 0, 0, null);
      codec._release();
    }
  }
})().catch(() => {});  // warming up is an optimisation: the first real job simply pays instead

self.onmessage = async ({ data: { id, codestream, reduce = 0, layers = 0, region = null, keep = false, lowres = null,
                                  upsample = false } }) => {
  working = true;
  try {
    const codec = await ready;
    const start = performance.now();
    let status = decode(codec, codestream, reduce, layers, region, keep, lowres, upsample);
    let used = lowres ? codec._lowres_result() : 0;
    if (status !== 0 && used < 0) {  // the lower resolution given did not cover the synthesis: all of it
      status = decode(codec, codestream, reduce, layers, region, keep, null, upsample);
      used = 0;
    }
    const milliseconds = performance.now() - start;
    if (status !== 0) {
      throw new Error(`OpenJPEG could not decode the codestream: ${codec.UTF8ToString(codec._last_error()) || "no reason given"}`);
    }
    const from = codec._result_pixels();
    const pixels = codec.HEAPU8.slice(from, from + codec._result_bytes());  // a copy: the heap is reused
    const reply = {
      id, width: codec._result_width(), height: codec._result_height(), milliseconds, pixels: pixels.buffer,
      bitsPerSample: codec._result_precision(), signed: codec._result_signed() === 1, components: codec._result_components(),
      lowres: used > 0, coefficients: null,
    };
    const kept = keep ? codec._result_coefficients() : 0;
    if (kept) reply.coefficients = codec.HEAPU8.slice(kept, kept + reply.width * reply.height * 4).buffer;
    codec._release();
    self.postMessage(reply, reply.coefficients ? [pixels.buffer, reply.coefficients] : [pixels.buffer]);
  } catch (error) {
    self.postMessage({ id, error: String((error && error.message) || error) });
  }
};
