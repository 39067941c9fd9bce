/*
 * What every libFuzzer target in fuzz/ shares: CHECK (an invariant that
 * aborts, so the fuzzer reports the input), the entry point's prototype,
 * and the two ways a target takes its bytes:
 *   - fuzz_copy: an exact-size heap copy, so that AddressSanitizer catches
 *     a parser reading one byte past what it was given;
 *   - fuzz_cstr: the bytes made a C string (a NUL appended; a NUL inside
 *     cuts it short, as it would any caller's string).
 * Both abort when out of memory and return a buffer to free().
 */
#ifndef POSTHORN_FUZZ_UTIL_H
#define POSTHORN_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* n bytes at p in a heap buffer of exactly n bytes (1 when n is 0). */
static inline char *fuzz_copy(const void *p, size_t n)
{
	char *c = malloc(n ? n : 1);

	CHECK(c != NULL);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* n bytes at p and a NUL after them. */
static inline char *fuzz_cstr(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	CHECK(s != NULL);
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

#endif
