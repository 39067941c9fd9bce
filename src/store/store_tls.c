/*
 * store_tls: the outbound TLS policy tables (migration 7, store_tls_migration):
 * sts_policies, tlsa_seen, tls_rpt_counts, tls_rpt_reports, tls_rpt_sent,
 * and accounts.pool.
 *
 * Promises:
 * - A cached MTA-STS policy is replaced whole (one UPSERT): a reader sees
 *   the old policy or the new one, never a mix of both.
 * - store_tlsrpt_add() applies a batch in one transaction; counts only
 *   grow, so a batch counts fully or not at all and may be retried as is.
 * - A report's delivery to one rua is recorded per attempt, so after a
 *   restart a report already sent to an address is not sent again.
 * - Rows are copied out under st->lock; nothing calls back with it held.
 * - The SQL is plain enough for PostgreSQL too.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

#define TLSRPT_KEEP_ROWS 100000 /* rows of one period read at most */

/*
 * Migration 6 -> 7 (listed in store.c): MTA-STS policies with id and
 * expiry (RFC 8461 5.1), the TLSA records last seen per MX host, TLS-RPT
 * counts per domain and period, reports done and their delivery per rua
 * (sent once), the [pool.NAME] of an account.
 */
const char store_tls_migration[] =
    "CREATE TABLE sts_policies (domain TEXT PRIMARY KEY, policy_id TEXT NOT NULL,"
    "  mode TEXT NOT NULL CHECK (mode IN ('none', 'testing', 'enforce')),"
    "  max_age BIGINT NOT NULL, policy TEXT NOT NULL, fetched_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL);"
    "CREATE TABLE tlsa_seen (host TEXT PRIMARY KEY, domain TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('usable', 'unusable', 'failed', 'none')),"
    "  records TEXT NOT NULL, seen_at BIGINT NOT NULL);"
    "CREATE INDEX tlsa_seen_domain ON tlsa_seen (domain);"
    "CREATE TABLE tls_rpt_counts (domain TEXT NOT NULL, period_start BIGINT NOT NULL,"
    "  period_end BIGINT NOT NULL, policy TEXT NOT NULL, result TEXT NOT NULL,"
    "  sending_ip TEXT NOT NULL, mx_host TEXT NOT NULL, receiving_ip TEXT NOT NULL,"
    "  count BIGINT NOT NULL CHECK (count >= 0),"
    "  PRIMARY KEY (domain, period_start, policy, result, sending_ip, mx_host, receiving_ip));"
    "CREATE INDEX tls_rpt_counts_end ON tls_rpt_counts (period_end);"
    "CREATE TABLE tls_rpt_reports (domain TEXT NOT NULL, period_start BIGINT NOT NULL,"
    "  done_at BIGINT NOT NULL, PRIMARY KEY (domain, period_start));"
    "CREATE TABLE tls_rpt_sent (domain TEXT NOT NULL, period_start BIGINT NOT NULL,"
    "  rua TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),"
    "  attempts INTEGER NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (domain, period_start, rua));"
    "ALTER TABLE accounts ADD COLUMN pool TEXT;";

static const char sts_get_sql[] = "SELECT domain, policy_id, mode, policy, max_age, fetched_at,"
                                  " expires_at FROM sts_policies WHERE domain = lower(?1)";
static const char sts_put_sql[] =
    "INSERT INTO sts_policies (domain, policy_id, mode, policy, max_age, fetched_at, expires_at)"
    " VALUES (lower(?1), ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (domain) DO UPDATE SET"
    " policy_id = excluded.policy_id, mode = excluded.mode, policy = excluded.policy,"
    " max_age = excluded.max_age, fetched_at = excluded.fetched_at,"
    " expires_at = excluded.expires_at";
static const char tlsa_put_sql[] =
    "INSERT INTO tlsa_seen (host, domain, state, records, seen_at)"
    " VALUES (lower(?1), lower(?2), ?3, ?4, ?5) ON CONFLICT (host) DO UPDATE SET"
    " domain = excluded.domain, state = excluded.state, records = excluded.records,"
    " seen_at = excluded.seen_at";
static const char tlsa_list_sql[] = "SELECT host, domain, state, records, seen_at FROM tlsa_seen"
                                    " WHERE domain = lower(?1) ORDER BY host";
static const char rpt_add_sql[] =
    "INSERT INTO tls_rpt_counts (domain, period_start, period_end, policy, result, sending_ip,"
    " mx_host, receiving_ip, count) VALUES (lower(?1), ?2, ?3, ?4, ?5, ?6, lower(?7), ?8, ?9)"
    " ON CONFLICT (domain, period_start, policy, result, sending_ip, mx_host, receiving_ip)"
    " DO UPDATE SET count = tls_rpt_counts.count + excluded.count";
static const char rpt_due_sql[] =
    "SELECT DISTINCT c.domain, c.period_start, c.period_end FROM tls_rpt_counts c"
    " WHERE c.period_end <= ?1 AND NOT EXISTS (SELECT 1 FROM tls_rpt_reports r"
    " WHERE r.domain = c.domain AND r.period_start = c.period_start)"
    " ORDER BY c.period_end, c.domain LIMIT ?2";
static const char rpt_rows_sql[] =
    "SELECT domain, period_start, period_end, policy, result, sending_ip, mx_host, receiving_ip,"
    " count FROM tls_rpt_counts WHERE domain = lower(?1) AND period_start ="
    " (CASE WHEN ?2 = 0 THEN (SELECT max(period_start) FROM tls_rpt_counts"
    " WHERE domain = lower(?1)) ELSE ?2 END)"
    " ORDER BY policy, result, mx_host, receiving_ip, sending_ip LIMIT ?3";
static const char sent_get_sql[] = "SELECT state, attempts, at FROM tls_rpt_sent"
                                   " WHERE domain = lower(?1) AND period_start = ?2 AND rua = ?3";
static const char sent_set_sql[] =
    "INSERT INTO tls_rpt_sent (domain, period_start, rua, state, attempts, at)"
    " VALUES (lower(?1), ?2, ?3, ?4, CASE WHEN ?4 = 'pending' THEN 1 ELSE 0 END, ?5)"
    " ON CONFLICT (domain, period_start, rua) DO UPDATE SET state = excluded.state,"
    " attempts = tls_rpt_sent.attempts + excluded.attempts, at = excluded.at";

/* ---- small helpers ------------------------------------------------------- */

/* ---- MTA-STS policies -------------------------------------------------------- */

void store_sts_clear(struct store_sts *p)
{
	free(p->domain);
	free(p->id);
	free(p->mode);
	free(p->policy);
	memset(p, 0, sizeof(*p));
}

static int sts_get_locked(struct store *st, const char *domain, struct store_sts *out, char **err)
{
	struct db_stmt *stmt = store_prepare(st, sts_get_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, domain, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW) {
		out->domain = store_col_text(stmt, 0);
		out->id = store_col_text(stmt, 1);
		out->mode = store_col_text(stmt, 2);
		out->policy = store_col_text(stmt, 3);
		out->max_age = db_column_int64(stmt, 4);
		out->fetched_at = db_column_int64(stmt, 5);
		out->expires_at = db_column_int64(stmt, 6);
	}
	db_finalize(stmt);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "read MTA-STS policy");
}

int store_sts_get(struct store *st, const char *domain, struct store_sts *out, char **err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->lock);
	rc = sts_get_locked(st, domain, out, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_sts_put(struct store *st, const struct store_sts *p, char **err)
{
	struct db_stmt *stmt;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if ((stmt = store_prepare(st, sts_put_sql, err))) {
		db_bind_text(stmt, 1, p->domain, -1, DB_STATIC);
		db_bind_text(stmt, 2, p->id, -1, DB_STATIC);
		db_bind_text(stmt, 3, p->mode, -1, DB_STATIC);
		db_bind_text(stmt, 4, p->policy, -1, DB_STATIC);
		db_bind_int64(stmt, 5, p->max_age);
		db_bind_int64(stmt, 6, p->fetched_at);
		db_bind_int64(stmt, 7, p->expires_at);
		rc = store_step_done(st, stmt, "store MTA-STS policy", err);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int sts_due_locked(struct store *st, int64_t now, size_t max, char ***domains, size_t *n,
                          char **err)
{
	struct db_stmt *stmt = store_prepare(st,
	                                     "SELECT domain FROM sts_policies WHERE fetched_at + "
	                                     "max_age / 2 <= ?1 AND expires_at > ?1"
	                                     " ORDER BY expires_at LIMIT ?2",
	                                     err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, now);
	db_bind_int64(stmt, 2, (int64_t)max);
	while ((rc = db_step(stmt)) == DB_ROW) {
		*domains = xrealloc(*domains, (*n + 1) * sizeof(**domains));
		(*domains)[(*n)++] = store_col_text(stmt, 0);
	}
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "read MTA-STS policies due");
}

int store_sts_due(struct store *st, int64_t now, size_t max, char ***domains, size_t *n, char **err)
{
	int rc;

	*domains = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	rc = sts_due_locked(st, now, max, domains, n, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		store_strv_free(*domains, *n);
		*domains = NULL;
		*n = 0;
	}
	return rc;
}

void store_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- TLSA records seen -------------------------------------------------------- */

int store_tlsa_put(struct store *st, const struct store_tlsa *t, char **err)
{
	struct db_stmt *stmt;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if ((stmt = store_prepare(st, tlsa_put_sql, err))) {
		db_bind_text(stmt, 1, t->host, -1, DB_STATIC);
		db_bind_text(stmt, 2, t->domain, -1, DB_STATIC);
		db_bind_text(stmt, 3, t->state, -1, DB_STATIC);
		db_bind_text(stmt, 4, t->records, -1, DB_STATIC);
		db_bind_int64(stmt, 5, t->seen_at);
		rc = store_step_done(st, stmt, "store TLSA records", err);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

void store_tlsa_free(struct store_tlsa *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].host);
		free(v[i].domain);
		free(v[i].state);
		free(v[i].records);
	}
	free(v);
}

static int tlsa_list_locked(struct store *st, const char *domain, struct store_tlsa **out,
                            size_t *n, char **err)
{
	struct db_stmt *stmt = store_prepare(st, tlsa_list_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, domain, -1, DB_STATIC);
	while ((rc = db_step(stmt)) == DB_ROW) {
		struct store_tlsa *t;
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		t = &(*out)[(*n)++];
		t->host = store_col_text(stmt, 0);
		t->domain = store_col_text(stmt, 1);
		t->state = store_col_text(stmt, 2);
		t->records = store_col_text(stmt, 3);
		t->seen_at = db_column_int64(stmt, 4);
	}
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "read TLSA records");
}

int store_tlsa_list(struct store *st, const char *domain, struct store_tlsa **out, size_t *n,
                    char **err)
{
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	rc = tlsa_list_locked(st, domain, out, n, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		store_tlsa_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* ---- TLS-RPT counts ---------------------------------------------------------- */

/* Count i of arg (a struct store_tlsrpt_count array); one of store_each_in_tx. */
static int rpt_add_one(struct store *st, struct db_stmt *stmt, size_t i, void *arg, char **err)
{
	const struct store_tlsrpt_count *c = (const struct store_tlsrpt_count *)arg + i;

	if (c->n == 0)
		return 0;
	db_bind_text(stmt, 1, c->domain, -1, DB_STATIC);
	db_bind_int64(stmt, 2, c->start);
	db_bind_int64(stmt, 3, c->end);
	db_bind_text(stmt, 4, c->policy, -1, DB_STATIC);
	db_bind_text(stmt, 5, c->result ? c->result : "", -1, DB_STATIC);
	db_bind_text(stmt, 6, c->sending_ip ? c->sending_ip : "", -1, DB_STATIC);
	db_bind_text(stmt, 7, c->mx_host ? c->mx_host : "", -1, DB_STATIC);
	db_bind_text(stmt, 8, c->receiving_ip ? c->receiving_ip : "", -1, DB_STATIC);
	db_bind_int64(stmt, 9, (int64_t)c->n);
	return db_step(stmt) == DB_DONE ? 0 : store_fail_db(st, err, "add TLS-RPT count");
}

int store_tlsrpt_add(struct store *st, const struct store_tlsrpt_count *c, size_t n, char **err)
{
	int rc;

	for (size_t i = 0; i < n; i++)
		if (!c[i].domain || !c[i].domain[0] || !c[i].policy || c[i].n > (uint64_t)INT64_MAX)
			return store_fail(err, "TLS-RPT count %zu: invalid", i);
	if (n == 0)
		return 0;
	pthread_mutex_lock(&st->lock);
	rc = store_each_in_tx(st, rpt_add_sql, n, rpt_add_one, (void *)c, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

void store_tlsrpt_free(struct store_tlsrpt_row *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].domain);
		free(v[i].policy);
		free(v[i].result);
		free(v[i].sending_ip);
		free(v[i].mx_host);
		free(v[i].receiving_ip);
	}
	free(v);
}

/* Reads every row of stmt: the first three columns domain, start, end;
 * with full, the counts' other columns too. */
static int rows_read(struct store *st, struct db_stmt *stmt, int full,
                     struct store_tlsrpt_row **out, size_t *n, char **err)
{
	int rc;

	while ((rc = db_step(stmt)) == DB_ROW) {
		struct store_tlsrpt_row *r;
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		r = &(*out)[(*n)++];
		memset(r, 0, sizeof(*r));
		r->domain = store_col_text(stmt, 0);
		r->start = db_column_int64(stmt, 1);
		r->end = db_column_int64(stmt, 2);
		if (!full)
			continue;
		r->policy = store_col_text(stmt, 3);
		r->result = store_col_text(stmt, 4);
		r->sending_ip = store_col_text(stmt, 5);
		r->mx_host = store_col_text(stmt, 6);
		r->receiving_ip = store_col_text(stmt, 7);
		r->n = (uint64_t)db_column_int64(stmt, 8);
	}
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "read TLS-RPT counts");
}

/* Runs stmt (bound already) and collects its rows; frees what it got on
 * error. */
static int rows_query(struct store *st, struct db_stmt *stmt, int full,
                      struct store_tlsrpt_row **out, size_t *n, char **err)
{
	int rc = rows_read(st, stmt, full, out, n, err);

	if (rc < 0) {
		store_tlsrpt_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int store_tlsrpt_due(struct store *st, int64_t before, size_t max, struct store_tlsrpt_row **out,
                     size_t *n, char **err)
{
	struct db_stmt *stmt;
	int rc = -1;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	if ((stmt = store_prepare(st, rpt_due_sql, err))) {
		db_bind_int64(stmt, 1, before);
		db_bind_int64(stmt, 2, (int64_t)max);
		rc = rows_query(st, stmt, 0, out, n, err);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_tlsrpt_rows(struct store *st, const char *domain, int64_t start,
                      struct store_tlsrpt_row **out, size_t *n, char **err)
{
	struct db_stmt *stmt;
	int rc = -1;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	if ((stmt = store_prepare(st, rpt_rows_sql, err))) {
		db_bind_text(stmt, 1, domain, -1, DB_STATIC);
		db_bind_int64(stmt, 2, start);
		db_bind_int64(stmt, 3, TLSRPT_KEEP_ROWS);
		rc = rows_query(st, stmt, 1, out, n, err);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- TLS-RPT deliveries ------------------------------------------------------- */

static const char *state_static(const char *s)
{
	if (s && strcmp((const char *)s, "sent") == 0)
		return "sent";
	if (s && strcmp((const char *)s, "failed") == 0)
		return "failed";
	return "pending";
}

static int sent_get_locked(struct store *st, const char *domain, int64_t start, const char *rua,
                           const char **state, int *attempts, int64_t *at, char **err)
{
	struct db_stmt *stmt = store_prepare(st, sent_get_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, domain, -1, DB_STATIC);
	db_bind_int64(stmt, 2, start);
	db_bind_text(stmt, 3, rua, -1, DB_STATIC);
	rc = db_step(stmt);
	*state = "pending";
	*attempts = 0;
	*at = 0;
	if (rc == DB_ROW) {
		*state = state_static(db_column_text(stmt, 0));
		*attempts = db_column_int(stmt, 1);
		*at = db_column_int64(stmt, 2);
	}
	db_finalize(stmt);
	return rc == DB_ROW || rc == DB_DONE ? 0 : store_fail_db(st, err, "read TLS-RPT delivery");
}

int store_tlsrpt_sent_get(struct store *st, const char *domain, int64_t start, const char *rua,
                          const char **state, int *attempts, int64_t *at, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = sent_get_locked(st, domain, start, rua, state, attempts, at, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_tlsrpt_sent_set(struct store *st, const char *domain, int64_t start, const char *rua,
                          const char *state, int64_t at, char **err)
{
	struct db_stmt *stmt;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if ((stmt = store_prepare(st, sent_set_sql, err))) {
		db_bind_text(stmt, 1, domain, -1, DB_STATIC);
		db_bind_int64(stmt, 2, start);
		db_bind_text(stmt, 3, rua, -1, DB_STATIC);
		db_bind_text(stmt, 4, state, -1, DB_STATIC);
		db_bind_int64(stmt, 5, at);
		rc = store_step_done(st, stmt, "record TLS-RPT delivery", err);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Binds (domain, start, at) or (keep_after) as the SQL asks, and runs it. */
static int exec_bound(struct store *st, const char *sql, const char *domain, int64_t a, int64_t b,
                      char **err)
{
	struct db_stmt *stmt = store_prepare(st, sql, err);

	if (!stmt)
		return -1;
	if (domain)
		db_bind_text(stmt, 1, domain, -1, DB_STATIC);
	db_bind_int64(stmt, domain ? 2 : 1, a);
	if (domain)
		db_bind_int64(stmt, 3, b);
	return store_step_done(st, stmt, "finish TLS-RPT report", err);
}

static int done_locked(struct store *st, const char *domain, int64_t start, int64_t at,
                       int64_t keep_after, char **err)
{
	if (store_tx_begin(st, err) < 0)
		return -1;
	if (exec_bound(st,
	               "INSERT INTO tls_rpt_reports (domain, period_start, done_at) VALUES"
	               " (lower(?1), ?2, ?3) ON CONFLICT (domain, period_start) DO NOTHING",
	               domain, start, at, err) < 0 ||
	    exec_bound(st, "DELETE FROM tls_rpt_counts WHERE period_end < ?1", NULL, keep_after, 0,
	               err) < 0 ||
	    exec_bound(st, "DELETE FROM tls_rpt_sent WHERE period_start < ?1", NULL, keep_after, 0,
	               err) < 0 ||
	    exec_bound(st, "DELETE FROM tls_rpt_reports WHERE period_start < ?1", NULL, keep_after,
	               0, err) < 0 ||
	    store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_tlsrpt_done(struct store *st, const char *domain, int64_t start, int64_t at,
                      int64_t keep_after, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = done_locked(st, domain, start, at, keep_after, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- account pools ------------------------------------------------------------ */

static int set_pool_locked(struct store *st, const char *name, const char *pool, char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st, "UPDATE accounts SET pool = ?2 WHERE name = ?1", err);

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	if (pool)
		db_bind_text(stmt, 2, pool, -1, DB_STATIC);
	else
		db_bind_null(stmt, 2);
	if (store_step_done(st, stmt, "set account pool", err) < 0)
		return -1;
	return db_changes(st->db) ? 0 : store_fail(err, "no account '%s'", name);
}

int store_user_set_pool(struct store *st, const char *name, const char *pool, char **err)
{
	int rc;

	if (pool && (!pool[0] || strlen(pool) > 64 ||
	             strspn(pool, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                          "0123456789-_") != strlen(pool)))
		return store_fail(err, "invalid pool name '%s'", pool);
	pthread_mutex_lock(&st->lock);
	rc = set_pool_locked(st, name, pool, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int pools_locked(struct store *st, char ***names, char ***pools, size_t *n, char **err)
{
	struct db_stmt *stmt = store_prepare(
	    st, "SELECT name, pool FROM accounts WHERE pool IS NOT NULL ORDER BY name", err);
	int rc;

	if (!stmt)
		return -1;
	while ((rc = db_step(stmt)) == DB_ROW) {
		*names = xrealloc(*names, (*n + 1) * sizeof(**names));
		*pools = xrealloc(*pools, (*n + 1) * sizeof(**pools));
		(*names)[*n] = store_col_text(stmt, 0);
		(*pools)[*n] = store_col_text(stmt, 1);
		(*n)++;
	}
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "read account pools");
}

int store_account_pools(struct store *st, char ***names, char ***pools, size_t *n, char **err)
{
	int rc;

	*names = *pools = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	rc = pools_locked(st, names, pools, n, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		store_pools_free(*names, *pools, *n);
		*names = *pools = NULL;
		*n = 0;
	}
	return rc;
}

void store_pools_free(char **names, char **pools, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
		free(pools[i]);
	}
	free(names);
	free(pools);
}
