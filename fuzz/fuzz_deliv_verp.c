/*
 * libFuzzer target for deliv/deliv_verp: RCPT addresses judged against
 * the bounces domain. The input is the address (made a C string). The key
 * and domain are fixed; the clock is the ID's own time plus the first
 * byte in days.
 *
 * Invariants: only an address at the domain is judged; a VALID or EXPIRED
 * one names a queue ID whose return path, made again, is the address in
 * another case (and maybe without its trailing dot); a return path made
 * from any valid ID is VALID.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deliv/deliv_verp.h"
#include "fuzz_util.h"

static const unsigned char key[DELIV_VERP_KEY_LEN] = "fuzzing key, thirty-two bytes..";
static const char domain[] = "bounces.example.com";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *addr = fuzz_cstr(data, size), id[ID_LEN + 1], again[DELIV_VERP_MAX];
	enum deliv_verp_kind k;
	int64_t now;

	now = size ? (int64_t)data[0] * 86400 : 0;
	k = deliv_verp_check(key, domain, addr, now, 30 * 86400, id);
	if (!strchr(addr, '@'))
		CHECK(k == DELIV_VERP_OTHER);
	if (k == DELIV_VERP_VALID || k == DELIV_VERP_EXPIRED) {
		size_t n = strlen(addr);
		deliv_verp_make(key, id, domain, again);
		if (n && addr[n - 1] == '.')
			n--;
		CHECK(strlen(again) == n && strncasecmp(again, addr, n) == 0);
		CHECK(deliv_id_time(id) >= 0);
		k = deliv_verp_check(key, domain, again, deliv_id_time(id), 0, id);
		CHECK(k == DELIV_VERP_VALID);
	}
	free(addr);
	return 0;
}
