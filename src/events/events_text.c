/*
 * events_text: the text that events take in from outside and give out:
 * UTF-8 cleaning of what peers and clients send, and times as RFC 3339.
 * PURE (libc + util): unit-tested in tests/unit/test_events_text.c and
 * fuzzed in fuzz/fuzz_events_text.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events/events_text.h"
#include "util/util.h"

/* ---- UTF-8 -------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF, no NUL). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80                    ? 1
	             : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
	             : s[0] >= 0xe0 && s[0] <= 0xef ? 3
	             : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
	                                            : 0;

	if (len == 0 || len > n || s[0] == 0)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	return len;
}

int events_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(u + i, n - i);

		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

char *events_utf8_clean(const char *s, size_t n)
{
	static const char replacement[] = "\xef\xbf\xbd";
	const unsigned char *u = (const unsigned char *)s;
	struct buf b;

	buf_init(&b);
	buf_reserve(&b, n + 1);
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(u + i, n - i);

		if (k == 0) {
			buf_append(&b, replacement, 3);
			i++;
		} else {
			buf_append(&b, s + i, k);
			i += k;
		}
	}
	if (b.len == 0)
		buf_puts(&b, "");
	return b.data;
}

/* ---- times ---------------------------------------------------------------------------- */

/* 9999-12-31T23:59:59.999Z: the last time RFC 3339's four-digit year holds. */
#define TIME_MAX_MS 253402300799999LL

void events_time_format(int64_t ms, char *out, size_t cap)
{
	time_t t;
	struct tm tm;
	char s[32];

	if (ms < 0)
		ms = 0;
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, cap, "%s.%03dZ", s, (int)(ms % 1000));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(unsigned y, unsigned m)
{
	static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* n digits at s as a number; -1 if any is not a digit. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "YYYY-MM-DD" at s: 0 with the day count, -1 not a date. */
static int parse_date(const char *s, int64_t *days)
{
	int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);

	if (s[4] != '-' || s[7] != '-' || y < 1970 || m < 1 || m > 12 || d < 1 ||
	    (unsigned)d > month_days((unsigned)y, (unsigned)m))
		return -1;
	*days = days_from_civil(y, (unsigned)m, (unsigned)d);
	return 0;
}

/* "HH:MM:SS[.fff...]" at s: seconds of the day and milliseconds; *end set. */
static int parse_clock(const char *s, int64_t *secs, int64_t *ms, const char **end)
{
	int h = digits(s, 2), m = digits(s + 3, 2), sec = digits(s + 6, 2);
	const char *p = s + 8;
	int64_t frac = 0, scale = 100;

	if (s[2] != ':' || s[5] != ':' || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60)
		return -1;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	*secs = h * 3600 + m * 60 + (sec == 60 ? 59 : sec); /* a leap second is :59 */
	*ms = frac;
	*end = p;
	return 0;
}

/* "Z" or "+hh:mm" / "-hh:mm" (a space stands for '+': a '+' left
 * unencoded in a query string arrives as one). Seconds east of UTC. */
static int parse_offset(const char *s, int64_t *east)
{
	int h, m;

	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
		*east = 0;
		return 0;
	}
	if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-' && s[0] != ' ') || s[3] != ':')
		return -1;
	h = digits(s + 1, 2);
	m = digits(s + 4, 2);
	if (h < 0 || h > 23 || m < 0 || m > 59)
		return -1;
	*east = (s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
	return 0;
}

static int parse_rfc3339(const char *s, int64_t *out)
{
	int64_t days, secs, ms, east;
	const char *end;
	size_t n = strlen(s);

	if (n < 10 || parse_date(s, &days) < 0)
		return -1;
	if (n == 10) {
		*out = days * 86400 * 1000;
		return 0;
	}
	if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || n < 20 ||
	    parse_clock(s + 11, &secs, &ms, &end) < 0 || parse_offset(end, &east) < 0)
		return -1;
	*out = ((days * 86400 + secs - east) * 1000) + ms;
	return *out < 0 || *out > TIME_MAX_MS ? -1 : 0;
}

int events_time_parse(const char *s, int64_t *ms)
{
	uint64_t secs;

	if (!s || !*s)
		return -1;
	if (strspn(s, "0123456789") == strlen(s)) {
		if (strlen(s) > 12 || parse_u64(s, &secs) < 0 || secs > TIME_MAX_MS / 1000)
			return -1;
		*ms = (int64_t)secs * 1000;
		return 0;
	}
	return parse_rfc3339(s, ms);
}
