/* The header Teaclave's C functions include (`#include "teaclave_context.h"`), so that they
 * build here unchanged when placed beside it. The five host functions of the WebAssembly
 * executor are declared once, in the runtime's teaclave.h. */
#ifndef TEACLAVE_CONTEXT_H
#define TEACLAVE_CONTEXT_H
#include "../../../teaclave_infer/runtime/teaclave.h"
#endif
