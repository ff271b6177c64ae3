// Classic Web Worker: decodes JPEG 2000 / HTJ2K codestreams with OpenJPEG compiled to WebAssembly.
// One fresh decoder per request: a failed decode does not throw, and a reused decoder would hand
// back the previous image, so failures are detected from OpenJPEG's [ERROR] lines and the output size.
/* global OpenJPEGWASM */
importScripts("openjpeg/openjpegwasm_decode.js");

let messages = [];
const codecReady = OpenJPEGWASM({
  locateFile: (file) => `openjpeg/${file}`,
  print: (line) => messages.push(line),
  printErr: (line) => messages.push(line),
});

self.onmessage = async ({ data: { id, codestream, reduce = 0, layers = 0 } }) => {
  let decoder;
  try {
    const codec = await codecReady;
    decoder = new codec.J2KDecoder();
    messages = [];
    decoder.getEncodedBuffer(codestream.byteLength).set(codestream);
    const start = performance.now();
    if (reduce > 0 || layers > 0) decoder.decodeSubResolution(reduce, layers);
    else decoder.decode();
    const milliseconds = performance.now() - start;
    const info = decoder.getFrameInfo();
    const { width, height } = reduce > 0 ? decoder.calculateSizeAtDecompositionLevel(reduce) : info;
    const pixels = decoder.getDecodedBuffer(); // a copy, not a view of WebAssembly memory
    const bytesPerSample = info.bitsPerSample > 8 ? 2 : 1;
    const errors = messages.filter((line) => line.includes("[ERROR]"));
    if (errors.length || width * height * info.componentCount * bytesPerSample !== pixels.byteLength || !pixels.byteLength) {
      throw new Error(`OpenJPEG could not decode the codestream: ${errors.join(" ") || "no image produced"}`);
    }
    self.postMessage({
      id, width, height, milliseconds, pixels: pixels.buffer,
      bitsPerSample: info.bitsPerSample, signed: info.isSigned, components: info.componentCount,
    }, [pixels.buffer]);
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message || error) });
  } finally {
    if (decoder) decoder.delete();
  }
};
