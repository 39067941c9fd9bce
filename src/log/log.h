/*
 * log: one line per event, as key=value pairs. Every line names its
 * session (session=ID) or message (queue=ID) so one grep follows one
 * message. Values with spaces or quotes must go through log_q().
 *
 *   log_info("session=%s event=connect ip=%s", s->id, s->ip);
 *
 * Where lines go ([server] log, log_format, log_level; docs/logging.md):
 * - stderr, as "TIME level=L k=v ..." text or one JSON object per line
 *   (log_json.h). When stderr is connected to the systemd journal
 *   (JOURNAL_STREAM names it), each line starts with the sd-daemon
 *   priority prefix "<N>" so the journal records the right priority.
 * - syslog (facility mail), the same text without time and level, or the
 *   JSON object; the priority carries the level.
 *
 * Thread-safe: each line is written with a single write(2) (or one
 * syslog(3) call), so lines from several threads never interleave, and
 * log_setup() may run while other threads log.
 */
#ifndef POSTHORN_LOG_H
#define POSTHORN_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };
enum log_dest { LOG_TO_STDERR, LOG_TO_SYSLOG };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Where and how lines go from now on; the journal is detected here. */
void log_setup(enum log_dest dest, enum log_format format, enum log_level level);
void log_set_level(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_err(...)   log_write(LOG_ERR, __VA_ARGS__)

/* Start-up or environment failure: log at error level and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Quote a value for a log line: returns a pointer to a thread-local buffer
 * (one of four, rotated, so up to four log_q() calls fit in one log line)
 * holding the value in double quotes with \" \\ escaped and control and 8-bit
 * bytes as \xNN (a log line is ASCII), cut at 200 bytes. Plain tokens are
 * returned unquoted.
 */
const char *log_q(const char *s);

/*
 * A failure that repeats (a database down, and a job that tries it every
 * second): its first occurrence is logged, then at most one line per
 * LOG_REPEAT_MS, which says how many were not (repeated=N), and one line
 * when it ends. A zeroed struct log_repeat per source, used by one thread
 * at a time.
 *
 *	unsigned long long n;
 *	if (failed && log_repeat_fail(&w->rep, &n))
 *		log_err("event=x_error error=%s repeated=%llu", log_q(err), n);
 *	else if (!failed && log_repeat_ok(&w->rep, &n))
 *		log_info("event=x_ok failures=%llu", n);
 */
#define LOG_REPEAT_MS 60000
struct log_repeat {
	unsigned long long last_ms;  /* monotonic, the last line logged; 0: none */
	unsigned long long skipped;  /* failures since then, not logged */
	unsigned long long failures; /* since the last success */
};
/* 1: log this failure, *skipped how many were not logged before it. */
int log_repeat_fail(struct log_repeat *r, unsigned long long *skipped);
/* 1 after failures (log that it works again), *failures how many. */
int log_repeat_ok(struct log_repeat *r, unsigned long long *failures);

/* "debug", "info", "warning", "error". */
const char *log_level_name(enum log_level level);

#endif
