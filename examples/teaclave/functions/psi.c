/* Private set intersection, as Teaclave's Rust example (wasm_rust_psi) computes it, in C with
 * the same ABI, arguments and file format: each input holds one entry per line; both outputs
 * get the entries found in both inputs, one per line ("\n"), then the line "done"; the return
 * value is how many there are. Lines end with "\n" or "\r\n"; an empty line is no entry; an
 * entry repeated is counted once. Entries come out in the order of the second input (the Rust
 * one wrote them in its hash set's order).
 *
 * Arguments (sorted by key): input1_fid, input2_fid, output1_fid, output2_fid. Returns -1 on a
 * missing argument, -2 if a file cannot be opened, read or written, -3 if an input is
 * PSI_MAX_BYTES long or more, or holds more than PSI_MAX_ENTRIES entries.
 *
 * Build (the compiler comes from PyPI's ziglang; the CPU is Teaclave's WAMR's, the `teaclave`
 * profile; `-s` leaves out the debug sections, which name the build's folder, so the committed
 * psi.wasm beside this file is the same bytes as any build):
 *
 *   python -m ziglang cc --target=wasm32-freestanding -mcpu=mvp+sign_ext+nontrapping_fptoint \
 *       -O2 -nostdlib -s -Wl,--no-entry -Wl,--export=entrypoint -o psi.wasm psi.c
 */

#include "teaclave_context.h"

#define PSI_MAX_BYTES (1 << 20)
#define PSI_MAX_ENTRIES (1 << 15)
#define PSI_SLOTS (2 * PSI_MAX_ENTRIES) /* open addressing: at most half full */

enum { PSI_ARGUMENTS = -1, PSI_IO = -2, PSI_TOO_LARGE = -3 };

static char psi_first[PSI_MAX_BYTES], psi_second[PSI_MAX_BYTES];
/* A slot holds 1 + the offset of an entry's first byte in its buffer; 0 is empty. */
static int psi_seen[PSI_SLOTS], psi_found[PSI_SLOTS];

/* Reads the whole input `fid` into buf, keeping a byte for the '\0' after its last entry;
 * its length, or a negative status. */
static int psi_read(const char *fid, char *buf) {
  int fd = teaclave_open_input(fid), length = 0, got = 0;
  if (fd < 0) return PSI_IO;
  while (length < PSI_MAX_BYTES &&
         (got = teaclave_read_file(fd, buf + length, PSI_MAX_BYTES - length)) > 0)
    length += got;
  teaclave_close_file(fd);
  if (got < 0) return PSI_IO;
  return length == PSI_MAX_BYTES ? PSI_TOO_LARGE : length;
}

/* Ends every entry with '\0' in place of its "\n" (and a "\r" before it). */
static void psi_split(char *buf, int length) {
  for (int i = 0; i < length; i++)
    if (buf[i] == '\n') {
      buf[i] = '\0';
      if (i > 0 && buf[i - 1] == '\r') buf[i - 1] = '\0';
    }
}

static unsigned psi_hash(const char *entry) {
  unsigned h = 2166136261u; /* FNV-1a */
  for (; *entry; entry++) h = (h ^ (unsigned char)*entry) * 16777619u;
  return h;
}

static int psi_equal(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* Adds the entry at buf + at to table; 1 if added, 0 if there, PSI_TOO_LARGE if full. */
static int psi_add(int *table, const char *buf, int at, int *count) {
  unsigned slot = psi_hash(buf + at) % PSI_SLOTS;
  for (; table[slot]; slot = (slot + 1) % PSI_SLOTS)
    if (psi_equal(buf + table[slot] - 1, buf + at)) return 0;
  if (++*count > PSI_MAX_ENTRIES) return PSI_TOO_LARGE;
  table[slot] = at + 1;
  return 1;
}

static int psi_contains(const int *table, const char *buf, const char *entry) {
  for (unsigned slot = psi_hash(entry) % PSI_SLOTS; table[slot]; slot = (slot + 1) % PSI_SLOTS)
    if (psi_equal(buf + table[slot] - 1, entry)) return 1;
  return 0;
}

static int psi_write(int fd, const char *text, int length) {
  return teaclave_write_file(fd, text, length) == length ? 0 : PSI_IO;
}

static int psi_text_length(const char *text) {
  int n = 0;
  while (text[n]) n++;
  return n;
}

/* Writes each entry of the second input that is in the first (once) to both outputs. */
static int psi_intersect(int first_length, int second_length, int out1, int out2) {
  int entries = 0, found = 0, status;
  for (int at = 0; at < first_length; at += psi_text_length(psi_first + at) + 1)
    if (psi_first[at] && (status = psi_add(psi_seen, psi_first, at, &entries)) < 0) return status;
  entries = 0;
  for (int at = 0; at < second_length; at += psi_text_length(psi_second + at) + 1) {
    const char *entry = psi_second + at;
    if (!*entry || !psi_contains(psi_seen, psi_first, entry)) continue;
    if ((status = psi_add(psi_found, psi_second, at, &entries)) <= 0) {
      if (status < 0) return status;
      continue;
    }
    int length = psi_text_length(entry);
    if (psi_write(out1, entry, length) || psi_write(out1, "\n", 1) ||
        psi_write(out2, entry, length) || psi_write(out2, "\n", 1))
      return PSI_IO;
    found++;
  }
  if (psi_write(out1, "done\n", 5) || psi_write(out2, "done\n", 5)) return PSI_IO;
  return found;
}

int entrypoint(int argc, char **argv) {
  if (argc != 8) return PSI_ARGUMENTS;
  int first_length = psi_read(argv[1], psi_first);
  int second_length = psi_read(argv[3], psi_second);
  if (first_length < 0) return first_length;
  if (second_length < 0) return second_length;
  /* A last entry without "\n" ends too: the byte after it becomes '\0'. */
  psi_first[first_length] = psi_second[second_length] = '\0';
  psi_split(psi_first, first_length);
  psi_split(psi_second, second_length);
  int out1 = teaclave_create_output(argv[5]), out2 = teaclave_create_output(argv[7]);
  if (out1 < 0 || out2 < 0) return PSI_IO;
  int result = psi_intersect(first_length, second_length, out1, out2);
  int closed = teaclave_close_file(out1) | teaclave_close_file(out2);
  return result >= 0 && closed != 0 ? PSI_IO : result;
}
