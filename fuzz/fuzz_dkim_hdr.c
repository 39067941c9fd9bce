/*
 * libFuzzer target for the DKIM parsers of outside bytes: dkim/dkim_hdr
 * (header sections of messages, From fields) and dkim/dkim_record (TXT
 * records from DNS).
 *
 * Input layout: byte 0 picks the piece size for the incremental end-of-
 * header search (0: byte by byte); the rest is a message (header section
 * and body) and, split at NUL bytes, a list of TXT records.
 *
 * Beyond "no crash", it checks what the signer relies on: the end of the
 * header section is the same found whole or piece by piece; fields cover
 * the section without overlap, each within bounds; a From domain is
 * non-empty, at most 253 octets, lower-case ASCII, without a trailing dot
 * or control bytes; a record verdict is one of the three, with a reason
 * exactly when it is "different".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim_hdr.h"
#include "dkim/dkim_record.h"
#include "fuzz_util.h"

#define KEY         "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAfuzz"
#define RECORDS_MAX 32

static void check_domain(const char *d)
{
	size_t n = strlen(d);

	CHECK(n > 0 && n <= DKIM_DOMAIN_MAX);
	CHECK(d[n - 1] != '.');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];
		CHECK(c > 0x20 && c != 0x7f && !(c >= 'A' && c <= 'Z'));
	}
}

/* The end found in pieces of `chunk` bytes, each an exact-size copy. */
static size_t end_in_pieces(const char *p, size_t n, size_t chunk)
{
	size_t have = 0, searched = 0, end = 0;

	while (end == 0 && have < n) {
		char *copy;
		have = n - have > chunk ? have + chunk : n;
		copy = fuzz_copy(p, have);
		end = dkim_hdr_end(copy, have, searched);
		searched = have;
		free(copy);
	}
	return end;
}

static void check_fields(const char *p, size_t n)
{
	struct dkim_field f;
	size_t off = 0, used;

	while (off < n && dkim_hdr_next(p + off, n - off, &f, &used)) {
		CHECK(used > 0 && used <= n - off);
		CHECK(f.start == p + off && f.len <= used && f.name_len <= f.len);
		CHECK(f.value >= f.start && f.value + f.value_len <= f.start + f.len);
		(void)dkim_hdr_signed(f.start, f.name_len);
		off += used;
	}
	CHECK(off <= n);
}

static void check_from(const char *p, size_t n)
{
	char out[DKIM_DOMAIN_MAX + 1];

	memset(out, 'x', sizeof out);
	out[DKIM_DOMAIN_MAX] = '\0';
	if (dkim_hdr_from_domain(p, n, out, sizeof out) == DKIM_FROM_OK)
		check_domain(out);
	if (dkim_from_domain(p, n, out, sizeof out) == DKIM_FROM_OK)
		check_domain(out);
}

static void check_records(const char *p, size_t n)
{
	const char *recs[RECORDS_MAX];
	char *copy = fuzz_cstr(p, n);
	size_t k = 0;

	for (char *r = copy; r <= copy + n && k < RECORDS_MAX; r += strlen(r) + 1)
		recs[k++] = r;
	for (int a = 0; a < DKIM_ALGO__COUNT; a++) {
		const char *why = NULL;
		enum dkim_verdict v = dkim_record_compare(recs, k, (enum dkim_algo)a, KEY, &why);
		CHECK(v == DKIM_VERDICT_MATCH || v == DKIM_VERDICT_MISSING ||
		      v == DKIM_VERDICT_DIFFERENT);
		CHECK((v == DKIM_VERDICT_DIFFERENT) == (why != NULL));
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n, end, chunk;

	if (size < 1)
		return 0;
	n = size - 1;
	chunk = data[0] ? data[0] : 1;
	end = dkim_hdr_end(p, n, 0);
	CHECK(end <= n);
	CHECK(end_in_pieces(p, n, chunk) == end);
	check_fields(p, end ? end : n);
	check_from(p, end ? end : n);
	check_records(p, n);
	return 0;
}
