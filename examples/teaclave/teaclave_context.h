/* The header Teaclave's C payloads include, so that they build here unchanged. The five host
 * functions of the WebAssembly executor are declared once, in the runtime's teaclave.h (the
 * build adds teaclave_infer/runtime to the include path: see utils.build_payload). */
#ifndef TEACLAVE_CONTEXT_H
#define TEACLAVE_CONTEXT_H
#include "teaclave.h"
#endif
