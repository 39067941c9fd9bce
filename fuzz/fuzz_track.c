/*
 * libFuzzer target for track/ (PURE): the input is HTML to rewrite, an
 * attribute value to decode, a URL to put in a token and a token to read.
 *
 * Beyond "no crash", it checks: with no link maker and no pixel the HTML
 * comes out byte for byte; every link handed to the maker is an http(s)
 * URL without line breaks; decoding never grows the text; a token made for
 * the input reads back to it, and the input as a token is never accepted
 * (it was not made with the key).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "track/track.h"
#include "fuzz_util.h"

static char *maker(void *arg, const char *url)
{
	CHECK(ascii_startswith(url, "http://") || ascii_startswith(url, "https://"));
	CHECK(!strpbrk(url, "\r\n"));
	(*(int *)arg)++;
	return xstrdup("L");
}

static void check_html(const char *s, size_t n)
{
	struct buf same, out;
	int links = 0;
	char *dec;

	buf_init(&same);
	buf_init(&out);
	track_html(s, n, NULL, NULL, NULL, &same);
	CHECK(same.len == n && (n == 0 || memcmp(same.data, s, n) == 0));
	track_html(s, n, maker, &links, "P", &out);
	CHECK(out.len >= 1);
	dec = track_entity_decode(s, n);
	CHECK(strlen(dec) <= n);
	free(dec);
	buf_free(&same);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[TRACK_KEY_LEN] = {7};
	char *s = fuzz_cstr(data, size), *tok;
	struct track_parsed p;

	check_html(s, size);
	if (!memchr(s, 0, size)) {
		tok = track_token_make(key, &(struct track_ref){'c', "a", "M", "r@x", s});
		CHECK(track_token_parse(key, tok, 'c', &p) == 0 && strcmp(p.url, s) == 0);
		track_parsed_free(&p);
		free(tok);
		CHECK(track_token_parse(key, s, 'c', &p) == -1);
	}
	free(s);
	return 0;
}
