/*
 * log: one line per event on stderr, as key=value pairs. Every line names
 * its session (session=ID) or message (queue=ID) so one grep follows one
 * message. Values with spaces or quotes must go through log_q().
 *
 *   log_info("session=%s event=connect ip=%s", s->id, s->ip);
 *
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef POSTHORN_LOG_H
#define POSTHORN_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

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

#endif
