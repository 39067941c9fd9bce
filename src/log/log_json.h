/*
 * log_json: turns one key=value log line into one JSON object (PURE: libc
 * and util only; fuzzed by fuzz/fuzz_log_json.c).
 *
 * Input: the fields of a line as log.c writes them, "k=v k2=\"quoted\" ...",
 * values quoted as log_q() quotes them (\" \\ \xHH inside double quotes).
 * Output: {"time":T,"level":L,"k":"v","k2":"quoted",...}: every value a
 * JSON string, members in the order of the line; words that are not
 * key=value are joined into a last member "msg". Bytes that are not UTF-8
 * come out as the text \xHH. The output always is one complete object on
 * one line: when it would not fit in cap bytes, the members that do not fit
 * are left out and "truncated":"yes" ends it.
 */
#ifndef POSTHORN_LOG_JSON_H
#define POSTHORN_LOG_JSON_H

#include <stddef.h>

/* The least cap log_json_line() accepts. */
#define LOG_JSON_MIN_CAP 256

/* Writes the object (NUL-terminated, no newline) into out; returns its
 * length. time and level must be short plain strings (under 64 bytes). */
size_t log_json_line(char *out, size_t cap, const char *time, const char *level,
                     const char *fields);

#endif
