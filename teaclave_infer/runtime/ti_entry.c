/* int entrypoint(int argc, char **argv): Teaclave's function ABI.
 * argv holds key/value pairs. Each model input's id names (as key) the file id (as value) to read;
 * each output whose id is given is written; "weights" names the weights file when the weights are
 * separate (default file id: "weights"). Returns the argmax of the first output when it is a float
 * vector [1, N] with N > 1, else 0; a negative ti_status on failure. Never traps on bad input. */
#include "ti.h"

/* Where a host may place argv instead of growing memory for it: exported by the link (its
 * address, as an i32 global); zeroed, and nothing here writes it. */
_Alignas(16) uint8_t TI_ARGV_AREA[TI_ARGV_AREA_BYTES];

static int ti_argmax(const ti_tensor *t, const uint8_t *data) {
  uint32_t n = (uint32_t)t->shape[1], best = 0;
  for (uint32_t i = 1; i < n; i++) {
    if (t->dtype_bits == 32 ? ((const float *)data)[i] > ((const float *)data)[best]
                            : ((const double *)data)[i] > ((const double *)data)[best])
      best = i;
  }
  return (int)best;
}

static int ti_returns_argmax(const ti_tensor *t) {
  return t->ndim == 2 && t->shape[0] == 1 && t->shape[1] > 1 && t->dtype_code == kDLFloat &&
         (t->dtype_bits == 32 || t->dtype_bits == 64);
}

static ti_status ti_load(int argc, char **argv, ti_model *m) {
  const uint8_t *blob = ti_embedded_blob;
  uint32_t size = ti_embedded_blob_size;
  if (blob == NULL) {
    const char *fid = ti_arg(argc, argv, TI_WEIGHTS_ID);
    ti_status st = ti_read_weights(fid ? fid : TI_WEIGHTS_ID, &blob, &size);
    if (st != TI_OK) return st;
  }
  return ti_model_load(m, blob, size);
}

static ti_status ti_read_inputs(int argc, char **argv, const ti_model *m) {
  for (uint32_t i = 0; i < ti_input_count; i++) {
    const char *fid = ti_arg(argc, argv, ti_inputs[i].id);
    if (fid == NULL) return TI_ERR_MISSING_ARGUMENT;
    uint32_t t = ti_inputs[i].tensor;
    ti_status st = ti_read_input(fid, &m->tensors[t], ti_tensor_data(m, t));
    if (st != TI_OK) return st;
  }
  return TI_OK;
}

static ti_status ti_write_outputs(int argc, char **argv, const ti_model *m) {
  for (uint32_t i = 0; i < ti_output_count; i++) {
    const char *fid = ti_arg(argc, argv, ti_outputs[i].id);
    if (fid == NULL) continue;
    uint32_t t = ti_outputs[i].tensor;
    ti_status st = ti_write_output(fid, &m->tensors[t], ti_tensor_data(m, t));
    if (st != TI_OK) return st;
  }
  return TI_OK;
}

__attribute__((export_name("entrypoint"))) int entrypoint(int argc, char **argv) {
  ti_model m;
  ti_status st;
  if ((st = ti_load(argc, argv, &m)) != TI_OK) return st;
  if ((st = ti_read_inputs(argc, argv, &m)) != TI_OK) return st;
  if ((st = ti_model_run(&m)) != TI_OK) return st;
  if ((st = ti_write_outputs(argc, argv, &m)) != TI_OK) return st;
  if (ti_output_count == 0) return 0;
  const ti_tensor *first = &m.tensors[ti_outputs[0].tensor];
  return ti_returns_argmax(first) ? ti_argmax(first, ti_tensor_data(&m, ti_outputs[0].tensor)) : 0;
}
