/*
 * log: key=value lines to stderr or syslog, as text or JSON. Each line is
 * built in a local buffer and written with one write(2) (or one syslog()
 * call), so lines from several threads never interleave. The settings are
 * atomics: a SIGHUP may change them while workers log.
 */
#include "log/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/log_json.h"
#include "log/log_syslog.h"
#include "util/util.h"

#define FIELDS_MAX 2048 /* the key=value part of a line */
#define LINE_MAX_  (4 * FIELDS_MAX)

static _Atomic int min_level = LOG_INFO;
static _Atomic int cur_dest = LOG_TO_STDERR;
static _Atomic int cur_format = LOG_FORMAT_TEXT;
static _Atomic int journal; /* stderr is the systemd journal */
static const char *const level_names[] = {"debug", "info", "warning", "error"};

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < ARRAY_LEN(level_names) ? level_names[level] : "error";
}

/* systemd.exec(5): JOURNAL_STREAM is "DEV:INODE" of the journal stream
 * given as stdout/stderr; it counts only if fd 2 still is that stream. */
static int stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2 || fstat(2, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(enum log_dest d, enum log_format f, enum log_level level)
{
	if (d == LOG_TO_SYSLOG && atomic_load(&cur_dest) != LOG_TO_SYSLOG)
		log_syslog_open(1);
	else if (d != LOG_TO_SYSLOG && atomic_load(&cur_dest) == LOG_TO_SYSLOG)
		log_syslog_open(0);
	atomic_store(&journal, stderr_is_journal());
	atomic_store(&cur_format, f);
	atomic_store(&min_level, level);
	atomic_store(&cur_dest, d);
}

void log_set_level(enum log_level level)
{
	atomic_store(&min_level, level);
}

static void put_stderr(const char *line, size_t n)
{
	if (write(2, line, n) < 0) {
		/* stderr gone: nowhere left to report it */
	}
}

/* The line for stderr: [<N>]TIME level=L fields, or [<N>]{json}, then LF. */
static size_t stderr_line(char *out, size_t cap, int level, const char *stamp, const char *fields)
{
	size_t n = 0;

	if (atomic_load(&journal))
		n = (size_t)snprintf(out, cap, "<%d>", log_syslog_priority(level));
	if (atomic_load(&cur_format) == LOG_FORMAT_JSON)
		n += log_json_line(out + n, cap - n - 1, stamp, level_names[level], fields);
	else
		n += (size_t)snprintf(out + n, cap - n - 1, "%s level=%s %s", stamp,
		                      level_names[level], fields);
	if (n > cap - 2)
		n = cap - 2; /* cut, but keep the newline */
	out[n++] = '\n';
	return n;
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char fields[FIELDS_MAX], line[LINE_MAX_], stamp[96];
	struct timespec ts;
	struct tm tm;

	if (vsnprintf(fields, sizeof(fields), fmt, ap) < 0)
		fields[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(ts.tv_nsec / 1000000));
	if (atomic_load(&cur_dest) != LOG_TO_SYSLOG) {
		put_stderr(line, stderr_line(line, sizeof(line), level, stamp, fields));
	} else if (atomic_load(&cur_format) == LOG_FORMAT_JSON) {
		log_json_line(line, sizeof(line), stamp, level_names[level], fields);
		log_syslog_line(level, line);
	} else {
		log_syslog_line(level, fields);
	}
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level < atomic_load(&min_level))
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

int log_repeat_fail(struct log_repeat *r, unsigned long long *skipped)
{
	unsigned long long now = clock_mono_ms();

	r->failures++;
	if (r->last_ms && now - r->last_ms < LOG_REPEAT_MS) {
		r->skipped++;
		return 0;
	}
	*skipped = r->skipped;
	r->skipped = 0;
	r->last_ms = now ? now : 1;
	return 1;
}

int log_repeat_ok(struct log_repeat *r, unsigned long long *failures)
{
	*failures = r->failures;
	if (!r->failures)
		return 0;
	memset(r, 0, sizeof(*r));
	return 1;
}
