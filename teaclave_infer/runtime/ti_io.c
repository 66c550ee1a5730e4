/* Function I/O through Teaclave's file API: task arguments, weights, .npy inputs and outputs.
 * Every host call's status is checked; a host error becomes a ti_status, never a trap. */
#include <string.h>

#include "teaclave.h"
#include "ti.h"

#define TI_NPY_MAGIC "\x93NUMPY"
#define TI_NPY_HEADER_MAX 1024

const char *ti_arg(int argc, char **argv, const char *key) {
  for (int i = 0; i + 1 < argc; i += 2)
    if (strcmp(argv[i], key) == 0) return argv[i + 1];
  return NULL;
}

/* Reads exactly n bytes unless the file ends first; returns the count, or -1 on a host error. */
static int64_t ti_read_full(int fd, uint8_t *dst, uint32_t n) {
  uint32_t done = 0;
  while (done < n) {
    uint32_t chunk = n - done > 0x40000000u ? 0x40000000u : n - done;
    int got = teaclave_read_file(fd, dst + done, (int)chunk);
    if (got < 0) return -1;
    if (got == 0) break;
    done += (uint32_t)got;
  }
  return done;
}

static ti_status ti_expect_eof(int fd) {
  uint8_t extra;
  int got = teaclave_read_file(fd, &extra, 1);
  return got < 0 ? TI_ERR_READ_INPUT_FAILED : got == 0 ? TI_OK : TI_ERR_BAD_INPUT_FORMAT;
}

/* On success *blob and *size hold the whole weights file; on failure they are NULL and 0 (the
 * header may not have been read at all, so its size is never passed on). */
ti_status ti_read_weights(const char *fid, const uint8_t **blob, uint32_t *size) {
  *blob = NULL;
  *size = 0;
  int fd = teaclave_open_input(fid);
  if (fd < 0) return TI_ERR_BAD_WEIGHTS;
  ti_header h;
  ti_status st = TI_ERR_BAD_WEIGHTS;
  uint8_t *buf = NULL;
  if (ti_read_full(fd, (uint8_t *)&h, sizeof h) == sizeof h && h.blob_bytes >= sizeof h) {
    buf = ti_alloc(h.blob_bytes);
    if (buf == NULL) {
      st = TI_ERR_OUT_OF_MEMORY;
    } else {
      memcpy(buf, &h, sizeof h);
      uint32_t rest = h.blob_bytes - sizeof h;
      if (ti_read_full(fd, buf + sizeof h, rest) == rest && ti_expect_eof(fd) == TI_OK) st = TI_OK;
    }
  }
  if (teaclave_close_file(fd) != 0 && st == TI_OK) st = TI_ERR_BAD_WEIGHTS;
  if (st == TI_OK) {
    *blob = buf;
    *size = h.blob_bytes;
  }
  return st;
}

/* The .npy "descr" of a tensor's dtype as numpy writes it, e.g. "<f4" or "|u1" (DLPack codes
 * int, uint, float, bool: the builder admits no other). */
static void ti_npy_descr(const ti_tensor *t, char out[4]) {
  int bytes = t->dtype_bits / 8;
  int code = t->dtype_code;
  out[0] = bytes == 1 ? '|' : '<';
  out[1] = code == kDLInt ? 'i' : code == kDLUInt ? 'u' : code == kDLFloat ? 'f' : 'b';
  out[2] = (char)('0' + bytes);
  out[3] = '\0';
}

/* Appends a shape as numpy writes it: "()", "(5,)", "(1, 10)". */
static char *ti_put_shape(char *p, const ti_tensor *t) {
  *p++ = '(';
  for (uint32_t d = 0; d < t->ndim; d++) {
    char digits[24];
    int n = 0;
    int64_t v = t->shape[d];
    do digits[n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
    while (n) *p++ = digits[--n];
    if (t->ndim == 1 || d + 1 < t->ndim) *p++ = ',';
    if (d + 1 < t->ndim) *p++ = ' ';
  }
  *p++ = ')';
  return p;
}

/* Finds `key:` in a header dict and returns what follows, past spaces. */
static const char *ti_npy_field(const char *hdr, const char *key) {
  const char *p = strstr(hdr, key);
  if (p == NULL) return NULL;
  p += strlen(key);
  p += strspn(p, " ");
  return *p == ':' ? p + 1 + strspn(p + 1, " ") : NULL;
}

/* Parses a shape tuple, spaces anywhere, and compares it with the tensor's. */
static int ti_shape_matches(const char *v, const ti_tensor *t) {
  uint32_t d = 0;
  if (*v++ != '(') return 0;
  for (;;) {
    v += strspn(v, " ");
    if (*v == ')') return d == t->ndim;
    if (*v < '0' || *v > '9' || d == t->ndim) return 0;
    int64_t n = 0;
    while (*v >= '0' && *v <= '9' && n <= t->shape[d]) n = n * 10 + (*v++ - '0');
    if (n != t->shape[d++]) return 0;
    v += strspn(v, " ");
    if (*v == ',') v++;
    else if (*v != ')') return 0;
  }
}

/* Accepts exactly the dtype, C order and shape of the tensor. */
static ti_status ti_npy_check(const char *hdr, const ti_tensor *t) {
  char descr[4];
  const char *v;
  ti_npy_descr(t, descr);
  if ((v = ti_npy_field(hdr, "'descr'")) == NULL || v[0] != '\'') return TI_ERR_BAD_INPUT_FORMAT;
  int order_ok = v[1] == descr[0] || (descr[0] == '|' && (v[1] == '<' || v[1] == '='));
  if (!order_ok || strncmp(v + 2, descr + 1, 2) != 0 || v[4] != '\'')
    return TI_ERR_BAD_INPUT_FORMAT;
  if ((v = ti_npy_field(hdr, "'fortran_order'")) == NULL || strncmp(v, "False", 5) != 0)
    return TI_ERR_BAD_INPUT_FORMAT;
  if ((v = ti_npy_field(hdr, "'shape'")) == NULL || !ti_shape_matches(v, t))
    return TI_ERR_BAD_INPUT_FORMAT;
  return TI_OK;
}

/* Scratch memory for whole small files, taken once per call and reused by every input and
 * output (the bump allocator never frees): NULL when memory is out. */
static uint8_t *ti_stage(void) {
  static uint8_t *stage;
  if (stage == NULL) stage = ti_alloc(TI_STAGE_BYTES);
  return stage;
}

/* The .npy preamble at the start of buf (got bytes): its length (magic, version, header length,
 * header) once the header is checked against the tensor, 0 for raw bytes (no magic), or -1. */
static int64_t ti_npy_prefix(const uint8_t *buf, uint32_t got, const ti_tensor *t) {
  if (got < 10 || memcmp(buf, TI_NPY_MAGIC, 6) != 0) return 0;
  uint32_t len = buf[8] | (uint32_t)buf[9] << 8, at = 10;
  if (buf[6] == 2 || buf[6] == 3) { /* versions 2 and 3: a 4-byte header length */
    if (got < 12) return -1;
    len |= (uint32_t)buf[10] << 16 | (uint32_t)buf[11] << 24;
    at = 12;
  } else if (buf[6] != 1) {
    return -1;
  }
  if (len > TI_NPY_HEADER_MAX || got < at + len) return -1;
  char hdr[TI_NPY_HEADER_MAX + 1];
  memcpy(hdr, buf + at, len);
  hdr[len] = '\0';
  if (ti_npy_check(hdr, t) != TI_OK) return -1;
  return (int64_t)at + len;
}

/* Reads a .npy file, or a file of exactly the tensor's raw bytes, into dst. The first read asks
 * for all a valid file can hold and one byte more (at most TI_STAGE_BYTES) into scratch memory:
 * a small input then takes one read and one that finds its end, not one per part; a bigger one
 * is read on in place. A .npy of a tensor under 10 bytes is still longer than 10; a raw file
 * under 10 bytes is taken whole, and must be exactly the tensor's bytes. */
static ti_status ti_read_tensor(int fd, const ti_tensor *t, uint8_t *dst) {
  uint64_t most = 12 + TI_NPY_HEADER_MAX + (uint64_t)t->nbytes + 1;
  uint32_t first = most < TI_STAGE_BYTES ? (uint32_t)most : TI_STAGE_BYTES;
  uint8_t *buf = ti_stage();
  if (buf == NULL) return TI_ERR_OUT_OF_MEMORY;
  int64_t got = ti_read_full(fd, buf, first);
  if (got < 0) return TI_ERR_READ_INPUT_FAILED;
  int64_t prefix = ti_npy_prefix(buf, (uint32_t)got, t);
  if (prefix < 0 || prefix > got || got - prefix > t->nbytes) return TI_ERR_BAD_INPUT_FORMAT;
  uint32_t have = (uint32_t)(got - prefix), rest = t->nbytes - have;
  memcpy(dst, buf + prefix, have);
  if (got < first) return rest == 0 ? TI_OK : TI_ERR_BAD_INPUT_FORMAT; /* the file ended */
  int64_t n = ti_read_full(fd, dst + have, rest);
  if (n < 0) return TI_ERR_READ_INPUT_FAILED;
  return n == rest ? ti_expect_eof(fd) : TI_ERR_BAD_INPUT_FORMAT;
}

ti_status ti_read_input(const char *fid, const ti_tensor *t, uint8_t *dst) {
  int fd = teaclave_open_input(fid);
  if (fd < 0) return TI_ERR_OPEN_INPUT_FAILED;
  ti_status st = ti_read_tensor(fd, t, dst);
  if (teaclave_close_file(fd) != 0 && st == TI_OK) st = TI_ERR_READ_INPUT_FAILED;
  return st;
}

static int ti_write_full(int fd, const uint8_t *src, uint32_t n) {
  while (n > 0) {
    uint32_t chunk = n > 0x40000000u ? 0x40000000u : n;
    int put = teaclave_write_file(fd, src, (int)chunk);
    if (put <= 0) return -1;
    src += put;
    n -= (uint32_t)put;
  }
  return 0;
}

/* Writes a version 1.0 .npy file: header padded with spaces to a multiple of 64 bytes. */
ti_status ti_write_output(const char *fid, const ti_tensor *t, const uint8_t *src) {
  char hdr[TI_NPY_HEADER_MAX];
  char *p = hdr + 10;
  static const char fmt1[] = "{'descr': '", fmt2[] = "', 'fortran_order': False, 'shape': ";
  memcpy(hdr, TI_NPY_MAGIC "\x01\x00", 8);
  memcpy(p, fmt1, sizeof fmt1 - 1), p += sizeof fmt1 - 1;
  ti_npy_descr(t, p);
  p += 3;
  memcpy(p, fmt2, sizeof fmt2 - 1), p += sizeof fmt2 - 1;
  p = ti_put_shape(p, t);
  memcpy(p, ", }", 3), p += 3;
  uint32_t total = ((uint32_t)(p - hdr) + 1 + 63) / 64 * 64;
  while ((uint32_t)(p - hdr) < total - 1) *p++ = ' ';
  *p++ = '\n';
  hdr[8] = (char)((total - 10) & 0xff);
  hdr[9] = (char)((total - 10) >> 8);

  int fd = teaclave_create_output(fid);
  if (fd < 0) return TI_ERR_WRITE_OUTPUT_FAILED;
  uint64_t size = (uint64_t)total + t->nbytes;
  uint8_t *whole = size <= TI_STAGE_BYTES ? ti_stage() : NULL;
  int bad;
  if (whole != NULL) { /* a small output: one write, not two */
    memcpy(whole, hdr, total);
    memcpy(whole + total, src, t->nbytes);
    bad = ti_write_full(fd, whole, (uint32_t)size) != 0;
  } else {
    bad = ti_write_full(fd, (const uint8_t *)hdr, total) != 0 ||
          ti_write_full(fd, src, t->nbytes) != 0;
  }
  bad |= teaclave_close_file(fd) != 0;
  return bad ? TI_ERR_WRITE_OUTPUT_FAILED : TI_OK;
}
