// Classic Web Worker: decodes JPEG 2000 / HTJ2K codestreams with OpenJPEG compiled to WebAssembly
// (tools/wasm: OpenJPEG 2.5.3 plus region decoding). In: {id, codestream, reduce, layers, region}
// where region [x0, y0, x1, y1] is on the reference grid (omitted: the whole image). Out: the
// samples, pixel-interleaved, 8-bit or 16-bit little-endian, or {id, error}.
/* global RegionDecoder */
importScripts("openjpeg/region_decoder.js");

const ready = RegionDecoder({ locateFile: (file) => `openjpeg/${file}` });

self.onmessage = async ({ data: { id, codestream, reduce = 0, layers = 0, region = null } }) => {
  try {
    const codec = await ready;
    const input = codec._malloc(codestream.byteLength);
    let status;
    const start = performance.now();
    try {
      codec.HEAPU8.set(codestream, input);
      const [x0, y0, x1, y1] = region || [0, 0, 0, 0];
      status = codec._decode_region(input, codestream.byteLength, reduce, layers, x0, y0, x1, y1);
    } finally {
      codec._free(input);
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
    };
    codec._release();
    self.postMessage(reply, [pixels.buffer]);
  } catch (error) {
    self.postMessage({ id, error: String((error && error.message) || error) });
  }
};
