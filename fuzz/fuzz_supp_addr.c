/*
 * libFuzzer target for store/store_supp_addr (PURE): the input, as a
 * string, is an address to normalize and a reason to clean.
 *
 * Beyond "no crash", it checks what the suppression list relies on: an
 * accepted address has an '@', fits SUPP_ADDRESS_MAX, has no control
 * character, is its own normal form (normalizing twice changes nothing),
 * and its key is its display form lower-cased; a cleaned reason is
 * non-empty, fits SUPP_REASON_MAX, has no control character and no space
 * at either end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "fuzz_util.h"

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static void check_address(const char *in)
{
	char d[SUPP_ADDRESS_MAX + 1], k[SUPP_ADDRESS_MAX + 1];
	char d2[SUPP_ADDRESS_MAX + 1], k2[SUPP_ADDRESS_MAX + 1];
	const char *why = NULL;

	if (store_supp_normalize(in, d, k, &why) < 0) {
		CHECK(why && *why);
		return;
	}
	CHECK(strchr(d, '@') && strlen(d) <= SUPP_ADDRESS_MAX && strlen(k) == strlen(d));
	CHECK(!has_control(d));
	for (size_t i = 0; d[i]; i++)
		CHECK(k[i] == ((d[i] >= 'A' && d[i] <= 'Z') ? d[i] - 'A' + 'a' : d[i]));
	CHECK(store_supp_normalize(d, d2, k2, NULL) == 0);
	CHECK(strcmp(d, d2) == 0 && strcmp(k, k2) == 0);
}

static void check_reason(const char *in)
{
	char out[SUPP_REASON_MAX + 1];
	size_t n;

	store_supp_reason_clean(in, out);
	n = strlen(out);
	CHECK(n > 0 && n <= SUPP_REASON_MAX && !has_control(out));
	CHECK(out[0] != ' ' && out[n - 1] != ' ');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	check_address(s);
	check_reason(s);
	free(s);
	return 0;
}
