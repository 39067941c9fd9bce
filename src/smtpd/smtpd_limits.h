/*
 * smtpd_limits: how the listener's limits see clients. PURE (libc and
 * util only), unit-tested without sockets.
 *
 * - Address keys: the unit a per-address limit counts. An IPv4 address
 *   counts alone; an IPv6 address by its /64 (the smallest block a site
 *   or a customer is usually given, so walking through one's own /64
 *   does not escape a per-address cap); an IPv4-mapped IPv6 address (an
 *   IPv4 client of a dual-stack socket) as the IPv4 address it is.
 * - Per-address counts: a growing table (util/htable) of keys with a
 *   count, an entry only while its count is above zero.
 * - Stress: when a listener is under stress (SPEC §3).
 */
#ifndef POSTHORN_SMTPD_LIMITS_H
#define POSTHORN_SMTPD_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/htable.h"

/* family (4 or 6, 0 for anything else), then the IPv4 address or the
 * first 64 bits of the IPv6 address, zero-padded */
#define SMTPD_ADDR_KEY_LEN 9

struct smtpd_addr_key {
	unsigned char b[SMTPD_ADDR_KEY_LEN];
};

void smtpd_addr_key(const struct sockaddr *sa, struct smtpd_addr_key *k);

/* The key as text for a log line: "192.0.2.1" or "2001:db8:1:2::/64". */
void smtpd_addr_key_text(const struct smtpd_addr_key *k, char *out, size_t cap);

/* Counts per address key. */
struct smtpd_addr_counts {
	struct htable t;
};

void smtpd_addr_counts_init(struct smtpd_addr_counts *c);
/* Frees every entry. */
void smtpd_addr_counts_fini(struct smtpd_addr_counts *c);
uint64_t smtpd_addr_count(const struct smtpd_addr_counts *c, const struct smtpd_addr_key *k);
void smtpd_addr_count_inc(struct smtpd_addr_counts *c, const struct smtpd_addr_key *k);
/* The count must be above zero; at zero the entry goes. */
void smtpd_addr_count_dec(struct smtpd_addr_counts *c, const struct smtpd_addr_key *k);
/* Keys with a count above zero. */
size_t smtpd_addr_counts_size(const struct smtpd_addr_counts *c);

/* Stress mode: a listener whose untrusted connections n reach 80 % of its
 * max_connections is under stress until they fall below 70 % (the gap
 * keeps it from flapping at the threshold). Returns the new state. */
int smtpd_stress_next(int stressed, uint64_t n, uint64_t max);

/* Under stress, the idle timeout of a session that has not sent MAIL (nor
 * authenticated, nor come from a trusted network) shrinks to this. */
#define SMTPD_STRESS_TIMEOUT_S 10

#endif
