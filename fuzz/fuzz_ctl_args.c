/*
 * libFuzzer target for ctl/ctl_args: the arguments of the control
 * socket's queue requests, any bytes. What parses is well formed (valid
 * IDs, a printable domain) and formats back to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "util/util.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), *why = NULL;
	struct ctl_args a;
	struct buf b;

	if (ctl_args_parse(s, &a, &why) == 0) {
		CHECK(a.all + (a.domain != NULL) + (a.n_ids > 0) == 1);
		for (size_t i = 0; i < a.n_ids; i++)
			CHECK(id_valid(a.ids[i]));
		CHECK(a.n_ids <= CTL_IDS_MAX);
		buf_init(&b);
		ctl_args_format(&a, &b);
		CHECK(strcmp(b.data, s) == 0);
		buf_free(&b);
		ctl_args_free(&a);
	} else {
		CHECK(why != NULL);
		free(why);
	}
	free(s);
	return 0;
}
