/* Memory for the runtime, never a libc malloc: first the model's heap (ti_heap, in the initial
 * memory), then fresh pages from memory.grow. The host may grow memory between our calls (it
 * places argv there), so a region is only extended when the new pages are adjacent to it. TVM
 * kernels allocate their scratch space through the workspace hooks below, strictly last-in
 * first-out. */
#include "ti.h"

#define TI_PAGE 65536u
#define TI_MAX_WORKSPACES 64

static uintptr_t ti_start, ti_top, ti_end; /* the current region */
static int ti_started;

static size_t ti_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

void *ti_alloc(size_t nbytes) {
  if (nbytes > (size_t)-1 - TI_PAGE) return NULL; /* would wrap when rounded up to pages */
  nbytes = ti_align_up(nbytes ? nbytes : 1, TI_ALIGN);
  if (!ti_started) {
    ti_started = 1;
    ti_start = ti_top = (uintptr_t)ti_heap;
    ti_end = ti_start + ti_heap_bytes;
  }
  if (ti_end - ti_top < nbytes) {
    size_t pages = ti_align_up(nbytes, TI_PAGE) / TI_PAGE;
    size_t old = __builtin_wasm_memory_grow(0, pages);
    if (old == (size_t)-1) return NULL;
    uintptr_t start = (uintptr_t)old * TI_PAGE;
    if (start != ti_end) ti_start = ti_top = start; /* not adjacent: abandon the old tail */
    ti_end = start + pages * TI_PAGE;
  }
  void *p = (void *)ti_top;
  ti_top += nbytes;
  return p;
}

/* Workspaces are freed in reverse order, so freeing one releases everything above it. */
static void *ti_ws[TI_MAX_WORKSPACES];
static int ti_ws_depth;

static void *ti_workspace_alloc(int device_type, int device_id, uint64_t nbytes, int code_hint,
                                int bits_hint) {
  (void)device_type, (void)device_id, (void)code_hint, (void)bits_hint;
  if (ti_ws_depth == TI_MAX_WORKSPACES || nbytes > UINT32_MAX) return NULL;
  void *p = ti_alloc((size_t)nbytes);
  if (p != NULL) ti_ws[ti_ws_depth++] = p;
  return p;
}

static int ti_workspace_free(int device_type, int device_id, void *ptr) {
  (void)device_type, (void)device_id;
  if (ti_ws_depth == 0 || ti_ws[ti_ws_depth - 1] != ptr) return -1;
  ti_ws_depth--;
  uintptr_t p = (uintptr_t)ptr;
  if (p >= ti_start && p < ti_end) ti_top = p; /* else it lies in an abandoned region */
  return 0;
}

/* TVM's objects call these through data symbols (function pointers), not directly. */
void *(*__TVMBackendAllocWorkspace)(int, int, uint64_t, int, int) = ti_workspace_alloc;
int (*__TVMBackendFreeWorkspace)(int, int, void *) = ti_workspace_free;

/* A kernel that fails (a shape check, a failed workspace) reports here, then returns non-zero.
 * There is nowhere to print in the sandbox: the run ends with TI_ERR_KERNEL_FAILED. */
void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **parts, int32_t n) {
  (void)kind, (void)parts, (void)n;
}
