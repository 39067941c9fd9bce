/*
 * deliv_verp: making and checking VERP return paths. PURE (libc, util,
 * libsodium's HMAC-SHA256). Contract in deliv_verp.h.
 */
#include "deliv/deliv_verp.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
/* util.c's queue ID alphabet: 5 bits a character, the time first. */
static const char id_alpha[] = "0123456789ABCDEFGHJKLMNPQRSTVWXY";
#define ID_TIME_CHARS 9

static char upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

void deliv_verp_hash(const unsigned char key[DELIV_VERP_KEY_LEN], const char *id,
                     char out[DELIV_VERP_HASH_LEN + 1])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char up[ID_LEN];
	uint64_t bits = 0;

	for (size_t i = 0; i < ID_LEN; i++)
		up[i] = upper(id[i]);
	crypto_auth_hmacsha256(mac, (const unsigned char *)up, ID_LEN, key);
	for (size_t i = 0; i < 8; i++)
		bits = bits << 8 | mac[i];
	bits >>= 4; /* the first 60 bits */
	for (int i = DELIV_VERP_HASH_LEN - 1; i >= 0; i--, bits >>= 5)
		out[i] = b32[bits & 31];
	out[DELIV_VERP_HASH_LEN] = '\0';
}

void deliv_verp_make(const unsigned char key[DELIV_VERP_KEY_LEN], const char *id,
                     const char *domain, char out[DELIV_VERP_MAX])
{
	char hash[DELIV_VERP_HASH_LEN + 1];

	deliv_verp_hash(key, id, hash);
	snprintf(out, DELIV_VERP_MAX, "%s%.*s=%s@%.253s", DELIV_VERP_PREFIX, ID_LEN, id, hash,
	         domain);
}

int64_t deliv_id_time(const char *id)
{
	uint64_t ms = 0;

	for (size_t i = 0; i < ID_LEN; i++) {
		const char *p = id[i] ? strchr(id_alpha, upper(id[i])) : NULL;
		if (!p)
			return -1;
		if (i < ID_TIME_CHARS)
			ms = ms << 5 | (uint64_t)(p - id_alpha);
	}
	return id[ID_LEN] ? -1 : (int64_t)(ms / 1000);
}

/* 1 if the domain part of addr (after its last '@') is domain, in any
 * case, with or without a trailing dot. *at: the '@'. */
static int at_domain(const char *addr, const char *domain, const char **at)
{
	size_t n, dn = strlen(domain);

	*at = strrchr(addr, '@');
	if (!*at)
		return 0;
	n = strlen(*at + 1);
	if (n == dn + 1 && (*at)[1 + dn] == '.')
		n = dn;
	return n == dn && ascii_ncasecmp(*at + 1, domain, dn) == 0;
}

/* Constant time in the hash: no early exit on the first difference. */
static int hash_equal(const char *a, const char *b)
{
	unsigned char d = 0;

	for (size_t i = 0; i < DELIV_VERP_HASH_LEN; i++)
		d |= (unsigned char)(lower(a[i]) ^ b[i]);
	return d == 0;
}

/* Splits local part [addr, at) into id (upper case) and hash; -1 when it
 * is not shaped like ours. */
static int split_local(const char *addr, const char *at, char id[ID_LEN + 1], const char **hash)
{
	size_t plen = strlen(DELIV_VERP_PREFIX);

	if ((size_t)(at - addr) != DELIV_VERP_LOCAL_LEN ||
	    ascii_ncasecmp(addr, DELIV_VERP_PREFIX, plen) != 0 || addr[plen + ID_LEN] != '=')
		return -1;
	for (size_t i = 0; i < ID_LEN; i++)
		id[i] = upper(addr[plen + i]);
	id[ID_LEN] = '\0';
	*hash = addr + plen + ID_LEN + 1;
	for (size_t i = 0; i < DELIV_VERP_HASH_LEN; i++)
		if (!(*hash)[i] || !strchr(b32, lower((*hash)[i])))
			return -1;
	return deliv_id_time(id) < 0 ? -1 : 0;
}

enum deliv_verp_kind deliv_verp_check(const unsigned char key[DELIV_VERP_KEY_LEN],
                                      const char *domain, const char *addr, int64_t now,
                                      uint64_t max_age, char id[ID_LEN + 1])
{
	char want[DELIV_VERP_HASH_LEN + 1];
	const char *at, *hash;
	int64_t born;

	if (!domain || !*domain || !at_domain(addr, domain, &at))
		return DELIV_VERP_OTHER;
	if (split_local(addr, at, id, &hash) < 0)
		return DELIV_VERP_NOT_VERP;
	deliv_verp_hash(key, id, want);
	if (!hash_equal(hash, want))
		return DELIV_VERP_FORGED;
	born = deliv_id_time(id);
	if (max_age && now - born > (int64_t)max_age)
		return DELIV_VERP_EXPIRED;
	return DELIV_VERP_VALID;
}
