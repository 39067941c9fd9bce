/*
 * libFuzzer target for log/log_json. The first input byte picks the output
 * capacity (LOG_JSON_MIN_CAP and up), the rest are the fields of a line.
 * The output goes into an exact-size heap buffer, so that a write past cap
 * is caught by AddressSanitizer.
 *
 * Invariants: the length returned is the string's and below cap; the
 * output is one flat JSON object of string members, starting with time and
 * level, on one line, and valid UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log/log_json.h"
#include "fuzz_util.h"

/* Length of a valid UTF-8 sequence at s (strictly), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n = s[0] < 0x80                   ? 1
	           : s[0] >= 0xC2 && s[0] < 0xE0 ? 2
	           : s[0] >= 0xE0 && s[0] < 0xF0 ? 3
	           : s[0] >= 0xF0 && s[0] < 0xF5 ? 4
	                                         : 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

/* A JSON string at *p (at its opening quote); moves *p past it. */
static void string(const char **p)
{
	const char *s = *p;

	CHECK(*s++ == '"');
	while (*s != '"') {
		CHECK((unsigned char)*s >= 0x20);
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					CHECK(strchr("0123456789abcdef", s[i]) && s[i]);
				s += 5;
			} else {
				CHECK(*s == '"' || *s == '\\');
				s++;
			}
			continue;
		}
		size_t n = utf8_seq((const unsigned char *)s);
		CHECK(n > 0);
		s += n;
	}
	*p = s + 1;
}

static void object(const char *s)
{
	CHECK(strncmp(s, "{\"time\":\"", 9) == 0);
	s++;
	for (int first = 1;; first = 0) {
		if (!first) {
			if (*s == '}')
				break;
			CHECK(*s++ == ',');
		}
		string(&s);
		CHECK(*s++ == ':');
		string(&s);
	}
	CHECK(s[1] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *fields, *out;
	size_t cap, n;

	if (size < 1)
		return 0;
	cap = LOG_JSON_MIN_CAP + (size_t)data[0] * 32;
	fields = fuzz_cstr(data + 1, size - 1); /* the line is a C string: cut at a NUL */
	out = malloc(cap);
	CHECK(out);
	n = log_json_line(out, cap, "2025-11-28T00:00:00.000Z", "info", fields);
	CHECK(n < cap && strlen(out) == n);
	object(out);
	free(fields);
	free(out);
	return 0;
}
