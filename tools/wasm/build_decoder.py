"""Build the browser's JPEG 2000 decoder: OpenJPEG 2.5.3 compiled to WebAssembly with region decoding.

    python3 tools/wasm/build_decoder.py OUTPUT_DIR

Why our own build: the prebuilt OpenJPEG WebAssembly decoders on npm (@cornerstonejs/codec-openjpeg)
decode whole frames only. A viewer zoomed into a 2048² or 4096² image needs the samples on screen;
OpenJPEG's opj_set_decode_area decodes just those (5x faster for a 1000x560 region of a 4096²
image, identical samples). The library is OpenJPEG itself, unchanged: its sources come from the
pinned, hash-checked sdist of pylibjpeg-openjpeg on PyPI (which carries OpenJPEG 2.5.3 under
lib/openjpeg); region_decoder.c beside this script is the only code of ours, with one line of
OpenJPEG patched (PATCHES: HT code-blocks decoded into the area buffer, which 2.5.3 leaves empty). Emscripten is Debian's
(package emscripten). Standard library only; writes region_decoder.js and region_decoder.wasm,
and OpenJPEG's LICENSE beside them, and two small codestreams (opj_compress, reversible and
irreversible) the decode workers decode while the page starts: the browser compiles WebAssembly
functions on their first call and optimises them once they run hot, so the first real picture
would otherwise pay for that (a 256x313 picture: 69 ms cold, 7 ms warm).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SDIST_URL = ("https://files.pythonhosted.org/packages/4d/ed/f65377285d004afbae3a281d146080ff8e4d33672512a3e755d3dfc09c08/"
             "pylibjpeg_openjpeg-2.5.0.tar.gz")
SDIST_SHA256 = "e0ea4d9e59820b02c8437121ae65cc28e98d9e9150f4a6967f2c3ba805e7f873"
OPENJPEG_VERSION = (2, 5, 3)
#: Encoder-side JPIP index writers and tools: not part of a decoder.
LEFT_OUT = {"bench_dwt.c", "t1_generate_luts.c", "cidx_manager.c", "phix_manager.c", "ppix_manager.c",
            "thix_manager.c", "tpix_manager.c"}
EXPORTS = ["decode_region", "result_pixels", "result_width", "result_height", "result_components", "result_precision",
           "result_signed", "result_bytes", "last_error", "release", "malloc", "free", "keep_coefficients",
           "set_lowres", "result_coefficients", "lowres_result", "upsample_components"]


#: (file, text in OpenJPEG 2.5.3, replacement, why). Each must match exactly once.
PATCHES = [(
    "ht_dec.c",
    "    decoded_data = (OPJ_UINT32*)t1->data;\n",
    "    decoded_data = (OPJ_UINT32*)(cblk->decoded_data ? cblk->decoded_data : t1->data);\n",
    "When only an area is decoded (opj_set_decode_area), a code-block's samples belong in its own "
    "cblk->decoded_data buffer (zeroed, the same size), which the Part 1 block decoder writes "
    "(t1.c, opj_t1_decode_cblk) and the HT block decoder does not: every HT block came out empty.",
), (
    "tcd.c",
    "                    *l_current_ptr = opj_int_clamp(*l_current_ptr + l_tccp->m_dc_level_shift, l_min,\n"
    "                                                   l_max);\n",
    "                    *l_current_ptr = pyjpip_unclamped ? *l_current_ptr + l_tccp->m_dc_level_shift :\n"
    "                                     opj_int_clamp(*l_current_ptr + l_tccp->m_dc_level_shift, l_min, l_max);\n",
    "keep_coefficients: a reversible decode kept unclamped is the LL band a finer decode starts from "
    "(region_decoder.c clamps the samples it returns).",
), (
    "tcd.c",
    '#include "opj_includes.h"\n',
    '#include "opj_includes.h"\n\nextern int pyjpip_unclamped; /* region_decoder.c */\n',
    "The declaration for the line above.",
), (
    "t1.c",
    "    for (resno = 0; resno < tilec->minimum_num_resolutions; ++resno) {\n",
    "    /* set_lowres: the caller gave the LL band of a resolution; it and those below are not decoded */\n"
    "    resno = !tcd->whole_tile_decoding && tccp->qmfbid == 1 ? (OPJ_UINT32)(pyjpip_lowres_level(tilec) + 1) : 0;\n"
    "    for (; resno < tilec->minimum_num_resolutions; ++resno) {\n",
    "set_lowres (region_decoder.c): a finer picture of a region decodes only the code-blocks the "
    "lower resolution it is given does not hold.",
), (
    "t1.c",
    '#include "opj_includes.h"\n',
    '#include "opj_includes.h"\n\nint pyjpip_lowres_level(const opj_tcd_tilecomp_t *tilec); /* region_decoder.c */\n',
    "The declaration for the line above.",
), (
    "dwt.c",
    "        for (j = 0; j < rh; ++j) {\n"
    "            if ((j >= win_ll_y0 && j < win_ll_y1) ||\n"
    "                    (j >= win_lh_y0 + (OPJ_UINT32)v.sn && j < win_lh_y1 + (OPJ_UINT32)v.sn)) {\n\n"
    "                /* Avoids dwt.c:1584:44 (in opj_dwt_decode_partial_1): runtime error: */\n",
    "        /* set_lowres: the levels up to the given LL band are not synthesized; the next one reads it */\n"
    "        if ((OPJ_INT32)resno <= pyjpip_lowres_level(tilec)) {\n"
    "            continue;\n"
    "        }\n"
    "        if ((OPJ_INT32)resno == pyjpip_lowres_level(tilec) + 1 &&\n"
    "                !pyjpip_lowres_write(sa, tr - 1, win_ll_x0, win_ll_y0, win_ll_x1, win_ll_y1)) {\n"
    "            opj_sparse_array_int32_free(sa);\n"
    "            opj_aligned_free(h.mem);\n"
    "            return OPJ_FALSE;\n"
    "        }\n"
    "        for (j = 0; j < rh; ++j) {\n"
    "            if ((j >= win_ll_y0 && j < win_ll_y1) ||\n"
    "                    (j >= win_lh_y0 + (OPJ_UINT32)v.sn && j < win_lh_y1 + (OPJ_UINT32)v.sn)) {\n\n"
    "                /* Avoids dwt.c:1584:44 (in opj_dwt_decode_partial_1): runtime error: */\n",
    "set_lowres in the 5/3 region synthesis (the 9/7 one is not touched: t1.c decodes everything for it).",
), (
    "dwt.c",
    '#include "opj_includes.h"\n',
    '#include "opj_includes.h"\n\nint pyjpip_lowres_level(const opj_tcd_tilecomp_t *tilec); /* region_decoder.c */\n'
    "OPJ_BOOL pyjpip_lowres_write(opj_sparse_array_int32_t *sa, const opj_tcd_resolution_t *ll,\n"
    "                             OPJ_UINT32 x0, OPJ_UINT32 y0, OPJ_UINT32 x1, OPJ_UINT32 y1);\n",
    "The declarations for the lines above.",
)]


def apply_patches(openjp2: Path) -> None:
    for name, old, new, _why in PATCHES:
        path = openjp2 / name
        text = path.read_text()
        if new in text:
            continue  # applied by an earlier build (a replacement may hold the text it replaces)
        if text.count(old) != 1:
            sys.exit(f"[decoder] {name}: the line to patch is not there exactly once: {old.strip()}")
        path.write_text(text.replace(old, new))


def sources(cache: Path) -> Path:
    """The openjp2 source folder, downloaded once and checked against the pinned hash."""
    archive = cache / SDIST_URL.rsplit("/", 1)[1]
    if not archive.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"[decoder] downloading {SDIST_URL}", flush=True)
        with urllib.request.urlopen(SDIST_URL, timeout=120) as response:
            data = response.read()
        if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
            sys.exit(f"[decoder] {archive.name}: sha256 does not match the pinned {SDIST_SHA256}")
        archive.write_bytes(data)
    elif hashlib.sha256(archive.read_bytes()).hexdigest() != SDIST_SHA256:
        archive.unlink()
        sys.exit(f"[decoder] {archive} was not the pinned file and was removed: run again")
    folder = cache / "openjpeg-source"
    library = folder / "lib" / "openjpeg"
    if not (library / "src" / "lib" / "openjp2" / "openjpeg.h").exists():
        shutil.rmtree(folder, ignore_errors=True)
        with tarfile.open(archive) as tar:
            top = tar.getnames()[0].split("/")[0]
            members = [m for m in tar.getmembers() if m.name.startswith(f"{top}/lib/openjpeg/")
                       and (m.isfile() or m.isdir()) and ".." not in m.name.split("/")]
            for member in members:
                member.name = member.name[len(top) + 1:]
            tar.extractall(folder, members=members)
    return library


WARMUP_FILES = {"warmup-reversible.j2k": [], "warmup-irreversible.j2k": ["-I", "-r", "20"]}


def write_warmup(output: Path) -> None:
    """A 256x256 12-bit image with smooth and noisy parts (every coding pass and bit-plane runs),
    encoded as a viewer's images are: reversible 5/3 (lossless) and irreversible 9/7."""
    side, state, rows = 256, 12345, bytearray()
    for y in range(side):
        for x in range(side):
            state = (1103515245 * state + 12345) & 0x7FFFFFFF
            value = (x * 8 + y * 4) % 4096 if (x // 64 + y // 64) % 2 else (2048 + (state >> 16) % 1024 + x)
            rows += min(value, 4095).to_bytes(2, "big")
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "warmup.pgm"
        image.write_bytes(f"P5\n{side} {side}\n4095\n".encode() + bytes(rows))
        for name, options in WARMUP_FILES.items():
            result = subprocess.run(["opj_compress", "-i", str(image), "-o", str(output / name), *options],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"[decoder] opj_compress could not make {name}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "static" / "openjpeg"
    emcc = shutil.which("emcc")
    if not emcc:
        sys.exit("[decoder] emcc not found: install Debian's emscripten (apt-get install emscripten)")
    library = sources(ROOT / ".cache" / "decoder")
    openjp2 = library / "src" / "lib" / "openjp2"
    apply_patches(openjp2)
    config = ROOT / ".cache" / "decoder" / "config"
    config.mkdir(parents=True, exist_ok=True)
    major, minor, build = OPENJPEG_VERSION
    (config / "opj_config.h").write_text(f"#ifndef OPJ_CONFIG_H_INCLUDED\n#define OPJ_CONFIG_H_INCLUDED\n"
                                         f"#define OPJ_VERSION_MAJOR {major}\n#define OPJ_VERSION_MINOR {minor}\n"
                                         f"#define OPJ_VERSION_BUILD {build}\n#endif\n")
    (config / "opj_config_private.h").write_text(f'#define OPJ_PACKAGE_VERSION "{major}.{minor}.{build}"\n'
                                                 "#define OPJ_HAVE_POSIX_MEMALIGN 1\n")
    files = sorted(str(p) for p in openjp2.glob("*.c") if p.name not in LEFT_OUT and not p.name.startswith("test_"))
    output.mkdir(parents=True, exist_ok=True)
    # Debian's emscripten finds its JavaScript tools (acorn) through NODE_PATH when node is not Debian's.
    env = {**os.environ, "NODE_PATH": os.pathsep.join(filter(None, [os.environ.get("NODE_PATH"), "/usr/share/nodejs"]))}
    command = [emcc, "-O3", "-flto", "-msimd128", "-msse2", "-DNDEBUG", f"-I{config}", f"-I{openjp2}", *files,
               str(HERE / "region_decoder.c"), "-o", str(output / "region_decoder.js"),
               "-sMODULARIZE", "-sEXPORT_NAME=RegionDecoder", "-sALLOW_MEMORY_GROWTH", "-sENVIRONMENT=web,worker,node",
               "-sEXPORTED_FUNCTIONS=" + ",".join(f"_{name}" for name in EXPORTS),
               "-sEXPORTED_RUNTIME_METHODS=UTF8ToString,HEAPU8"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"[decoder] emcc failed:\n{result.stderr[-3000:]}")
    shutil.copy2(library / "LICENSE", output / "LICENSE-OpenJPEG")
    write_warmup(output)
    print(f"[decoder] {output / 'region_decoder.wasm'}: {(output / 'region_decoder.wasm').stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
