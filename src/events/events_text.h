/*
 * events_text: the PURE text functions of events (events_text.c): UTF-8
 * cleaning of what peers and clients send, and times as RFC 3339. Only
 * libc and util, so the fuzz target links them alone.
 */
#ifndef POSTHORN_EVENTS_TEXT_H
#define POSTHORN_EVENTS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* n bytes of s with every invalid UTF-8 sequence and every NUL replaced
 * by U+FFFD, as a malloc'd NUL-terminated string (jansson takes only valid
 * UTF-8, and peers send what they like). */
char *events_utf8_clean(const char *s, size_t n);
/* 1 if the n bytes of s are valid UTF-8 without NUL (cleaning would
 * change nothing). */
int events_utf8_valid(const char *s, size_t n);

/* Unix milliseconds as RFC 3339 UTC with milliseconds,
 * "2026-01-02T03:04:05.678Z" (cap: at least 32 bytes). */
void events_time_format(int64_t ms, char *out, size_t cap);

/* A time given by a client: unix seconds ("1767312000"), a date
 * ("2026-01-02", midnight UTC) or RFC 3339 ("2026-01-02T03:04:05Z",
 * fractions and +hh:mm offsets allowed; a space stands for the '+' of an
 * offset). From 1970 to the end of 9999, UTC. 0 ok (*ms set), -1 not a time. */
int events_time_parse(const char *s, int64_t *ms);

#endif
