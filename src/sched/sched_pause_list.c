/*
 * sched_pause_list: the list of paused destinations, and the bytes of the
 * file that keeps it (DATA_DIR/paused). PURE (libc and util): the file is
 * input like any other, so its parser takes any bytes, skips (and counts)
 * what is not a destination name, and is fuzzed (fuzz/fuzz_sched_pauses.c).
 *
 * The file: one destination a line, in the normal form of
 * sched_pause_name(); "*" pauses every destination; blank lines and lines
 * starting with '#' are comments.
 */
#include <stdlib.h>
#include <string.h>

#include "sched/sched_policy.h"
#include "util/util.h"

#define PAUSE_NAME_MAX 255

static int name_byte(unsigned char c, int literal)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')
		return 1;
	return literal ? c == ':' || c == '[' || c == ']' : c == '_';
}

int sched_pause_name(const char *in, char *out, size_t cap)
{
	size_t n = strlen(in), i;
	int literal = n > 0 && in[0] == '[';

	if (n > 1 && in[n - 1] == '.' && !literal)
		n--; /* the root */
	if (n == 0 || n > PAUSE_NAME_MAX || n + 1 > cap)
		return -1;
	if (literal && (n < 3 || in[n - 1] != ']'))
		return -1;
	if (!literal && in[n - 1] == '.')
		return -1; /* "a.." */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!name_byte(c, literal) ||
		    (!literal && c == '.' && (i == 0 || in[i - 1] == '.')))
			return -1;
		out[i] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static long find(const struct sched_pauses *ps, const char *name)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (!strcmp(ps->names[i], name))
			return (long)i;
	return -1;
}

int sched_pauses_has(const struct sched_pauses *ps, const char *name)
{
	return find(ps, name) >= 0;
}

int sched_paused(const struct sched_pauses *ps, const char *dest)
{
	return ps->all || sched_pauses_has(ps, dest);
}

int sched_pauses_add(struct sched_pauses *ps, const char *name)
{
	if (sched_pauses_has(ps, name))
		return 0;
	ps->names = xrealloc(ps->names, (ps->n + 1) * sizeof(*ps->names));
	ps->names[ps->n++] = xstrdup(name);
	qsort(ps->names, ps->n, sizeof(*ps->names), cmp_names);
	return 1;
}

int sched_pauses_del(struct sched_pauses *ps, const char *name)
{
	long i = find(ps, name);

	if (i < 0)
		return 0;
	free(ps->names[i]);
	memmove(&ps->names[i], &ps->names[i + 1], (ps->n - (size_t)i - 1) * sizeof(*ps->names));
	ps->n--;
	return 1;
}

void sched_pauses_free(struct sched_pauses *ps)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		free(ps->names[i]);
	free(ps->names);
	memset(ps, 0, sizeof(*ps));
}

/* One line, without its end: applied, or counted in *bad. */
static void parse_line(const char *p, size_t n, struct sched_pauses *ps, size_t *bad)
{
	char raw[PAUSE_NAME_MAX + 2], name[PAUSE_NAME_MAX + 1];

	while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	if (n == 0 || *p == '#')
		return;
	if (n == 1 && *p == '*') {
		ps->all = 1;
		return;
	}
	if (n >= sizeof(raw) || memchr(p, '\0', n)) {
		(*bad)++;
		return;
	}
	memcpy(raw, p, n);
	raw[n] = '\0';
	if (sched_pause_name(raw, name, sizeof(name)) < 0)
		(*bad)++;
	else
		sched_pauses_add(ps, name);
}

void sched_pauses_parse(const char *p, size_t n, struct sched_pauses *out, size_t *bad)
{
	memset(out, 0, sizeof(*out));
	*bad = 0;
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t len = nl ? (size_t)(nl - p) : n;
		parse_line(p, len, out, bad);
		p += len + (nl ? 1 : 0);
		n -= len + (nl ? 1 : 0);
	}
}

void sched_pauses_format(const struct sched_pauses *ps, struct buf *out)
{
	size_t i;

	buf_puts(out, "# Paused destinations (posthorn pause / posthorn resume), one a line.\n");
	if (ps->all)
		buf_puts(out, "*\n");
	for (i = 0; i < ps->n; i++)
		buf_printf(out, "%s\n", ps->names[i]);
}
