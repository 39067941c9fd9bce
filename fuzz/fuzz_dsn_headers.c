/*
 * libFuzzer target for dsn/dsn_headers: where a message's header section
 * ends, for the headers a bounce report returns. The first two input
 * bytes pick a limit (0..65535) and a split position; the rest is the
 * message, each piece in an exact-size heap buffer so that a read past it
 * is caught by AddressSanitizer. It is scanned whole, in two pieces, and
 * (for short inputs) byte by byte.
 *
 * Invariants: every way of cutting gives the same end and cut flag; the
 * end is within the message and the limit; the section ends at a line
 * end or at the message's end; without the cut flag, what follows the
 * section is an empty line, a line that is not a field, or nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsn/dsn_headers.h"
#include "fuzz_util.h"

/* Feeds msg[0, n) as an exact-size copy; 1 once the section ended. */
static int feed(struct dsn_hscan *h, const uint8_t *msg, size_t n)
{
	char *copy = fuzz_copy(msg, n);
	int done;

	done = dsn_hscan_feed(h, copy, n);
	free(copy);
	return done;
}

/* 1 if p starts a line that belongs to a header section: a field name,
 * blanks, ':'; or, after the first line, a blank (a continuation). */
static int continues(const uint8_t *p, size_t n, int not_first)
{
	size_t i = 0;

	if (n > 0 && (p[0] == ' ' || p[0] == '\t'))
		return not_first;
	while (i < n && p[i] >= 33 && p[i] <= 126 && p[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

static uint64_t scan(const uint8_t *msg, size_t len, uint64_t max, size_t split, int *cut)
{
	struct dsn_hscan h;
	uint64_t end;

	dsn_hscan_init(&h, max);
	if (split >= len || !feed(&h, msg, split))
		feed(&h, msg + (split < len ? split : 0), split < len ? len - split : len);
	end = dsn_hscan_end(&h);
	*cut = h.cut;
	return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *msg = data + 2;
	size_t len, split, i;
	uint64_t max, end, e;
	struct dsn_hscan h;
	int cut, c;

	if (size < 2)
		return 0;
	max = (uint64_t)data[0] << 8 | data[1] >> 1;
	len = size - 2;
	split = len ? data[1] % (len + 1) : 0;
	end = scan(msg, len, max, len, &cut); /* whole */
	e = scan(msg, len, max, split, &c);
	CHECK(e == end && c == cut);
	if (len <= 512) {
		dsn_hscan_init(&h, max);
		for (i = 0; i < len && !feed(&h, msg + i, 1); i++)
			;
		CHECK(dsn_hscan_end(&h) == end && h.cut == cut);
	}
	CHECK(end <= len && end <= max);
	CHECK(end == 0 || end == len || msg[end - 1] == '\n');
	/* a section that stopped early stopped at a line that is no field */
	if (!cut && end < len)
		CHECK(!continues(msg + end, len - end, end > 0));
	return 0;
}
