/*
 * spool_format: the bytes of a spool file, encoded and decoded, and no I/O.
 * PURE (libc, util, and libsodium's BLAKE2b for the checksums: a function,
 * no I/O), so that tests/unit/test_spool.c and fuzz/fuzz_spool_format.c
 * drive it without a file system. spool_read.c feeds it what it reads;
 * spool.c and spool_commit.c encode with it. docs/spool.md is the
 * reference for the layout; keep the three in step.
 *
 * A spool file is input like any other: a disk error, a restore from a
 * backup or an operator can hand the relay any bytes. So every decoder
 * here takes arbitrary bytes without crashing, overreading or allocating
 * more than a small multiple of its input, and says why it refuses.
 * Everything an encoder accepts, the matching decoder gives back:
 * decode(encode(x)) == x, field by field (NULL and "" stay distinct; a
 * NULL sender or recipient address is written as ""; a remote reply over
 * SPOOL_FIELD_MAX bytes is cut, as documented).
 */
#ifndef POSTHORN_SPOOL_FORMAT_H
#define POSTHORN_SPOOL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"
#include "util/util.h"

/* File layout. Bump SPOOL_VERSION on any change of layout or of a
 * record's syntax; a reader rejects (quarantines) versions it lacks.
 * Version 2 adds to version 1 a variable body_off: room between the header
 * and the message (the front) where header fields added at accept (DKIM
 * signatures, List-Unsubscribe) are written in front of the message's
 * bytes without copying them. A file written without a front (body_off =
 * SPOOL_HDR_SIZE) is still marked version 1, so that its readers are as
 * many as can be. Version 3 adds to version 2's layout the steering
 * record ("S": hold, release, delete); new files are never written as
 * version 3: a file of version 1 or 2 is marked version 3 before its first
 * steering record is appended, so that a reader without steering
 * quarantines it rather than deliver what an operator held or deleted.
 * Readers take versions 1 to 3. docs/spool.md has the layout. */
#define SPOOL_MAGIC         "PHSPOOL" /* 7 bytes + NUL = the first 8 bytes */
#define SPOOL_VERSION       3
#define SPOOL_VERSION_MIN   1
#define SPOOL_VERSION_FRONT 2 /* the first version with a variable body_off */
#define SPOOL_VERSION_STEER 3 /* the first version with steering records */
#define SPOOL_HDR_SIZE      128
#define SPOOL_F_COMPLETE    1u
#define SPOOL_CHECK_LEN     16 /* BLAKE2b-128: bytes of a checksum */
#define SPOOL_CHECK_HEX     (2 * SPOOL_CHECK_LEN)

/* The front (version 2): a message that may get header fields in front of
 * it has its bytes written from SPOOL_FRONT on (the header's block holds
 * the fields; the rest of it is never read). Fields that do not fit move
 * the message to a larger front (a copy, spool_front.c). A reader takes a
 * body_off up to SPOOL_BODY_OFF_MAX; SPOOL_PREPEND_MAX bounds the fields
 * (8 signatures of a 256 KiB header section fit). */
#define SPOOL_FRONT        4096
#define SPOOL_PREPEND_MAX  (4u << 20)
#define SPOOL_BODY_OFF_MAX (8u << 20)

/* Bounds. A corrupt length must never make a reader allocate much more than
 * the file holds, and no line may make it buffer without limit. */
#define SPOOL_FIELD_MAX 4096         /* decoded bytes of any string field */
#define SPOOL_LINE_MAX  65536        /* bytes of any record line */
#define SPOOL_RCPT_MAX  1000000u     /* recipients of one message */
#define SPOOL_ENV_MAX   (256u << 20) /* bytes of an envelope record */

/* The fixed header at offset 0 (little-endian on disk). */
struct spool_hdr {
	uint32_t version;
	uint32_t flags;
	uint64_t body_off;
	uint64_t body_len;
	uint64_t env_off;
	uint64_t env_len;
	uint32_t n_rcpts;
};

/* BLAKE2b-128 of p[0..n). */
void spool_check(const void *p, size_t n, unsigned char out[SPOOL_CHECK_LEN]);

/* Header. Decode: 0, or -1 and *reason (malloc'd) for bad magic, an
 * unknown version, a bad checksum, a clear complete flag, or lengths that
 * do not describe the layout of its version (version 1: body_off is
 * SPOOL_HDR_SIZE; versions 2 and 3: from SPOOL_HDR_SIZE to
 * SPOOL_BODY_OFF_MAX). */
void spool_hdr_encode(const struct spool_hdr *h, unsigned char out[SPOOL_HDR_SIZE]);
int spool_hdr_decode(const unsigned char in[SPOOL_HDR_SIZE], struct spool_hdr *h, char **reason);
/* 0 if a file of fsize bytes holds everything h describes; -1 and *reason. */
int spool_hdr_fits(const struct spool_hdr *h, uint64_t fsize, char **reason);

/* Envelope record. Encode appends to out; -1 and *reason for what the
 * decoder would refuse (a field over SPOOL_FIELD_MAX, no account, too many
 * recipients), and out is then as it was. Decode: the record's bytes, the
 * ID it must carry (the file's name) and the header's recipient count; 0
 * and *out (free with envelope_free), or -1 and *reason. */
int spool_env_encode(const struct envelope *e, const char *id, uint64_t size, struct buf *out,
                     char **reason);
int spool_env_decode(const char *p, size_t n, const char *id, uint32_t n_rcpts,
                     struct envelope **out, char **reason);

/* One recipient state record, "\nR IDX STATE ATTEMPTS NEXT REPLY CHECK\n",
 * appended to out. */
void spool_rcpt_encode(size_t idx, const struct rcpt *r, struct buf *out);
/* One steering record, "\nS IDX HELD_SINCE HELD_SECS DELETED CHECK\n"
 * (version 3), appended to out: r's steering fields only. */
void spool_steering_encode(size_t idx, const struct rcpt *r, struct buf *out);
/* Applies one record line (without its '\n'), a state record or a
 * steering record, to e: 0 applied, -1 not a valid record (torn, damaged or out of
 * range), e unchanged. */
int spool_rcpt_apply(const char *line, size_t n, struct envelope *e);
const char *spool_state_name(enum rcpt_state s);

/*
 * The state records after the envelope, streamed: feed the bytes in pieces
 * of any size; each complete line is applied to e (or skipped, counted).
 * A line over SPOOL_LINE_MAX is skipped without being buffered, so memory
 * stays bounded whatever the file holds. A last line without its '\n' is a
 * record torn by a crash: never applied (spool_records_torn says so).
 */
struct spool_records {
	struct envelope *e;
	struct buf line;
	int overlong; /* the current line passed SPOOL_LINE_MAX: skip it */
	size_t applied, skipped;
};
void spool_records_init(struct spool_records *r, struct envelope *e);
void spool_records_feed(struct spool_records *r, const char *p, size_t n);
int spool_records_torn(const struct spool_records *r);
void spool_records_free(struct spool_records *r);

/*
 * The deletion journal (spool_journal.c): one line per recipient dropped
 * by `queue delete` while no server ran, "deleted TIME ID IDX ADDR\n"
 * (ADDR a token, as above). Decode takes the line without its '\n': 0
 * and *out (free out->addr), or -1 for anything else.
 */
struct spool_journal_line {
	int64_t when;
	char id[ID_LEN + 1];
	size_t idx;
	char *addr;
};
void spool_journal_encode(int64_t when, const char *id, size_t idx, const char *addr,
                          struct buf *out);
int spool_journal_decode(const char *line, size_t n, struct spool_journal_line *out);

#endif
