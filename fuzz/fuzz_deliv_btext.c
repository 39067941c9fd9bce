/*
 * libFuzzer target for deliv/deliv_btext: the heuristics that read a
 * bounce that is no RFC 3464 report, and the address scanner they share
 * with the complaint reader. The input is the text, in an exact-size heap
 * buffer so that a read past it is caught by AddressSanitizer.
 *
 * Invariants: at most max hits; each has an address with an '@' inside,
 * no two the same in any case, a status that is a whole RFC 3463 code of
 * class 4 or 5, a strength of 1 to 3 and NUL-terminated strings; every
 * address the scanner reports has a local part, an '@' and a dotted
 * domain, and fits its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deliv/deliv_btext.h"
#include "dsn/dsn_parse.h"
#include "fuzz_util.h"

static int on_addr(void *arg, const char *a)
{
	const char *at = strrchr(a, '@');

	CHECK(at && at > a && strchr(at, '.') && at[1] != '.');
	CHECK(strlen(a) < DELIV_ADDR_MAX);
	(*(size_t *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_copy(data, size);
	struct deliv_btext_hit h[8];
	size_t n, seen = 0;

	n = deliv_btext_scan(text, size, h, 8);
	CHECK(n <= 8);
	for (size_t i = 0; i < n; i++) {
		size_t sl = strnlen(h[i].status, sizeof(h[i].status));
		CHECK(strchr(h[i].addr, '@'));
		CHECK(strnlen(h[i].diag, sizeof(h[i].diag)) < sizeof(h[i].diag));
		CHECK(sl > 0 && dsn_status_len(h[i].status) == sl);
		CHECK(h[i].status[0] == '4' || h[i].status[0] == '5');
		CHECK(h[i].strength >= 1 && h[i].strength <= 3);
		for (size_t j = 0; j < i; j++)
			CHECK(strcasecmp(h[i].addr, h[j].addr) != 0);
	}
	deliv_addr_scan(text, size, on_addr, &seen);
	CHECK(seen <= size / 2 + 1);
	free(text);
	return 0;
}
