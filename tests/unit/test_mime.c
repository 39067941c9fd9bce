/*
 * Unit tests for mime/ (PURE): quoted-printable and base64 lines (known
 * answers, line bounds, round trips), header fields (plain, folded, RFC
 * 2047 encoded words that decode back), address parsing, which extra
 * header fields a caller may set, and the structure mime_build() makes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mime/mime.h"
#include "util/util.h"

static char *qp(const char *in)
{
	struct buf b;

	buf_init(&b);
	mime_qp(in, strlen(in), &b);
	return b.data ? b.data : xstrdup("");
}

static int hexval(char c)
{
	return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* The decoding of RFC 2045 6.7, hard breaks as "\n". */
static char *qp_decode(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;

	while (*s) {
		if (s[0] == '=' && s[1] == '\r' && s[2] == '\n')
			s += 3;
		else if (s[0] == '=')
			*o++ = (char)(hexval(s[1]) * 16 + hexval(s[2])), s += 3;
		else if (s[0] == '\r' && s[1] == '\n')
			*o++ = '\n', s += 2;
		else
			*o++ = *s++;
	}
	*o = 0;
	return out;
}

static void assert_lines_at_most(const char *s, size_t max)
{
	const char *nl;

	while ((nl = strstr(s, "\r\n"))) {
		assert_true((size_t)(nl - s) <= max);
		assert_null(memchr(s, '\n', (size_t)(nl - s)));
		s = nl + 2;
	}
	assert_true(strlen(s) <= max);
}

static void test_qp_known(void **state)
{
	static const char *const cases[][2] = {
	    {"a=b", "a=3Db"},
	    {"trailing \nnext", "trailing=20\r\nnext"},
	    {"tab\t", "tab=09"},
	    {"Gr\xc3\xbc\xc3\x9f"
	     "e",
	     "Gr=C3=BC=C3=9Fe"},
	    {"crlf\r\nlf\n", "crlf\r\nlf\r\n"},
	    {"lone\rcr", "lone=0Dcr"},
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *got = qp(cases[i][0]);
		assert_string_equal(got, cases[i][1]);
		free(got);
	}
}

static void test_qp_long_lines_round_trip(void **state)
{
	struct buf in;
	char *enc, *dec;

	(void)state;
	buf_init(&in);
	for (int i = 0; i < 300; i++)
		buf_puts(&in, i % 7 == 0 ? "\xc3\xa4" : i % 11 == 0 ? " =" : "x");
	buf_puts(&in, "\nshort\n");
	for (int i = 0; i < 75; i++)
		buf_puts(&in, "y");
	buf_puts(&in, " ");
	enc = qp(in.data);
	assert_lines_at_most(enc, 76);
	dec = qp_decode(enc);
	assert_string_equal(dec, in.data);
	free(enc);
	free(dec);
	buf_free(&in);
}

static void test_base64_lines(void **state)
{
	unsigned char data[200];
	struct buf b;
	unsigned char back[200];
	struct buf joined;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7);
	buf_init(&b);
	buf_init(&joined);
	mime_base64_lines(data, sizeof(data), &b);
	assert_int_equal(strstr(b.data, "\r\n") - b.data, 76);
	assert_lines_at_most(b.data, 76);
	for (char *p = b.data; *p; p++)
		if (*p != '\r' && *p != '\n')
			buf_append(&joined, p, 1);
	assert_int_equal(base64_decode(joined.data, joined.len, back, sizeof(back)), sizeof(data));
	assert_memory_equal(back, data, sizeof(data));
	buf_free(&b);
	buf_free(&joined);
}

/* The value of a header field written by mime_header_text, decoded. */
static char *header_decode(const char *field)
{
	struct buf out;
	const char *p = strchr(field, ':') + 2;

	buf_init(&out);
	while (*p) {
		const char *q = strstr(p, "?=");
		if (strncmp(p, "=?UTF-8?B?", 10) == 0 && q) {
			unsigned char tmp[128];
			long n = base64_decode(p + 10, (size_t)(q - p - 10), tmp, sizeof(tmp));
			assert_true(n >= 0);
			buf_append(&out, tmp, (size_t)n);
			p = q + 2;
			p += strspn(p, "\r\n ");
		} else if (p[0] == '\r' && p[1] == '\n') {
			p += 2;
		} else {
			buf_append(&out, p++, 1);
		}
	}
	return out.data ? out.data : xstrdup("");
}

static void check_header(const char *value, int encoded)
{
	struct buf b;
	char *back;

	buf_init(&b);
	mime_header_text("Subject", value, &b);
	assert_true(b.len > 2 && strcmp(b.data + b.len - 2, "\r\n") == 0);
	b.data[b.len - 2] = 0;
	assert_int_equal(strstr(b.data, "=?UTF-8?B?") != NULL, encoded);
	assert_lines_at_most(b.data, 78);
	back = header_decode(b.data);
	assert_string_equal(back, value);
	free(back);
	buf_free(&b);
}

static void test_header_text(void **state)
{
	struct buf long_ascii, long_utf8;

	(void)state;
	check_header("Hello", 0);
	check_header("Gr\xc3\xbc\xc3\x9f"
	             "e aus K\xc3\xb6ln",
	             1);
	check_header("looks =?like?= a word", 1);
	buf_init(&long_ascii);
	buf_init(&long_utf8);
	for (int i = 0; i < 40; i++) {
		buf_puts(&long_ascii, "word ");
		buf_puts(&long_utf8, "w\xc3\xb6rd \xe2\x82\xac ");
	}
	check_header(long_ascii.data, 0);
	check_header(long_utf8.data, 1);
	buf_free(&long_ascii);
	buf_free(&long_utf8);
}

static void test_addr_parse(void **state)
{
	struct mime_addr a;
	const char *why;

	(void)state;
	assert_int_equal(mime_addr_parse("a@example.com", &a, &why), 0);
	assert_string_equal(a.addr, "a@example.com");
	assert_string_equal(a.name, "");
	assert_int_equal(mime_addr_parse("  \"Doe, Jane\" <jane@example.com>", &a, &why), 0);
	assert_string_equal(a.name, "Doe, Jane");
	assert_string_equal(a.addr, "jane@example.com");
	assert_int_equal(mime_addr_parse("J\xc3\xbcrgen <j\xc3\xbc@example.com>", &a, &why), 0);
	assert_true(mime_addr_utf8(&a));
	assert_int_equal(mime_addr_parse("<b@example.com>", &a, &why), 0);
	assert_false(mime_addr_utf8(&a));
	assert_int_equal(mime_addr_parse("nobody", &a, &why), -1);
	assert_int_equal(mime_addr_parse("Name <a@example.com", &a, &why), -1);
	assert_int_equal(mime_addr_parse("a@example.com\r\nBcc: x@y.z", &a, &why), -1);
	assert_int_equal(mime_addr_parse("\xff <a@example.com>", &a, &why), -1);
}

static void test_header_ok(void **state)
{
	const char *why;

	(void)state;
	assert_true(mime_header_ok("X-Campaign", "spring", &why));
	assert_true(mime_header_ok("List-Id", "<news.example.com>", &why));
	assert_false(mime_header_ok("From", "x@y.z", &why));
	assert_false(mime_header_ok("content-type", "text/html", &why));
	assert_false(mime_header_ok("Bcc", "x@y.z", &why));
	assert_false(mime_header_ok("X Space", "v", &why));
	assert_false(mime_header_ok("X-A", "line\r\nInjected: yes", &why));
	assert_false(mime_header_ok("", "v", &why));
}

static char *build(const struct mime_msg *m)
{
	struct buf b;

	buf_init(&b);
	mime_build(m, &b);
	return b.data;
}

static void test_build_text_only(void **state)
{
	struct mime_addr from = {"", "a@example.com"}, to = {"Bob", "b@example.com"};
	struct mime_msg m = {.from = &from,
	                     .to = &to,
	                     .n_to = 1,
	                     .subject = "Hi",
	                     .text = "one\ntwo\n",
	                     .message_id = "<X@h>",
	                     .date = 0,
	                     .seed = "S"};
	char *s = build(&m);

	(void)state;
	assert_non_null(strstr(s, "\r\nFrom: a@example.com\r\nTo: Bob <b@example.com>\r\n"));
	assert_non_null(strstr(s, "Content-Type: text/plain; charset=us-ascii\r\n"
	                          "Content-Transfer-Encoding: 7bit\r\n\r\none\r\ntwo\r\n"));
	assert_null(strstr(s, "multipart"));
	assert_lines_at_most(s, 998);
	free(s);
}

static void test_build_tree(void **state)
{
	static const unsigned char png[3] = {1, 2, 3};
	struct mime_addr from = {"", "a@example.com"}, to = {"", "b@example.com"};
	struct mime_part parts[2] = {{"f.bin", "application/octet-stream", NULL, png, 3},
	                             {NULL, "image/png", "logo", png, 3}};
	struct mime_msg m = {.from = &from,
	                     .to = &to,
	                     .n_to = 1,
	                     .subject = "s",
	                     .text = "has =_ph_S_0 inside",
	                     .html = "<b>x</b>",
	                     .parts = parts,
	                     .n_parts = 2,
	                     .message_id = "<X@h>",
	                     .seed = "S"};
	char *s = build(&m), *mixed, *alt, *rel;

	(void)state;
	mixed = strstr(s, "multipart/mixed");
	alt = strstr(s, "multipart/alternative");
	rel = strstr(s, "multipart/related");
	assert_true(mixed && alt && rel && mixed < alt && alt < rel);
	/* the text that holds a boundary-like run went quoted-printable */
	assert_non_null(strstr(s, "has =3D_ph_S_0 inside"));
	assert_non_null(strstr(s, "Content-ID: <logo>"));
	assert_non_null(strstr(s, "Content-Disposition: attachment;\r\n\tfilename=\"f.bin\""));
	assert_non_null(strstr(s, "--=_ph_S_0--\r\n"));
	assert_lines_at_most(s, 998);
	free(s);
}

static void test_build_utf8_filename(void **state)
{
	static const unsigned char d[1] = {0};
	struct mime_addr from = {"", "a@example.com"};
	struct mime_part part = {"r\xc3\xa4 1.pdf", "application/pdf", NULL, d, 1};
	struct mime_msg m = {.from = &from,
	                     .subject = "s",
	                     .parts = &part,
	                     .n_parts = 1,
	                     .message_id = "<X@h>",
	                     .seed = "S"};
	char *s = build(&m);

	(void)state;
	assert_non_null(strstr(s, "filename*=UTF-8''r%C3%A4%201.pdf"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qp_known),
	    cmocka_unit_test(test_qp_long_lines_round_trip),
	    cmocka_unit_test(test_base64_lines),
	    cmocka_unit_test(test_header_text),
	    cmocka_unit_test(test_addr_parse),
	    cmocka_unit_test(test_header_ok),
	    cmocka_unit_test(test_build_text_only),
	    cmocka_unit_test(test_build_tree),
	    cmocka_unit_test(test_build_utf8_filename),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
