/*
 * libFuzzer target for deliv/deliv_report: a message sent to a VERP
 * return path, read as an ARF complaint report, a DSN or a text bounce
 * (which walks deliv_mime, dsn_parse and deliv_btext on the way). The
 * input is the message, in an exact-size heap buffer so that a read past
 * it is caught by AddressSanitizer.
 *
 * Invariants: at most DELIV_REPORT_RCPTS recipients; a report of kind
 * NONE has none; an ARF report has only complaints and a feedback type;
 * every string is NUL-terminated within its buffer; a status is empty or
 * an RFC 3463 code of class 2, 4 or 5; reading the same bytes twice gives
 * the same result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliv/deliv_report.h"
#include "dsn/dsn_parse.h"
#include "fuzz_util.h"

static void check_rcpt(const struct deliv_report *r, const struct deliv_report_rcpt *x)
{
	size_t sl = strnlen(x->status, sizeof(x->status));

	CHECK(strnlen(x->addr, sizeof(x->addr)) < sizeof(x->addr));
	CHECK(strnlen(x->alt, sizeof(x->alt)) < sizeof(x->alt));
	CHECK(strnlen(x->diag, sizeof(x->diag)) < sizeof(x->diag));
	CHECK(sl < sizeof(x->status));
	CHECK(sl == 0 || dsn_status_len(x->status) == sl);
	if (r->kind == DELIV_REPORT_ARF)
		CHECK(x->what == DELIV_RCPT_COMPLAINED);
	else
		CHECK(x->what != DELIV_RCPT_COMPLAINED && sl > 0);
	if (x->what == DELIV_RCPT_FAILED && r->kind == DELIV_REPORT_TEXT)
		CHECK(x->status[0] == '5');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg = fuzz_copy(data, size);
	struct deliv_report *r = calloc(2, sizeof(*r));

	CHECK(r);
	deliv_report_parse(msg, size, &r[0]);
	CHECK(r[0].n <= DELIV_REPORT_RCPTS);
	CHECK(r[0].kind != DELIV_REPORT_NONE || r[0].n == 0);
	CHECK(r[0].kind != DELIV_REPORT_ARF || r[0].feedback_type[0]);
	for (size_t i = 0; i < r[0].n; i++)
		check_rcpt(&r[0], &r[0].rcpts[i]);
	deliv_report_parse(msg, size, &r[1]);
	CHECK(memcmp(&r[0], &r[1], sizeof(r[0])) == 0);
	free(msg);
	free(r);
	return 0;
}
