/*
 * cli_int.h: what the files of src/cli/ share and nobody else uses:
 * printing values that came from the network, times, and the JSON forms
 * of queue entries (their field names are documented in docs/cli.md).
 */
#ifndef POSTHORN_CLI_INT_H
#define POSTHORN_CLI_INT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "spool/spool.h"
#include "util/util.h"

/* Appends s with control bytes, DEL and backslash (and, with high, bytes
 * above 0x7F) as \xHH, so that one value stays on one line. */
void cli_escape(struct buf *b, const char *s, int high);
/* Writes s to f the same way (high bytes as they are). */
void cli_put_safe(FILE *f, const char *s);
/* A JSON string of s: as is when it is UTF-8, escaped as above if not
 * (jansson refuses invalid UTF-8). NULL s gives JSON null. */
json_t *cli_json_str(const char *s);

/* Unix seconds as "2025-11-28T00:00:00Z" (UTC) into out (at least 32 bytes). */
const char *cli_time(int64_t t, char *out, size_t cap);

/* 1 if the recipient is still to be delivered (rcpt_is_open). */
int cli_rcpt_open(const struct rcpt *r);

/* {"address", "state" (rcpt_state_shown), "attempts", "next_attempt",
 * "last_reply"}; with all, also "notify", "orcpt", "held_since" and
 * "held_seconds". */
json_t *cli_json_rcpt(const struct rcpt *r, int all);

/* {"id", "size", "arrival", "sender", "account"}: what list and show share. */
json_t *cli_json_message(const struct envelope *e);

/* `queue list` (cli_queue_list.c), a leaf of cli_queue.c's tree. */
struct conf;
int cli_queue_list(int argc, char **argv, const struct conf *c);

/* `queue hold|release|delete` (cli_steer.c): op on what a names, through
 * a running server or on its stopped spool; the exit code. */
struct ctl_args;
int cli_steer(const struct conf *c, enum spool_op op, const struct ctl_args *a);
/* A stopped server's spool, locked against a server starting meanwhile
 * (spool_lock), for a command that changes it; NULL after saying why. */
struct spool *cli_spool_locked(const struct conf *c);

/* The paused destinations of c's data directory, in words for a listing
 * ("example.com, other.example", "every destination"), or NULL when none
 * is paused; malloc'd. */
char *cli_paused_text(const struct conf *c);

/* Writes one JSON value on one line to stdout. 0 ok, CLI_RUNTIME. */
int cli_json_print(json_t *v);

#endif
