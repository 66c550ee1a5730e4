/* teaclave-infer runtime: the plan interpreter compiled into every function.
 * Every name here starts with ti_ / TI_. */
#ifndef TI_H
#define TI_H

#include <stddef.h>
#include <stdint.h>
#include <tvm/ffi/c_api.h>

#include "ti_constants.h" /* ti_status, TI_MAX_NDIM: generated from the Python vocabulary */

#define TI_MAGIC "TIWB"
#define TI_VERSION 1u
#define TI_ALIGN 64u

/* Blob layout (little-endian): header, tensors, calls, args, then constants at 64-byte offsets. */
typedef struct {
  char magic[4];
  uint32_t version;
  uint8_t model_id[32];
  uint32_t n_tensors, n_calls, n_args, arena_bytes, blob_bytes, reserved[3];
} ti_header; /* 72 bytes */

enum { TI_STORAGE_ARENA = 0, TI_STORAGE_CONST = 1 };

typedef struct {
  uint8_t storage, dtype_code, dtype_bits, ndim;
  uint32_t offset; /* into the arena or the blob */
  uint32_t nbytes, reserved;
  int64_t shape[TI_MAX_NDIM];
} ti_tensor; /* 80 bytes */

typedef struct {
  uint32_t kernel, first_arg, n_args;
} ti_call;

typedef int (*ti_kernel_fn)(void *self, const TVMFFIAny *args, int32_t n, TVMFFIAny *ret);

typedef struct {
  const char *id;
  uint32_t tensor;
} ti_io;

/* Generated per model (model.c). */
extern const ti_kernel_fn ti_kernels[];
extern const uint32_t ti_kernel_count;
extern const uint8_t ti_model_id[32];
extern const ti_io ti_inputs[], ti_outputs[];
extern const uint32_t ti_input_count, ti_output_count;
extern const uint8_t *const ti_embedded_blob; /* NULL when the weights are separate */
extern const uint32_t ti_embedded_blob_size;

/* ti_mem.c */
void *ti_alloc(size_t nbytes);

/* ti_alloc's first region, generated per model (model.c) in the initial memory: what a call
 * allocates, so that it never grows memory (a grown page costs the host two mprotect calls a
 * call, several times what a page of the initial memory costs to reset). TI_HEAP_BYTES adds up
 * the allocations in the order a call makes them, each rounded as ti_alloc rounds it: the
 * weights when read in (separate), the arena, the DLTensor and argument tables, the I/O stage,
 * then the kernels' workspaces (a bound the builder reads from the scheduled kernels). */
extern uint8_t ti_heap[];
extern const uint32_t ti_heap_bytes;
#define TI_STAGE_BYTES 65536u /* inputs and outputs up to this size move in one host call */
#define TI_ALLOC_SIZE(n) ((((n) ? (n) : 1) + TI_ALIGN - 1) / TI_ALIGN * TI_ALIGN)
#define TI_HEAP_BYTES(weights, arena, tensors, args, workspaces)                               \
  (((weights) ? TI_ALLOC_SIZE(weights) : 0) + TI_ALLOC_SIZE(arena) +                            \
   TI_ALLOC_SIZE((tensors) * sizeof(DLTensor)) + TI_ALLOC_SIZE((args) * sizeof(TVMFFIAny)) +   \
   TI_ALLOC_SIZE(TI_STAGE_BYTES) + (workspaces))

/* ti_plan.c: a loaded model, ready to run. */
typedef struct {
  const uint8_t *blob;
  const ti_header *header;
  const ti_tensor *tensors;
  const ti_call *calls;
  uint8_t *arena;
  DLTensor *dl;    /* one per tensor */
  TVMFFIAny *args; /* one per call argument */
} ti_model;

ti_status ti_model_load(ti_model *m, const uint8_t *blob, uint32_t size);
ti_status ti_model_run(const ti_model *m);
uint8_t *ti_tensor_data(const ti_model *m, uint32_t tensor);

/* ti_io.c */
const char *ti_arg(int argc, char **argv, const char *key);
ti_status ti_read_weights(const char *fid, const uint8_t **blob, uint32_t *size);
ti_status ti_read_input(const char *fid, const ti_tensor *t, uint8_t *dst);
ti_status ti_write_output(const char *fid, const ti_tensor *t, const uint8_t *src);

#endif
