/*
 * libFuzzer target for mime/ (PURE). The input is split at its first two
 * NUL bytes into a display name, a subject and a body; the body goes as
 * text and (a copy) as html, beside an attachment of the input's bytes,
 * and the name is tried as an address too.
 *
 * Beyond "no crash", it checks what mail relies on: every line of the
 * message ends in CRLF (no bare CR or LF), no line passes 998 bytes, the
 * message is 7-bit (the addresses are ASCII); quoted-printable of the
 * body has lines of at most 76 and decodes back to it (line ends as LF).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"
#include "fuzz_util.h"

static void check_lines(const char *s, size_t n, size_t max, int seven_bit)
{
	size_t col = 0, i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		CHECK(!seven_bit || c < 128);
		if (c == '\r') {
			CHECK(i + 1 < n && s[i + 1] == '\n');
			col = 0;
			i++;
			continue;
		}
		CHECK(c != '\n');
		CHECK(++col <= max);
	}
}

static int hexval(char c)
{
	return c <= '9' ? c - '0' : c - 'A' + 10;
}

static void check_qp(const char *in, size_t n)
{
	struct buf enc, want, got;
	size_t i;

	buf_init(&enc);
	buf_init(&want);
	buf_init(&got);
	mime_qp(in, n, &enc);
	check_lines(enc.data ? enc.data : "", enc.len, 76, 1);
	for (i = 0; i < n; i++) /* CRLF and LF are both a line break */
		if (!(in[i] == '\r' && i + 1 < n && in[i + 1] == '\n'))
			buf_append(&want, in + i, 1);
	for (i = 0; i < enc.len;) {
		const char *p = enc.data + i;
		if (p[0] == '=' && p[1] == '\r')
			i += 3;
		else if (p[0] == '=')
			buf_append(&got, &(char){(char)(hexval(p[1]) * 16 + hexval(p[2]))}, 1),
			    i += 3;
		else if (p[0] == '\r')
			buf_puts(&got, "\n"), i += 2;
		else
			buf_append(&got, p, 1), i++;
	}
	CHECK(got.len == want.len && (got.len == 0 || memcmp(got.data, want.data, got.len) == 0));
	buf_free(&enc);
	buf_free(&want);
	buf_free(&got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 3), *subject, *body;
	struct mime_addr from = {"", "a@example.com"}, to, parsed;
	struct mime_part part = {"f", "application/octet-stream", NULL, data, size};
	const char *why;
	struct buf out;

	memcpy(s, data, size);
	s[size] = s[size + 1] = s[size + 2] = 0;
	subject = s + strlen(s) + 1;
	body = subject + strlen(subject) + 1;
	memset(&to, 0, sizeof(to));
	snprintf(to.addr, sizeof(to.addr), "b@example.com");
	if (mime_utf8_valid(s, strlen(s)) && strlen(s) <= MIME_NAME_MAX && !strpbrk(s, "\r\n"))
		snprintf(to.name, sizeof(to.name), "%s", s);
	if (!mime_utf8_valid(subject, strlen(subject)) || strpbrk(subject, "\r\n"))
		subject = "";
	(void)mime_addr_parse(s, &parsed, &why);
	buf_init(&out);
	mime_build(&(struct mime_msg){.from = &from,
	                              .to = &to,
	                              .n_to = 1,
	                              .subject = subject,
	                              .text = body,
	                              .html = body,
	                              .parts = &part,
	                              .n_parts = 1,
	                              .message_id = "<X@h>",
	                              .seed = "S"},
	           &out);
	check_lines(out.data, out.len, 998, 1);
	check_qp(body, strlen(body));
	buf_free(&out);
	free(s);
	return 0;
}
