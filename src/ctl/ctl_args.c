/*
 * ctl_args: the arguments of a queue request on the control socket, and
 * of the matching CLI commands: "all", "domain D", or one or more queue
 * IDs separated by single spaces. PURE (libc and util): the bytes come
 * from a socket, so they are checked here, unit-tested and fuzzed
 * (fuzz/fuzz_ctl_args.c), and nothing else parses them.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "util/util.h"

static int fail(char **why, const char *text)
{
	*why = xstrdup(text);
	return -1;
}

/* A domain as the filters take it: printable, no space, not empty. */
static int domain_ok(const char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > CTL_DOMAIN_MAX)
		return 0;
	for (; *d; d++)
		if ((unsigned char)*d <= ' ' || (unsigned char)*d >= 0x7f)
			return 0;
	return 1;
}

static int parse_ids(const char *s, struct ctl_args *out, char **why)
{
	const char *p = s;

	while (*p) {
		const char *sp = strchr(p, ' ');
		size_t n = sp ? (size_t)(sp - p) : strlen(p);
		char id[ID_LEN + 1];
		if (n != ID_LEN)
			return fail(why, "expected queue IDs, \"all\" or \"domain D\"");
		memcpy(id, p, ID_LEN);
		id[ID_LEN] = '\0';
		if (!id_valid(id))
			return fail(why, "expected queue IDs, \"all\" or \"domain D\"");
		if (out->n_ids == CTL_IDS_MAX)
			return fail(why, "too many queue IDs in one request");
		out->ids = xrealloc(out->ids, (out->n_ids + 1) * sizeof(*out->ids));
		out->ids[out->n_ids++] = xstrdup(id);
		p += n;
		if (*p == ' ' && !*++p)
			return fail(why, "a space at the end");
	}
	return 0;
}

int ctl_args_parse(const char *s, struct ctl_args *out, char **why)
{
	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return fail(why, "nothing named: queue IDs, \"all\" or \"domain D\"");
	if (!strcmp(s, "all")) {
		out->all = 1;
		return 0;
	}
	if (!strncmp(s, "domain ", 7)) {
		if (!domain_ok(s + 7))
			return fail(why, "not a domain");
		out->domain = xstrdup(s + 7);
		return 0;
	}
	if (parse_ids(s, out, why) < 0) {
		ctl_args_free(out);
		return -1;
	}
	return 0;
}

void ctl_args_free(struct ctl_args *a)
{
	size_t i;

	for (i = 0; i < a->n_ids; i++)
		free(a->ids[i]);
	free(a->ids);
	free(a->domain);
	memset(a, 0, sizeof(*a));
}

void ctl_args_format(const struct ctl_args *a, struct buf *out)
{
	size_t i;

	if (a->all)
		buf_puts(out, "all");
	else if (a->domain)
		buf_printf(out, "domain %s", a->domain);
	for (i = 0; !a->all && !a->domain && i < a->n_ids; i++)
		buf_printf(out, "%s%s", i ? " " : "", a->ids[i]);
}
