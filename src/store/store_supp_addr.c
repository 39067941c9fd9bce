/*
 * store_supp_addr: how a suppression list spells an address and a reason.
 * PURE (libc and util): unit-tested in tests/unit/test_store_supp.c and
 * fuzzed by fuzz/fuzz_supp_addr.c. The rules, and why, are in store.h.
 *
 * Everything here is bounded by the output buffers: an address above
 * SUPP_ADDRESS_MAX bytes is refused, a reason above SUPP_REASON_MAX is cut.
 * Both come out as valid UTF-8: an address that is not is refused, and a
 * reason's bad bytes become '?', so that every answer can be JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "util/util.h"

#define LOCAL_MAX 64 /* RFC 5321 4.5.3.1.1 */

/* Length of the UTF-8 character at p (1 for ASCII), or 0 when the bytes
 * there are not one (overlong, surrogate, above U+10FFFF, cut short). */
static size_t utf8_char(const unsigned char *p, size_t left)
{
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	uint32_t c;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
	if (n == 0 || n > left || p[0] > 0xf4)
		return 0;
	c = p[0] & (0x7fu >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3fu);
	}
	if (c < least[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

static int is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* 1 if s[0..n) is UTF-8 without control characters. */
static int clean_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (is_control(p[i]) || (k = utf8_char(p + i, n - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* RFC 5322 atext, and any byte of a UTF-8 character (RFC 6531). */
static int is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c >= 0x80 || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 Dot-string: atoms joined by single dots. */
static int dot_string(const char *p, size_t n)
{
	if (n == 0 || p[0] == '.' || p[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '.' ? p[i + 1] == '.' : !is_atext((unsigned char)p[i]))
			return 0;
	return 1;
}

/* A quoted local part p[0..n) whose content, escapes undone, is a
 * dot-string: that content in out, and its length. Otherwise 0: the
 * quotes are needed (or the quoting is broken) and the part stays as it is. */
static size_t unquote(const char *p, size_t n, char *out)
{
	size_t k = 0;

	if (n < 2 || p[0] != '"' || p[n - 1] != '"')
		return 0;
	for (size_t i = 1; i < n - 1; i++) {
		if (p[i] == '\\' && i + 1 < n - 1)
			i++;
		else if (p[i] == '\\' || p[i] == '"')
			return 0;
		out[k++] = p[i];
	}
	return dot_string(out, k) ? k : 0;
}

/* A local part is quoted ("...") or made of atext and dots: never
 * spaces or brackets, which the stripping below would take off. */
static int local_ok(const char *p, size_t n)
{
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"')
		return 1;
	for (size_t i = 0; i < n; i++)
		if (p[i] != '.' && !is_atext((unsigned char)p[i]))
			return 0;
	return 1;
}

/* A domain is a name (letters, digits, '-', '_', '.', UTF-8) or an
 * address literal ([192.0.2.1], [IPv6:...]) of printable characters. */
static int domain_ok(const char *p, size_t n)
{
	int literal = n >= 2 && p[0] == '[' && p[n - 1] == ']';

	for (size_t i = literal; i < n - literal; i++) {
		unsigned char c = (unsigned char)p[i];
		if (literal ? (c <= ' ' || c > '~' || strchr("[]\\", c))
		            : !(c >= 0x80 || strchr("-_.", c) || (c >= '0' && c <= '9') ||
		                (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return 0;
	}
	return 1;
}

static int refuse(const char **why, const char *what)
{
	if (why)
		*why = what;
	return -1;
}

/* Drops surrounding spaces and one pair of angle brackets (and the
 * spaces inside them): [*p, *end). */
static void strip(const char **p, const char **end)
{
	*end = *p + strlen(*p);
	for (int round = 0; round < 2; round++) {
		while (*end > *p && (**p == ' ' || **p == '\t'))
			(*p)++;
		while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
			(*end)--;
		if (round == 0 && *end - *p >= 2 && **p == '<' && (*end)[-1] == '>') {
			(*p)++;
			(*end)--;
		}
	}
}

int store_supp_normalize(const char *addr, char display[SUPP_ADDRESS_MAX + 1],
                         char key[SUPP_ADDRESS_MAX + 1], const char **why)
{
	const char *p = addr, *end, *at;
	char local[LOCAL_MAX];
	size_t ln, dn, k;

	strip(&p, &end);
	if (!clean_utf8(p, (size_t)(end - p)))
		return refuse(why, "control characters or bytes that are not UTF-8");
	if (!(at = memrchr(p, '@', (size_t)(end - p))))
		return refuse(why, "no '@'");
	ln = (size_t)(at - p);
	dn = (size_t)(end - at - 1);
	while (dn > 1 && at[dn] == '.')
		dn--; /* example.com. is example.com */
	if (ln == 0 || dn == 0)
		return refuse(why, ln == 0 ? "empty local part" : "empty domain");
	if (ln > LOCAL_MAX)
		return refuse(why, "local part longer than 64 bytes");
	if (!local_ok(p, ln))
		return refuse(why, "spaces or special characters in an unquoted local part");
	if (!domain_ok(at + 1, dn))
		return refuse(why, "spaces or special characters in the domain");
	if (!(k = unquote(p, ln, local)))
		memcpy(local, p, k = ln);
	if (k + 1 + dn > SUPP_ADDRESS_MAX)
		return refuse(why, "longer than 254 bytes");
	memcpy(display, local, k);
	display[k] = '@';
	memcpy(display + k + 1, at + 1, dn);
	display[k + 1 + dn] = '\0';
	ascii_lower(display + k + 1);
	memcpy(key, display, k + 2 + dn);
	ascii_lower(key);
	return 0;
}

void store_supp_reason_clean(const char *reason, char out[SUPP_REASON_MAX + 1])
{
	const unsigned char *p = (const unsigned char *)(reason ? reason : "");
	size_t n = 0, left = strlen((const char *)p), k;

	while (left && (*p == ' ' || is_control(*p)))
		p++, left--;
	while (left) {
		k = utf8_char(p, left);
		if (n + (k ? k : 1) > SUPP_REASON_MAX)
			break; /* whole characters only */
		if (k == 0 || (k == 1 && is_control(*p)))
			out[n++] = k ? ' ' : '?';
		else
			memcpy(out + n, p, k), n += k;
		p += k ? k : 1;
		left -= k ? k : 1;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, SUPP_REASON_MAX + 1, "%s", SUPP_REASON_MANUAL);
}
