/*
 * log: key=value lines on stderr. Each line is built in a local buffer and
 * written with one write(2), so lines from several threads never interleave.
 */
#include "log/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

static enum log_level min_level = LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	min_level = level;
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000, level_names[level]);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* cut, but keep the newline */
	line[n++] = '\n';
	if (write(2, line, (size_t)n) < 0) {
		/* stderr gone: nowhere left to report it */
	}
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

static int needs_quotes(const char *s)
{
	if (!*s)
		return 1;
	for (; *s; s++)
		if (*s <= ' ' || *s == '"' || *s == '\\' || *s == '=' || (unsigned char)*s >= 0x7f)
			return 1;
	return 0;
}

const char *log_q(const char *s)
{
	static _Thread_local char bufs[4][224];
	static _Thread_local unsigned next;
	char *out = bufs[next++ % 4];
	size_t o = 0, cap = sizeof(bufs[0]) - 12;

	if (!s)
		return "-";
	if (!needs_quotes(s) && strlen(s) < cap)
		return s;
	out[o++] = '"';
	for (; *s && o < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < ' ' || c >= 0x7f) { /* control and 8-bit bytes */
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (*s)
		o += (size_t)snprintf(out + o, 4, "...");
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
