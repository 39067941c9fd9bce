/*
 * libFuzzer target for events/events_text: what clients and peers send
 * that events keep or parse. The input is cleaned to UTF-8 and read as a
 * time (the since/until/from/to of the API).
 *
 * Beyond "no crash", it checks what the writer and the API rely on:
 * cleaning gives valid UTF-8 without NUL (cleaning it again changes
 * nothing) and only grows by the replacement character; a time that
 * parses is not negative, and formatting it and parsing that again gives
 * the same millisecond.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events/events_text.h"
#include "fuzz_util.h"

static void check_clean(const char *s, size_t n)
{
	char *a = events_utf8_clean(s, n), *b;
	size_t len = strlen(a);

	CHECK(len <= n * 3);
	CHECK(events_utf8_valid(a, len));
	CHECK(events_utf8_valid(s, n) == (len == n && memcmp(a, s, n) == 0));
	b = events_utf8_clean(a, len);
	CHECK(strcmp(a, b) == 0);
	free(a);
	free(b);
}

static void check_time(const char *s)
{
	char out[32];
	int64_t ms, again;

	if (events_time_parse(s, &ms) != 0)
		return;
	CHECK(ms >= 0);
	events_time_format(ms, out, sizeof(out));
	CHECK(events_time_parse(out, &again) == 0);
	CHECK(again == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	check_clean(s, size);
	check_time(s);
	free(s);
	return 0;
}
