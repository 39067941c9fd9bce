/*
 * smtpd_limits: address keys, per-address counts and the stress rule
 * (see smtpd_limits.h). PURE: libc and util only.
 */
#include "smtpd/smtpd_limits.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct addr_entry {
	struct htable_node hn;
	struct smtpd_addr_key key;
	uint64_t n;
};

void smtpd_addr_key(const struct sockaddr *sa, struct smtpd_addr_key *k)
{
	const unsigned char *a6;

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET) {
		k->b[0] = 4;
		memcpy(k->b + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		a6 = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a6)) {
			k->b[0] = 4;
			memcpy(k->b + 1, a6 + 12, 4);
		} else {
			k->b[0] = 6;
			memcpy(k->b + 1, a6, 8);
		}
	}
}

void smtpd_addr_key_text(const struct smtpd_addr_key *k, char *out, size_t cap)
{
	unsigned char a6[16] = {0};
	char text[INET6_ADDRSTRLEN];

	if (k->b[0] == 4 && inet_ntop(AF_INET, k->b + 1, text, sizeof(text))) {
		snprintf(out, cap, "%s", text);
		return;
	}
	memcpy(a6, k->b + 1, 8);
	if (k->b[0] == 6 && inet_ntop(AF_INET6, a6, text, sizeof(text)))
		snprintf(out, cap, "%s/64", text);
	else
		snprintf(out, cap, "unknown");
}

static int entry_match(const struct htable_node *n, const void *key)
{
	return memcmp(&HTABLE_ENTRY(n, struct addr_entry, hn)->key, key,
	              sizeof(struct smtpd_addr_key)) == 0;
}

static struct addr_entry *entry_find(const struct smtpd_addr_counts *c,
                                     const struct smtpd_addr_key *k, uint64_t h)
{
	struct htable_node *n = htable_find(&c->t, h, entry_match, k);

	return n ? HTABLE_ENTRY(n, struct addr_entry, hn) : NULL;
}

void smtpd_addr_counts_init(struct smtpd_addr_counts *c)
{
	htable_init(&c->t);
}

void smtpd_addr_counts_fini(struct smtpd_addr_counts *c)
{
	struct htable_iter it;
	struct htable_node *n;

	htable_iter_init(&it, &c->t);
	while ((n = htable_iter_next(&it))) {
		htable_del(&c->t, n);
		free(HTABLE_ENTRY(n, struct addr_entry, hn));
	}
	htable_fini(&c->t);
}

uint64_t smtpd_addr_count(const struct smtpd_addr_counts *c, const struct smtpd_addr_key *k)
{
	struct addr_entry *e = entry_find(c, k, htable_hash(k, sizeof(*k)));

	return e ? e->n : 0;
}

void smtpd_addr_count_inc(struct smtpd_addr_counts *c, const struct smtpd_addr_key *k)
{
	uint64_t h = htable_hash(k, sizeof(*k));
	struct addr_entry *e = entry_find(c, k, h);

	if (!e) {
		e = xcalloc(1, sizeof(*e));
		e->key = *k;
		htable_add(&c->t, &e->hn, h);
	}
	e->n++;
}

void smtpd_addr_count_dec(struct smtpd_addr_counts *c, const struct smtpd_addr_key *k)
{
	struct addr_entry *e = entry_find(c, k, htable_hash(k, sizeof(*k)));

	assert(e && e->n > 0); /* a count that was never taken: the caller's bug */
	if (--e->n == 0) {
		htable_del(&c->t, &e->hn);
		free(e);
	}
}

size_t smtpd_addr_counts_size(const struct smtpd_addr_counts *c)
{
	return htable_count(&c->t);
}

int smtpd_stress_next(int stressed, uint64_t n, uint64_t max)
{
	if (!stressed)
		return n * 10 >= max * 8;
	return n * 10 >= max * 7;
}
