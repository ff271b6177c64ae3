/*
 * A JPEG 2000 / HTJ2K decoder for the browser: OpenJPEG's own library, compiled to WebAssembly,
 * with the one call the prebuilt decoders do not offer: decode a region (opj_set_decode_area).
 *
 * A viewer zoomed into a large image needs the samples on screen only. Decoding the whole frame
 * and cutting the region out costs the inverse wavelet transform of every sample; OpenJPEG's
 * partial decoding touches only the code-blocks and the transform the region depends on, and
 * gives the same samples (ISO/IEC 15444-1 Annex F, the synthesis is local).
 *
 * Interface (one decode at a time per module instance):
 *   decode_region(data, length, reduce, layers, x0, y0, x1, y1): 0 or -1. The region is on the
 *     reference grid (full resolution); x1 <= x0 means the whole image. layers 0 means all.
 *   result_*(): the decoded samples, pixel-interleaved, 8-bit, 16-bit or (above 16 bits of precision)
 *     32-bit little-endian as the precision needs, and their geometry; last_error(): what OpenJPEG
 *     said when it failed.
 *
 * Decoding only what a finer picture adds (one grey-scale component, reversible 5/3):
 *   keep_coefficients(1) before a decode keeps its samples unclamped and without the DC offset,
 *     result_coefficients() (int32, NULL when the codestream is not reversible): they are the
 *     LL band of that resolution (15444-1 F.3, the 5/3 synthesis is exact in integers), which the
 *     8/16-bit samples are not where clamping cut an overshoot of the filter.
 *   set_lowres(samples, reduce, x0, y0, width, height) before a decode at a finer resolution
 *     gives it those coefficients (absolute coordinates at that resolution): the code-blocks of
 *     that resolution and below are not decoded and their synthesis is not done; the finer levels
 *     start from the given LL. lowres_result(): 1 used, 0 not applicable, -1 the area given did not
 *     cover what the synthesis reads (the decode failed; decode again without).
 *
 * Subsampled components (a JP2 file's 4:2:0 sYCC: ISO/IEC 15444-1 B.2, XRsiz and YRsiz):
 *   upsample_components(1) before a decode returns every component on the first one's sample grid,
 *     each sample repeated over the reference-grid points from its own up to the next one's
 *     (component c's sample covering point X is floor(X / XRsiz_c), at any reduction), as
 *     opj_decompress does for 4:2:0 and 4:2:2 images starting at even offsets. Without it a
 *     codestream whose components differ in size is refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opj_includes.h" /* OpenJPEG's internals, for the lower-resolution hooks its patched files call */

typedef struct {
    const uint8_t *data;
    OPJ_SIZE_T length;
    OPJ_SIZE_T position;
} memory_source;

static uint8_t *pixels = NULL;
static int width = 0, height = 0, components = 0, precision = 0, is_signed = 0, sample_bytes = 0;
static char error_text[1024];
static OPJ_INT32 *coefficients = NULL;
static int keep = 0;
static int upsample = 0;
static const OPJ_INT32 *lowres = NULL;
static int lowres_reduce = 0, lowres_x0 = 0, lowres_y0 = 0, lowres_w = 0, lowres_h = 0, lowres_state = 0;
int pyjpip_unclamped = 0; /* read by tcd.c (patched): the reversible DC level shift does not clamp */

/* The resolution (index from the lowest) whose LL band the caller gave, or -1 (called by the
   patched t1.c and dwt.c). Only a finer decode can start from it. */
int pyjpip_lowres_level(const opj_tcd_tilecomp_t *tilec) {
    if (!lowres) return -1;
    int level = (int)tilec->numresolutions - 1 - lowres_reduce;
    return level >= 0 && level + 1 < (int)tilec->minimum_num_resolutions ? level : -1;
}

/* Write the given LL samples the synthesis of the next level reads (x0..y1 relative to ``ll``). */
OPJ_BOOL pyjpip_lowres_write(opj_sparse_array_int32_t *sa, const opj_tcd_resolution_t *ll,
                             OPJ_UINT32 x0, OPJ_UINT32 y0, OPJ_UINT32 x1, OPJ_UINT32 y1) {
    if (x1 <= x0 || y1 <= y0) return OPJ_TRUE;
    int ax0 = ll->x0 + (int)x0, ay0 = ll->y0 + (int)y0, ax1 = ll->x0 + (int)x1, ay1 = ll->y0 + (int)y1;
    if (ax0 < lowres_x0 || ay0 < lowres_y0 || ax1 > lowres_x0 + lowres_w || ay1 > lowres_y0 + lowres_h) {
        lowres_state = -1;
        return OPJ_FALSE;
    }
    if (lowres_state == 0) lowres_state = 1;
    return opj_sparse_array_int32_write(sa, x0, y0, x1, y1,
                                        lowres + (size_t)(ay0 - lowres_y0) * (size_t)lowres_w + (ax0 - lowres_x0),
                                        1, (OPJ_UINT32)lowres_w, OPJ_TRUE);
}

void keep_coefficients(int flag) { keep = flag; }

void upsample_components(int flag) { upsample = flag; }

/* For each of ``count`` samples of the first component from ``first0`` (absolute, at the decoded
   resolution) the index of component c's sample covering it: floor(X * d0 / dc) - firstc, kept in
   [0, size - 1]. */
static int *sample_map(int count, int first0, int d0, int dc, int firstc, int size) {
    int *map = (int *)opj_malloc((size_t)(count > 0 ? count : 1) * sizeof(int));
    if (!map) return NULL;
    for (int i = 0; i < count; i++) {
        long long index = ((long long)(first0 + i) * d0) / dc - firstc;
        map[i] = index < 0 ? 0 : index >= size ? size - 1 : (int)index;
    }
    return map;
}

static int ceil_div(long long a, long long b) { return (int)((a + b - 1) / b); }

void set_lowres(const OPJ_INT32 *samples, int reduce, int x0, int y0, int w, int h) {
    lowres = samples;
    lowres_reduce = reduce;
    lowres_x0 = x0;
    lowres_y0 = y0;
    lowres_w = w;
    lowres_h = h;
}

static OPJ_SIZE_T source_read(void *buffer, OPJ_SIZE_T count, void *user) {
    memory_source *source = (memory_source *)user;
    OPJ_SIZE_T left = source->length - source->position;
    if (left == 0) return (OPJ_SIZE_T)-1;
    if (count > left) count = left;
    memcpy(buffer, source->data + source->position, count);
    source->position += count;
    return count;
}

static OPJ_OFF_T source_skip(OPJ_OFF_T count, void *user) {
    memory_source *source = (memory_source *)user;
    if (count < 0) {
        if ((OPJ_SIZE_T)(-count) > source->position) return -1;
    } else if ((OPJ_SIZE_T)count > source->length - source->position) {
        count = (OPJ_OFF_T)(source->length - source->position);
    }
    source->position += count;
    return count;
}

static OPJ_BOOL source_seek(OPJ_OFF_T position, void *user) {
    memory_source *source = (memory_source *)user;
    if (position < 0 || (OPJ_SIZE_T)position > source->length) return OPJ_FALSE;
    source->position = (OPJ_SIZE_T)position;
    return OPJ_TRUE;
}

static void on_error(const char *message, void *user) {
    (void)user;
    size_t used = strlen(error_text);
    if (used + 2 < sizeof(error_text)) {
        snprintf(error_text + used, sizeof(error_text) - used, "%s%s", used ? " " : "", message);
        used = strlen(error_text);
        if (used && error_text[used - 1] == '\n') error_text[used - 1] = '\0';
    }
}

static void quiet(const char *message, void *user) {
    (void)message;
    (void)user;
}

void release(void) {
    opj_free(pixels);
    pixels = NULL;
    opj_free(coefficients);
    coefficients = NULL;
    width = height = components = precision = is_signed = sample_bytes = 0;
}

static int fail(const char *message) {
    if (message) on_error(message, NULL);
    return -1;
}

int decode_region(const uint8_t *data, int length, int reduce, int layers, int x0, int y0, int x1, int y1) {
    opj_dparameters_t parameters;
    opj_codec_t *codec = NULL;
    opj_stream_t *stream = NULL;
    opj_image_t *image = NULL;
    memory_source source = {data, (OPJ_SIZE_T)length, 0};
    int status = -1;

    release();
    error_text[0] = '\0';
    lowres_state = 0;
    pyjpip_unclamped = keep;
    /* A JP2 file starts with its signature box; anything else is taken for a raw codestream. */
    int jp2 = length >= 12 && data[4] == 'j' && data[5] == 'P' && data[6] == ' ' && data[7] == ' ';
    codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    opj_set_error_handler(codec, on_error, NULL);
    opj_set_warning_handler(codec, quiet, NULL);
    opj_set_info_handler(codec, quiet, NULL);
    opj_set_default_decoder_parameters(&parameters);
    parameters.cp_reduce = (OPJ_UINT32)reduce;
    parameters.cp_layer = (OPJ_UINT32)layers;
    if (!opj_setup_decoder(codec, &parameters)) { fail("the decoder could not be set up"); goto done; }
    stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
    opj_stream_set_user_data(stream, &source, NULL);
    opj_stream_set_user_data_length(stream, source.length);
    opj_stream_set_read_function(stream, source_read);
    opj_stream_set_skip_function(stream, source_skip);
    opj_stream_set_seek_function(stream, source_seek);
    if (!opj_read_header(stream, codec, &image)) { fail("the main header could not be read"); goto done; }
    int reversible = 0;
    if (keep || lowres) {
        opj_codestream_info_v2_t *info = opj_get_cstr_info(codec);
        reversible = info && info->m_default_tile_info.tccp_info && info->m_default_tile_info.tccp_info[0].qmfbid == 1;
        if (info) opj_destroy_cstr_info(&info);
        if (!reversible || image->numcomps != 1) lowres = NULL; /* 9/7 is not exact in integers; one component only */
    }
    /* Always set: with zeros OpenJPEG takes the whole image and computes the reduced size from the
       image offsets (ceil(x1 / 2^r) - ceil(x0 / 2^r)), as opj_decompress does; without the call a
       whole-image decode of an image with offsets comes out one sample larger. */
    if (x1 <= x0 || y1 <= y0) x0 = y0 = x1 = y1 = 0;
    if (!opj_set_decode_area(codec, image, x0, y0, x1, y1)) {
        fail("the region is outside the image");
        goto done;
    }
    if (!opj_decode(codec, stream, image) || !opj_end_decompress(codec, stream)) {
        fail("the codestream could not be decoded");
        goto done;
    }
    if (image->numcomps == 0 || !image->comps[0].data) { fail("no samples were decoded"); goto done; }
    width = (int)image->comps[0].w;
    height = (int)image->comps[0].h;
    components = (int)image->numcomps;
    precision = (int)image->comps[0].prec;
    is_signed = (int)image->comps[0].sgnd;
    int resized = 0;
    for (int c = 1; c < components; c++) {
        if (!image->comps[c].data || (((int)image->comps[c].w != width || (int)image->comps[c].h != height) &&
                                      (!upsample || !image->comps[c].w || !image->comps[c].h))) {
            fail("components of different sizes (subsampled) are not supported");
            goto done;
        }
        resized |= (int)image->comps[c].w != width || (int)image->comps[c].h != height;
    }
    if (precision < 1 || precision > 31) { fail("a precision of more than 31 bits is not supported"); goto done; }
    sample_bytes = precision > 16 ? 4 : precision > 8 ? 2 : 1;
    size_t count = (size_t)width * (size_t)height;
    pixels = (uint8_t *)opj_malloc(count * (size_t)components * (size_t)sample_bytes);
    if (!pixels) { fail("out of memory for the decoded samples"); goto done; }
    /* Kept unclamped (keep_coefficients): the coefficients first, the samples clamped here. */
    OPJ_INT32 low = is_signed ? -(1 << (precision - 1)) : 0;
    OPJ_INT32 high = is_signed ? (1 << (precision - 1)) - 1 : (OPJ_INT32)((1U << precision) - 1);
    if (keep && reversible && components == 1) {
        coefficients = (OPJ_INT32 *)opj_malloc(count * sizeof(OPJ_INT32));
        if (!coefficients) { fail("out of memory for the coefficients"); goto done; }
        OPJ_INT32 shift = is_signed ? 0 : (1 << (precision - 1));
        for (size_t i = 0; i < count; i++) coefficients[i] = image->comps[0].data[i] - shift;
    }
    for (int c = 0; c < components; c++) {
        const opj_image_comp_t *comp = &image->comps[c];
        OPJ_INT32 *own = comp->data;
        if (resized && c > 0) {
            /* First samples at the decoded resolution: ceil(ceil(x0 / XRsiz) / 2^reduce) (B-12, B-14). */
            int scale = 1 << reduce, d0x = (int)image->comps[0].dx, d0y = (int)image->comps[0].dy;
            int x0c = ceil_div(ceil_div(image->x0, comp->dx), scale), y0c = ceil_div(ceil_div(image->y0, comp->dy), scale);
            int x00 = ceil_div(ceil_div(image->x0, d0x), scale), y00 = ceil_div(ceil_div(image->y0, d0y), scale);
            int *columns = sample_map(width, x00, d0x, (int)comp->dx, x0c, (int)comp->w);
            int *rows = sample_map(height, y00, d0y, (int)comp->dy, y0c, (int)comp->h);
            own = (OPJ_INT32 *)opj_malloc((size_t)width * (size_t)height * sizeof(OPJ_INT32));
            if (!columns || !rows || !own) {
                opj_free(columns);
                opj_free(rows);
                opj_free(own);
                fail("out of memory for the upsampled components");
                goto done;
            }
            for (int y = 0; y < height; y++) {
                const OPJ_INT32 *from = comp->data + (size_t)rows[y] * comp->w;
                for (int x = 0; x < width; x++) own[(size_t)y * (size_t)width + x] = from[columns[x]];
            }
            opj_free(columns);
            opj_free(rows);
        }
        for (int y = 0; y < height; y++) {
            const OPJ_INT32 *row = own + (size_t)y * (size_t)width;
            size_t first = (size_t)y * (size_t)width;
            if (sample_bytes == 1) {
                for (int x = 0; x < width; x++) pixels[(first + x) * components + c] = (uint8_t)opj_int_clamp(row[x], low, high);
            } else if (sample_bytes == 2) {
                uint16_t *out = (uint16_t *)pixels;
                for (int x = 0; x < width; x++) out[(first + x) * components + c] = (uint16_t)opj_int_clamp(row[x], low, high);
            } else {
                OPJ_INT32 *out = (OPJ_INT32 *)pixels;
                for (int x = 0; x < width; x++) out[(first + x) * components + c] = opj_int_clamp(row[x], low, high);
            }
        }
        if (own != comp->data) opj_free(own);
    }
    status = 0;
done:
    if (status != 0) release();
    lowres = NULL; /* given for one decode */
    keep = upsample = pyjpip_unclamped = 0;
    if (image) opj_image_destroy(image);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
    return status;
}

uint8_t *result_pixels(void) { return pixels; }
int result_width(void) { return width; }
int result_height(void) { return height; }
int result_components(void) { return components; }
int result_precision(void) { return precision; }
int result_signed(void) { return is_signed; }
int result_bytes(void) { return width * height * components * sample_bytes; }
const char *last_error(void) { return error_text; }
OPJ_INT32 *result_coefficients(void) { return coefficients; }
int lowres_result(void) { return lowres_state; }
