/* A Teaclave function written by hand: counts the lines of the input named by the task argument
 * `text`, writes the count as decimal text to the output named by `report` (if the task gives
 * one), and returns the count. Build (the compiler comes from PyPI's ziglang):
 *
 *   python -m ziglang cc --target=wasm32-freestanding -O2 -nostdlib \
 *       -Wl,--no-entry -Wl,--export=entrypoint -o line_count.wasm line_count.c
 */

#define TEACLAVE(name) __attribute__((import_module("env"), import_name(#name)))
TEACLAVE(teaclave_open_input) int teaclave_open_input(const char *fid);
TEACLAVE(teaclave_create_output) int teaclave_create_output(const char *fid);
TEACLAVE(teaclave_read_file) int teaclave_read_file(int fd, void *buf, int size);
TEACLAVE(teaclave_write_file) int teaclave_write_file(int fd, const void *buf, int size);
TEACLAVE(teaclave_close_file) int teaclave_close_file(int fd);

enum { LC_NO_INPUT = -2, LC_OPEN_FAILED = -3, LC_READ_FAILED = -4, LC_WRITE_FAILED = -9 };

static int lc_equal(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* argv holds key, value, key, value, ... sorted by key. */
static const char *lc_argument(int argc, char **argv, const char *key) {
  for (int i = 0; i + 1 < argc; i += 2)
    if (lc_equal(argv[i], key)) return argv[i + 1];
  return 0;
}

static int lc_report(const char *fid, int count) {
  char digits[12];
  int n = sizeof digits;
  do digits[--n] = (char)('0' + count % 10); while ((count /= 10) > 0);
  int fd = teaclave_create_output(fid);
  if (fd < 0) return LC_WRITE_FAILED;
  int written = teaclave_write_file(fd, digits + n, (int)sizeof digits - n);
  int closed = teaclave_close_file(fd);
  return written == (int)sizeof digits - n && closed == 0 ? 0 : LC_WRITE_FAILED;
}

int entrypoint(int argc, char **argv) {
  static char buf[4096];
  const char *text = lc_argument(argc, argv, "text");
  if (!text) return LC_NO_INPUT;
  int fd = teaclave_open_input(text);
  if (fd < 0) return LC_OPEN_FAILED;
  int lines = 0, got;
  while ((got = teaclave_read_file(fd, buf, sizeof buf)) > 0)
    for (int i = 0; i < got; i++) lines += buf[i] == '\n';
  if (teaclave_close_file(fd) != 0 || got < 0) return LC_READ_FAILED;
  const char *report = lc_argument(argc, argv, "report");
  if (report) {
    int status = lc_report(report, lines);
    if (status != 0) return status;
  }
  return lines;
}
