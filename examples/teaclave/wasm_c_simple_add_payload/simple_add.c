/* Teaclave's "simple add" example as a function of ours: returns adder1 + adder2.
 *
 * The executor passes the task's arguments as key, value, key, value, ... sorted by key, so
 * argv is {"adder1", A, "adder2", B}. A missing argument or one that is not a decimal integer
 * returns -1. Built by utils.build_payload with `python -m ziglang cc`. */

static int parse_int(const char *text, int *out) {
  int sign = 1, value = 0, digits = 0;
  while (*text == ' ' || *text == '\t' || *text == '\n') text++;
  if (*text == '-' || *text == '+') sign = *text++ == '-' ? -1 : 1;
  for (; *text >= '0' && *text <= '9'; text++, digits++) value = value * 10 + (*text - '0');
  *out = sign * value;
  return digits > 0 && *text == '\0';
}

int entrypoint(int argc, char **argv) {
  int a, b;
  if (argc != 4 || !parse_int(argv[1], &a) || !parse_int(argv[3], &b)) return -1;
  return a + b;
}
