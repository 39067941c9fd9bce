/*
 * dkim_admin: keys as the operator handles them: loading them with their
 * records, making new ones (keygen, rotate), and the rotation step that a
 * record seen in DNS triggers. Blocking (store, files, key generation):
 * the CLI calls these directly, the server from a worker.
 *
 * Making a key: the file is written (durably) before the row is added, so
 * a row never names a missing file; if the row cannot be added, the file
 * is removed. A crash in between leaves an unused file, which the next
 * default selector steps over.
 */
#include "dkim/dkim.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkim/dkim_key.h"
#include "store/store.h"
#include "util/util.h"

#define NAME_MAX_DNS   253
#define SELECTOR_TRIES 16

void dkim_key_info_clear(struct dkim_key_info *k)
{
	free(k->domain);
	free(k->selector);
	free(k->key_path);
	free(k->pub);
	free(k->record);
	free(k->error);
	memset(k, 0, sizeof *k);
}

void dkim_key_info_free(struct dkim_key_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		dkim_key_info_clear(&v[i]);
	free(v);
}

/* A row as dkim_key_info, its public key derived from the key file. */
static void info_from_row(struct dkim_key_info *k, const struct store_dkim_key *r,
                          const char *data_dir)
{
	char *path = dkim_key_path(data_dir, r->key_path), *pem = NULL;
	int algo = dkim_algo_parse(r->algorithm), state = dkim_state_parse(r->state);

	memset(k, 0, sizeof *k);
	k->domain = xstrdup(r->domain);
	k->selector = xstrdup(r->selector);
	k->key_path = xstrdup(r->key_path);
	k->algo = algo < 0 ? DKIM_ALGO_RSA2048 : (enum dkim_algo)algo;
	k->state = state < 0 ? DKIM_STATE_RETIRED : (enum dkim_state)state;
	k->created = r->created;
	k->activated = r->activated;
	k->retired = r->retired;
	if (algo < 0 || state < 0)
		k->error =
		    xasprintf("unknown algorithm '%s' or state '%s'", r->algorithm, r->state);
	else if (dkim_key_read(path, &pem, &k->error) == 0 &&
	         dkim_key_derive(pem, k->algo, &k->pub, NULL, &k->error) == 0)
		k->record = dkim_record_text(k->algo, k->pub);
	dkim_key_wipe(pem);
	free(path);
}

int dkim_keys_load(struct store *st, const char *data_dir, const char *domain,
                   struct dkim_key_info **out, size_t *n, char **err)
{
	struct store_dkim_key *rows;
	size_t nr;

	*out = NULL;
	*n = 0;
	if (store_dkim_list(st, domain, NULL, &rows, &nr, err) < 0)
		return -1;
	*out = xcalloc(nr ? nr : 1, sizeof **out);
	for (size_t i = 0; i < nr; i++)
		info_from_row(&(*out)[i], &rows[i], data_dir);
	*n = nr;
	store_dkim_keys_free(rows, nr);
	return 0;
}

int dkim_selector_valid(const char *selector, const char *domain)
{
	return selector && domain && store_domain_valid(selector) &&
	       strlen(selector) + strlen("._domainkey.") + strlen(domain) <= NAME_MAX_DNS;
}

/* ---- keygen ------------------------------------------------------------------- */

/* 1 if a key file for (domain, selector) is already there (a leftover). */
static int file_exists(const char *data_dir, const char *domain, const char *selector)
{
	char *path = xasprintf("%s/dkim/%s._domainkey.%s.pem", data_dir, selector, domain);
	int yes = access(path, F_OK) == 0;

	free(path);
	return yes;
}

/* An explicit selector must be free in the database (the file is checked
 * when it is written). */
static int selector_free(struct store *st, const char *domain, const char *selector, char **err)
{
	struct store_dkim_key *rows;
	size_t n;
	int taken = 0;

	if (store_dkim_list(st, domain, NULL, &rows, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		taken |= strcmp(rows[i].selector, selector) == 0;
	store_dkim_keys_free(rows, n);
	if (taken && err)
		*err = xasprintf("%s already has a key with selector '%s'", domain, selector);
	return taken ? -1 : 0;
}

/* The default selector: new this month, not in the database, no file. */
static int pick_selector(struct store *st, const char *data_dir, const char *domain,
                         char out[DKIM_SELECTOR_NEW_MAX], char **err)
{
	struct store_dkim_key *rows;
	const char **taken;
	size_t n;
	int rc = -1;

	if (store_dkim_list(st, domain, NULL, &rows, &n, err) < 0)
		return -1;
	taken = xcalloc(n + SELECTOR_TRIES, sizeof *taken);
	for (size_t i = 0; i < n; i++)
		taken[i] = rows[i].selector;
	for (size_t t = 0; t < SELECTOR_TRIES; t++) {
		if (dkim_selector_new(clock_now_s(), taken, n + t, out) < 0)
			break;
		if (!file_exists(data_dir, domain, out)) {
			rc = 0;
			break;
		}
		taken[n + t] = xstrdup(out);
	}
	if (rc < 0 && err)
		*err = xasprintf("no free selector for %s this month: give one with --selector",
		                 domain);
	for (size_t t = n; t < n + SELECTOR_TRIES; t++)
		free((char *)taken[t]);
	free(taken);
	store_dkim_keys_free(rows, n);
	return rc;
}

/* Writes the file and adds the row; the file goes again if the row fails. */
static int store_key(struct store *st, const char *data_dir, struct dkim_key_info *k,
                     const char *pem, char **err)
{
	struct store_dkim_key row = {
	    .domain = k->domain,
	    .selector = k->selector,
	    .algorithm = (char *)dkim_algo_name(k->algo),
	    .state = (char *)dkim_state_name(k->state),
	    .created = k->created,
	    .activated = k->activated,
	};

	if (dkim_key_write(data_dir, k->domain, k->selector, pem, &k->key_path, err) < 0)
		return -1;
	row.key_path = k->key_path;
	row.key_pem = (char *)pem; /* kept sealed in the database with [cluster] secret_key_file */
	if (store_dkim_add(st, &row, err) < 0) {
		dkim_key_unlink(data_dir, k->key_path);
		return -1;
	}
	return 0;
}

static int keygen_checks(const char *domain, const char *selector, enum dkim_state state,
                         char **err)
{
	char *why = NULL;

	if (!store_domain_valid(domain))
		why = xasprintf("invalid domain '%s'", domain);
	else if (selector && !dkim_selector_valid(selector, domain))
		why = xasprintf("invalid selector '%s'", selector);
	else if (state == DKIM_STATE_RETIRED)
		why = xstrdup("a new key cannot be retired");
	if (why == NULL)
		return 0;
	if (err)
		*err = why;
	else
		free(why);
	return -1;
}

int dkim_keygen(struct store *st, const char *data_dir, const char *domain, const char *selector,
                enum dkim_algo a, enum dkim_state state, struct dkim_key_info *out, char **err)
{
	char sel[DKIM_SELECTOR_NEW_MAX], *pem = NULL;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (keygen_checks(domain, selector, state, err) < 0)
		return -1;
	out->domain = xstrdup(domain);
	ascii_lower(out->domain);
	if (selector ? selector_free(st, out->domain, selector, err) < 0
	             : pick_selector(st, data_dir, out->domain, sel, err) < 0) {
		dkim_key_info_clear(out);
		return -1;
	}
	out->selector = xstrdup(selector ? selector : sel);
	out->algo = a;
	out->state = state;
	out->created = clock_now_s();
	out->activated = state == DKIM_STATE_ACTIVE ? out->created : 0;
	if (dkim_key_generate(a, &pem, err) == 0 &&
	    dkim_key_derive(pem, a, &out->pub, NULL, err) == 0 &&
	    store_key(st, data_dir, out, pem, err) == 0) {
		out->record = dkim_record_text(a, out->pub);
		rc = 0;
	}
	dkim_key_wipe(pem);
	if (rc < 0)
		dkim_key_info_clear(out);
	return rc;
}
