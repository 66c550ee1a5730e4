/* Teaclave's "simple add" example function, in our own words: returns the sum of the task
 * arguments `adder1` and `adder2` (decimal integers), or -1 when either is missing or is not
 * one. It uses no file and needs no builder's manifest: register it with its arguments, e.g.
 *
 *   teaclave-client function register simple_add.wasm --name simple_add \
 *       --argument adder1=3 --argument adder2=4
 *
 * Build (the compiler comes from PyPI's ziglang; the CPU is Teaclave's WAMR's: the wasm MVP with
 * sign extension and non-trapping float-to-int, the `teaclave` profile):
 *
 *   python -m ziglang cc --target=wasm32-freestanding -mcpu=mvp+sign_ext+nontrapping_fptoint \
 *       -O2 -nostdlib -s -Wl,--no-entry -Wl,--export=entrypoint -o simple_add.wasm simple_add.c
 *
 * (`-s` leaves out the debug sections, which name the build's folder: the build is the same
 * bytes anywhere, and simple_add.wasm beside this file is one, for those who do not build.)
 */

enum { SA_BAD_ARGUMENT = -1 };

static int sa_equal(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* argv holds key, value, key, value, ...: the value of `key`, or 0. */
static const char *sa_argument(int argc, char **argv, const char *key) {
  for (int i = 0; i + 1 < argc; i += 2)
    if (sa_equal(argv[i], key)) return argv[i + 1];
  return 0;
}

/* A decimal integer with an optional sign into *out; 0 unless the whole text is one, of
 * magnitude below 2^30 (so that the sum of two always fits in an int). */
static int sa_integer(const char *text, int *out) {
  int sign = 1, value = 0;
  if (!text) return 0;
  if (*text == '-' || *text == '+') sign = *text++ == '-' ? -1 : 1;
  if (!*text) return 0;
  for (; *text; text++) {
    if (*text < '0' || *text > '9' || value > (0x3fffffff - (*text - '0')) / 10) return 0;
    value = value * 10 + (*text - '0');
  }
  *out = sign * value;
  return 1;
}

int entrypoint(int argc, char **argv) {
  int a, b;
  if (!sa_integer(sa_argument(argc, argv, "adder1"), &a) ||
      !sa_integer(sa_argument(argc, argv, "adder2"), &b))
    return SA_BAD_ARGUMENT;
  return a + b;
}
