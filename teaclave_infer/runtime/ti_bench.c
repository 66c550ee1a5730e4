/* Kernel timing harness: one TVM kernel, its arguments as DLTensors, and a loop that calls it.
 * Linked by the builder's tuner (builder/kernel_bench.py) with ti_mem.c and a kernel compiled as
 * `ti_bench_kernel`, never into a function. The host describes each argument, fills its data
 * through the returned address, then times ti_bench_run; nothing is allocated while it runs. */
#include "ti.h"

int __tvm_ffi_ti_bench_kernel(void *self, const TVMFFIAny *args, int32_t n, TVMFFIAny *ret);

/* No plan to size a heap by: the harness's few allocations grow memory (once, before timing). */
_Alignas(64) uint8_t ti_heap[TI_ALIGN];
const uint32_t ti_heap_bytes = 0;

static DLTensor *ti_bench_dl;
static TVMFFIAny *ti_bench_args;
static int64_t *ti_bench_shapes; /* TI_MAX_NDIM per argument, written by the host */
static uint32_t ti_bench_count;

/* Room for n arguments; call once, before anything else. */
__attribute__((export_name("ti_bench_init"))) int ti_bench_init(uint32_t n) {
  ti_bench_dl = ti_alloc((size_t)n * sizeof(DLTensor));
  ti_bench_args = ti_alloc((size_t)n * sizeof(TVMFFIAny));
  ti_bench_shapes = ti_alloc((size_t)n * TI_MAX_NDIM * sizeof(int64_t));
  if (ti_bench_dl == NULL || ti_bench_args == NULL || ti_bench_shapes == NULL) return TI_ERR_OUT_OF_MEMORY;
  ti_bench_count = n;
  return TI_OK;
}

/* Where the host writes argument i's shape (TI_MAX_NDIM int64 slots). */
__attribute__((export_name("ti_bench_shape"))) int64_t *ti_bench_shape(uint32_t i) {
  return i < ti_bench_count ? &ti_bench_shapes[(size_t)i * TI_MAX_NDIM] : NULL;
}

/* Allocates argument i's data and describes it; returns the data's address, NULL on failure. */
__attribute__((export_name("ti_bench_tensor"))) uint8_t *ti_bench_tensor(uint32_t i, uint32_t code,
                                                                         uint32_t bits,
                                                                         uint32_t ndim,
                                                                         uint32_t nbytes) {
  if (i >= ti_bench_count || ndim > TI_MAX_NDIM || bits == 0 || bits > 255) return NULL;
  uint8_t *data = ti_alloc(nbytes);
  if (data == NULL) return NULL;
  DLTensor *dl = &ti_bench_dl[i];
  *dl = (DLTensor){0};
  dl->data = data;
  dl->device.device_type = kDLCPU;
  dl->ndim = (int32_t)ndim;
  dl->dtype.code = (uint8_t)code;
  dl->dtype.bits = (uint8_t)bits;
  dl->dtype.lanes = 1;
  dl->shape = ti_bench_shape(i);
  ti_bench_args[i] = (TVMFFIAny){0};
  ti_bench_args[i].type_index = kTVMFFIDLTensorPtr;
  ti_bench_args[i].v_ptr = dl;
  return data;
}

/* Calls the kernel `iters` times; TI_ERR_KERNEL_FAILED as soon as one call reports an error. */
__attribute__((export_name("ti_bench_run"))) int ti_bench_run(uint32_t iters) {
  for (uint32_t k = 0; k < iters; k++) {
    TVMFFIAny ret = {0};
    if (__tvm_ffi_ti_bench_kernel(NULL, ti_bench_args, (int32_t)ti_bench_count, &ret) != 0)
      return TI_ERR_KERNEL_FAILED;
  }
  return TI_OK;
}
