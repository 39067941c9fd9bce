/*
 * libFuzzer target for sched/sched_pause_list: the parser of
 * DATA_DIR/paused (any bytes: a disk error or an operator can put
 * anything there) and the round trip through the formatter. Every name
 * kept is in normal form; format then parse gives the same list.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_policy.h"
#include "util/util.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sched_pauses a, b;
	char *p = fuzz_copy(data, size), norm[300];
	size_t bad, bad2, i;
	struct buf text;

	sched_pauses_parse(p, size, &a, &bad);
	for (i = 0; i < a.n; i++) {
		CHECK(sched_pause_name(a.names[i], norm, sizeof(norm)) == 0);
		CHECK(strcmp(norm, a.names[i]) == 0);
		CHECK(sched_paused(&a, a.names[i]));
		CHECK(i == 0 || strcmp(a.names[i - 1], a.names[i]) < 0);
	}
	buf_init(&text);
	sched_pauses_format(&a, &text);
	sched_pauses_parse(text.data, text.len, &b, &bad2);
	CHECK(bad2 == 0 && a.all == b.all && a.n == b.n);
	for (i = 0; i < a.n; i++)
		CHECK(strcmp(a.names[i], b.names[i]) == 0);
	buf_free(&text);
	sched_pauses_free(&a);
	sched_pauses_free(&b);
	free(p);
	return 0;
}
