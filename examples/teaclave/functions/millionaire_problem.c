/* Yao's millionaire problem, as Teaclave's WebAssembly example poses it: two inputs each hold
 * one person's wealth as decimal text; the output gets the file id of the richer one (the
 * second if they are equal), and the function returns the number of bytes it wrote.
 *
 * Arguments (sorted by key, as the executor passes them): input_file_id1, input_file_id2,
 * output_file_id, each naming a file of the task. -1 on a missing argument or any file error.
 *
 * Build (the compiler comes from PyPI's ziglang; the CPU is Teaclave's WAMR's, the `teaclave`
 * profile; `-s` leaves out the debug sections, which name the build's folder, so the committed
 * millionaire_problem.wasm beside this file is the same bytes as any build):
 *
 *   python -m ziglang cc --target=wasm32-freestanding -mcpu=mvp+sign_ext+nontrapping_fptoint \
 *       -O2 -nostdlib -s -Wl,--no-entry -Wl,--export=entrypoint \
 *       -o millionaire_problem.wasm millionaire_problem.c
 */

#include "teaclave_context.h"

#define WEALTH_DIGITS 10 /* as Teaclave's: at most ten characters of each input are read */

static int text_length(const char *text) {
  int n = 0;
  while (text[n]) n++;
  return n;
}

/* The wealth in the input `fid`; -1 if it cannot be read. */
static long long read_wealth(const char *fid) {
  char text[WEALTH_DIGITS + 1];
  int fd = teaclave_open_input(fid);
  if (fd < 0) return -1;
  int got = teaclave_read_file(fd, text, WEALTH_DIGITS);
  teaclave_close_file(fd);
  if (got < 0) return -1;
  long long wealth = 0;
  for (int i = 0; i < got && text[i] >= '0' && text[i] <= '9'; i++)
    wealth = wealth * 10 + (text[i] - '0');
  return wealth;
}

int entrypoint(int argc, char **argv) {
  if (argc != 6) return -1;
  const char *a = argv[1], *b = argv[3], *out = argv[5];
  long long wealth_a = read_wealth(a), wealth_b = read_wealth(b);
  if (wealth_a < 0 || wealth_b < 0) return -1;
  const char *richer = wealth_a > wealth_b ? a : b;
  int fd = teaclave_create_output(out);
  if (fd < 0) return -1;
  int written = teaclave_write_file(fd, richer, text_length(richer));
  return teaclave_close_file(fd) == 0 ? written : -1;
}
