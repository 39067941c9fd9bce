/*
 * libFuzzer target for dsn/dsn_parse: header-like blocks and the body of
 * a message/delivery-status part, as a remote host sends it. The input is
 * the body, in an exact-size heap buffer so that a read past it is caught
 * by AddressSanitizer.
 *
 * Invariants: walking the fields makes progress and stays within the
 * bytes; a field's name and value lie inside them, the name has no ':'
 * and the unfolded value no control byte; the groups kept are at most the
 * groups seen; each has a recipient, NUL-terminated fields, and a status
 * that is empty or a whole RFC 3463 code; dsn_status_of_reply agrees.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsn/dsn_parse.h"
#include "fuzz_util.h"

static void walk_fields(const char *p, size_t n)
{
	struct dsn_field f;
	char v[64];
	size_t pos = 0, before;

	while (pos < n) {
		before = pos;
		if (dsn_field_next(p, n, &pos, &f)) {
			CHECK(f.name >= p && f.name + f.name_len <= p + n && f.name_len > 0);
			CHECK(!memchr(f.name, ':', f.name_len));
			CHECK(f.value >= p && f.value + f.value_len <= p + n);
			dsn_field_value(&f, v, sizeof(v));
			for (size_t i = 0; v[i]; i++)
				CHECK((unsigned char)v[i] >= 32 && v[i] != 127);
		} else if (pos == before) {
			const char *lf = memchr(p + pos, '\n', n - pos);
			pos = lf ? (size_t)(lf - p) + 1 : n; /* a line that is no field */
		}
		CHECK(pos > before && pos <= n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_copy(data, size), st[DSN_PARSE_STATUS_MAX];
	struct dsn_parsed_rcpt out[4];
	size_t seen, kept;

	walk_fields(body, size);
	seen = dsn_parse_status(body, size, out, 4);
	kept = seen < 4 ? seen : 4;
	for (size_t i = 0; i < kept; i++) {
		size_t sl = strnlen(out[i].status, sizeof(out[i].status));
		CHECK(out[i].final_rcpt[0] || out[i].original_rcpt[0]);
		CHECK(strnlen(out[i].diag, sizeof(out[i].diag)) < sizeof(out[i].diag));
		CHECK(sl == 0 || dsn_status_len(out[i].status) == sl);
		if (dsn_status_of_reply(out[i].diag, st))
			CHECK(dsn_status_len(st) == strlen(st) && st[0] == out[i].diag[0]);
	}
	free(body);
	return 0;
}
