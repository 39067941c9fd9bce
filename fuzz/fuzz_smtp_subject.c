/*
 * libFuzzer target for smtpd/smtp_subject: a Subject value's encoded
 * words decoded. The first byte chooses the output room (1..256), the
 * rest is the value.
 *
 * Invariants: the output is NUL-terminated within its room and its length
 * is what the call returned; a value without "=?" comes out as it went in
 * (cut to the room).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtp_subject.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap, n, want;
	const char *in;
	char *out;

	if (size == 0)
		return 0;
	cap = (size_t)data[0] + 1;
	in = (const char *)data + 1;
	out = malloc(cap);
	CHECK(out);
	n = smtp_subject_decode(in, size - 1, out, cap);
	CHECK(n < cap && out[n] == '\0');
	if (!memmem(in, size - 1, "=?", 2) && !memchr(in, '\0', size - 1)) {
		want = size - 1 < cap - 1 ? size - 1 : cap - 1;
		CHECK(n == want && memcmp(out, in, n) == 0);
	}
	free(out);
	return 0;
}
