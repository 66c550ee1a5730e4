/* The plan interpreter: validate a blob, lay its tensors out as DLTensors once, then run the
 * kernel calls in order. Nothing is allocated while the calls run. */
#include <string.h>

#include "ti.h"

static int ti_tensor_valid(const ti_tensor *t, const ti_header *h) {
  if (t->ndim > TI_MAX_NDIM || t->dtype_bits == 0 || t->dtype_bits % 8 != 0) return 0;
  uint64_t n = t->dtype_bits / 8;
  for (uint32_t d = 0; d < t->ndim; d++) {
    if (t->shape[d] < 0 || t->shape[d] > UINT32_MAX) return 0;
    n *= (uint64_t)t->shape[d];
    if (n > UINT32_MAX) return 0;
  }
  uint64_t end = (uint64_t)t->offset + t->nbytes;
  uint64_t limit = t->storage == TI_STORAGE_ARENA ? h->arena_bytes : h->blob_bytes;
  return n == t->nbytes && end <= limit && t->offset % TI_ALIGN == 0 &&
         t->storage <= TI_STORAGE_CONST;
}

/* Checks every count, offset and index, so that a malformed blob is an error, never a trap. */
static ti_status ti_blob_check(const uint8_t *blob, uint32_t size) {
  const ti_header *h = (const ti_header *)blob;
  if (size < sizeof *h || memcmp(h->magic, TI_MAGIC, 4) != 0 || h->version != TI_VERSION ||
      h->blob_bytes != size || memcmp(h->model_id, ti_model_id, 32) != 0)
    return TI_ERR_BAD_WEIGHTS;
  uint64_t tables = sizeof *h + (uint64_t)h->n_tensors * sizeof(ti_tensor) +
                    (uint64_t)h->n_calls * sizeof(ti_call) + (uint64_t)h->n_args * 4;
  if (tables > size) return TI_ERR_BAD_WEIGHTS;
  const ti_tensor *tensors = (const ti_tensor *)(blob + sizeof *h);
  for (uint32_t i = 0; i < h->n_tensors; i++)
    if (!ti_tensor_valid(&tensors[i], h)) return TI_ERR_BAD_WEIGHTS;
  const ti_call *calls = (const ti_call *)(tensors + h->n_tensors);
  const uint32_t *args = (const uint32_t *)(calls + h->n_calls);
  for (uint32_t c = 0; c < h->n_calls; c++) {
    const ti_call *call = &calls[c];
    if (call->kernel >= ti_kernel_count || call->first_arg > h->n_args ||
        call->n_args > h->n_args - call->first_arg)
      return TI_ERR_BAD_WEIGHTS;
  }
  for (uint32_t a = 0; a < h->n_args; a++)
    if (args[a] >= h->n_tensors) return TI_ERR_BAD_WEIGHTS;
  for (uint32_t i = 0; i < ti_input_count; i++)
    if (ti_inputs[i].tensor >= h->n_tensors) return TI_ERR_BAD_WEIGHTS;
  for (uint32_t i = 0; i < ti_output_count; i++)
    if (ti_outputs[i].tensor >= h->n_tensors) return TI_ERR_BAD_WEIGHTS;
  return TI_OK;
}

ti_status ti_model_load(ti_model *m, const uint8_t *blob, uint32_t size) {
  ti_status st = ti_blob_check(blob, size);
  if (st != TI_OK) return st;
  const ti_header *h = (const ti_header *)blob;
  m->blob = blob;
  m->header = h;
  m->tensors = (const ti_tensor *)(blob + sizeof *h);
  m->calls = (const ti_call *)(m->tensors + h->n_tensors);
  const uint32_t *args = (const uint32_t *)(m->calls + h->n_calls);
  m->arena = ti_alloc(h->arena_bytes);
  m->dl = ti_alloc((size_t)h->n_tensors * sizeof(DLTensor));
  m->args = ti_alloc((size_t)h->n_args * sizeof(TVMFFIAny));
  if (m->arena == NULL || m->dl == NULL || m->args == NULL) return TI_ERR_OUT_OF_MEMORY;
  for (uint32_t i = 0; i < h->n_tensors; i++) {
    const ti_tensor *t = &m->tensors[i];
    DLTensor *dl = &m->dl[i];
    memset(dl, 0, sizeof *dl);
    dl->data = ti_tensor_data(m, i);
    dl->device.device_type = kDLCPU;
    dl->ndim = t->ndim;
    dl->dtype.code = t->dtype_code;
    dl->dtype.bits = t->dtype_bits;
    dl->dtype.lanes = 1;
    dl->shape = (int64_t *)t->shape; /* kernels only read it */
  }
  for (uint32_t a = 0; a < h->n_args; a++) {
    memset(&m->args[a], 0, sizeof m->args[a]);
    m->args[a].type_index = kTVMFFIDLTensorPtr;
    m->args[a].v_ptr = &m->dl[args[a]];
  }
  return TI_OK;
}

uint8_t *ti_tensor_data(const ti_model *m, uint32_t tensor) {
  const ti_tensor *t = &m->tensors[tensor];
  const uint8_t *base = t->storage == TI_STORAGE_ARENA ? m->arena : m->blob;
  return (uint8_t *)base + t->offset;
}

ti_status ti_model_run(const ti_model *m) {
  for (uint32_t c = 0; c < m->header->n_calls; c++) {
    const ti_call *call = &m->calls[c];
    TVMFFIAny ret;
    memset(&ret, 0, sizeof ret);
    if (ti_kernels[call->kernel](NULL, &m->args[call->first_arg], (int32_t)call->n_args, &ret) != 0)
      return TI_ERR_KERNEL_FAILED;
  }
  return TI_OK;
}
