/*
 * libFuzzer target for deliv/deliv_mime: header sections, content types
 * and parameters, the multipart walk and the transfer decodings. The
 * input is a message, in an exact-size heap buffer so that a read past it
 * is caught by AddressSanitizer.
 *
 * Invariants: the header section and body lie inside the message, in that
 * order; a part found lies inside it too; the type is lower case with a
 * '/'; the decoded body is never more than asked for, nor more than the
 * encoded one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliv/deliv_mime.h"
#include "fuzz_util.h"

static void check_inside(const struct deliv_mime *e, const char *p, size_t n)
{
	CHECK(e->head >= p && e->head + e->head_len <= p + n);
	CHECK(e->body >= e->head + e->head_len && e->body + e->body_len <= p + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {"text/plain", "message/delivery-status",
	                                    "message/feedback-report", "message/rfc822", NULL};
	char *msg = fuzz_copy(data, size), type[DELIV_MIME_TYPE_MAX], b[80];
	struct deliv_mime top, part;
	struct buf out;

	deliv_mime_split(msg, size, &top);
	check_inside(&top, msg, size);
	deliv_mime_type(&top, type, sizeof(type));
	CHECK(strchr(type, '/'));
	for (size_t i = 0; type[i]; i++)
		CHECK(!(type[i] >= 'A' && type[i] <= 'Z'));
	deliv_mime_param(&top, "boundary", b, sizeof(b));
	if (deliv_mime_find(&top, types, &part)) {
		check_inside(&part, msg, size);
		buf_init(&out);
		deliv_mime_decode(&part, &out, 4096);
		CHECK(out.len <= 4096 && out.len <= part.body_len);
		buf_free(&out);
	}
	free(msg);
	return 0;
}
