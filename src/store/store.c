/*
 * store: the database (SQLite 3, DATA_DIR/posthorn.db, or [cluster]
 * postgres, through src/db/) and everything kept in it: accounts with their
 * password hashes (argon2id) and sender domains (the schema: store_schema.c;
 * the rest: store_*.c, store_int.h).
 *
 * Promises:
 * - store_open() creates DATA_DIR (0700) and the database (0600) if
 *   missing, then applies every migration the database lacks, each in its
 *   own transaction; a database newer than this code is refused, never touched.
 * - The CLI and a running server may use the database at the same time
 *   (SQLite: WAL, a busy timeout, and BEGIN IMMEDIATE for every
 *   multi-statement write).
 * - One struct store may be shared by threads: st->lock keeps the
 *   statements and transactions of two threads from interleaving on the
 *   one connection.
 * - Passwords are hashed outside the lock, never stored, never logged.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "store/store_int.h"
#include "util/util.h"

#define STORE_DB_FILE    "posthorn.db"
#define STORE_NAME_MAX   64
#define STORE_DOMAIN_MAX 253
#define STORE_LABEL_MAX  63

/* ---- errors and small helpers ------------------------------------------ */

int store_fail(char **err, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	if (err == NULL)
		return -1;
	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	*err = b.data;
	return -1;
}

int store_fail_db(struct store *st, char **err, const char *what)
{
	return store_fail(err, "%s: %s: %s", st->path, what, db_errmsg(st->db));
}

/* For calls whose contract has no *err: the daemon's log gets the cause. */
static int log_db_error(struct store *st, const char *op)
{
	log_err("event=store_error db=%s op=%s error=%s", log_q(st->path), op,
	        log_q(db_errmsg(st->db)));
	return -1;
}

/* Runs fixed SQL (never SQL holding user input: that goes through bind). */
static int exec_sql(struct store *st, const char *sql, char **err)
{
	if (db_exec(st->db, sql) != DB_OK)
		return store_fail_db(st, err, sql);
	return 0;
}

struct db_stmt *store_prepare(struct store *st, const char *sql, char **err)
{
	struct db_stmt *stmt = NULL;

	if (db_prepare(st->db, sql, &stmt) != DB_OK) {
		store_fail_db(st, err, "prepare");
		return NULL;
	}
	return stmt;
}

struct db_stmt *store_prepare_kept(struct store *st, enum store_kept which, const char *sql,
                                   char **err)
{
	if (!st->kept[which])
		st->kept[which] = store_prepare(st, sql, err);
	return st->kept[which];
}

/* A write transaction (db_begin: SQLite's BEGIN IMMEDIATE). */
int store_tx_begin(struct store *st, char **err)
{
	if (db_begin(st->db) != DB_OK)
		return store_fail_db(st, err, "BEGIN");
	return 0;
}

/*
 * A write transaction that also waits for every other writer of `what`
 * (on PostgreSQL a transaction-level advisory lock, held until COMMIT or
 * ROLLBACK; SQLite's BEGIN IMMEDIATE already admits one writer). Ids taken
 * as max + 1 inside it are unique across nodes, and they commit in the
 * order they were taken: a reader never sees id N before every smaller id
 * is visible (docs/events.md, "More than one node").
 */
int store_tx_serial(struct store *st, enum store_serial what, char **err)
{
	struct db_stmt *stmt;
	int rc;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if (db_kind(st->db) != DB_POSTGRES)
		return 0;
	/* Two int4 keys: "post" in ASCII, then the table; apart from the
	 * migrations' int8 key. */
	stmt =
	    store_prepare(st, "SELECT pg_advisory_xact_lock(1886352244, CAST(?1 AS INTEGER))", err);
	if (!stmt)
		return store_tx_rollback(st);
	db_bind_int(stmt, 1, (int)what);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_ROW) {
		store_fail_db(st, err, "serialize writers");
		return store_tx_rollback(st);
	}
	return 0;
}

int store_tx_commit(struct store *st, char **err)
{
	return exec_sql(st, "COMMIT", err);
}

/* Ends a failed transaction; the error being reported is the earlier one. */
int store_tx_rollback(struct store *st)
{
	db_rollback(st->db);
	return -1;
}

/* ---- names and domains ------------------------------------------------- */

int store_account_name_valid(const char *name)
{
	size_t n;

	if (name == NULL)
		return 0;
	n = strlen(name);
	if (n == 0 || n > STORE_NAME_MAX)
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                    "0123456789._@+-") == n;
}

static int label_valid(const char *label, size_t n)
{
	if (n == 0 || n > STORE_LABEL_MAX)
		return 0;
	return label[0] != '-' && label[n - 1] != '-';
}

int store_domain_valid(const char *domain)
{
	const char *p, *dot;
	size_t n;

	if (domain == NULL)
		return 0;
	n = strlen(domain);
	if (n == 0 || n > STORE_DOMAIN_MAX)
		return 0;
	if (strspn(domain, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                   "0123456789-.") != n)
		return 0;
	for (p = domain;; p = dot + 1) {
		dot = strchr(p, '.');
		if (!label_valid(p, dot ? (size_t)(dot - p) : strlen(p)))
			return 0;
		if (dot == NULL)
			return 1;
	}
}

static int domains_check(const char *const *domains, size_t n, char **err)
{
	for (size_t i = 0; i < n; i++)
		if (!store_domain_valid(domains[i]))
			return store_fail(err, "invalid domain '%s'", domains[i]);
	return 0;
}

/* ---- opening and migrations -------------------------------------------- */

static int make_data_dir(const char *dir, char **err)
{
	struct stat sb;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return store_fail(err, "cannot create %s: %s", dir, strerror(errno));
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return store_fail(err, "%s exists and is not a directory", dir);
	return 0;
}

/*
 * What an unknown account's password is checked against, so that the
 * answer takes as long as for a real account. A fixed argon2id hash (of a
 * random password nobody kept) with the same parameters as every stored
 * hash: verifying it costs exactly what a real verify costs, and nothing
 * has to be computed (64 MB, tens of ms) before the first AUTH.
 */
static const char dummy_hash[] = "$argon2id$v=19$m=65536,t=2,p=1$6uwBVFdy0v2vEbrhjMgG8Q$1/"
                                 "N9VV7IF47AM266rHL8VhN0aEUpvmDlapzcLGvP4aQ";

static int hash_password(char out[crypto_pwhash_STRBYTES], const char *password)
{
	return crypto_pwhash_str_alg(
	    out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13);
}

/* sodium_init() is thread-safe and may be called again; so is this. */
static int crypto_init(char **err)
{
	if (sodium_init() < 0)
		return store_fail(err, "libsodium initialisation failed");
	return 0;
}

/* The database: [cluster] postgres when given, else DATA_DIR/posthorn.db. */
static int open_db(struct store *st, const char *data_dir, const char *url, char **err)
{
	char *path;

	/* DATA_DIR holds the spool and node files whichever database is used. */
	if (make_data_dir(data_dir, err) < 0)
		return -1;
	if (url != NULL && *url != '\0') {
		st->db = db_open(url, err);
	} else {
		path = xasprintf("%s/%s", data_dir, STORE_DB_FILE);
		st->db = db_open(path, err);
		free(path);
	}
	if (st->db == NULL)
		return -1;
	st->path = xstrdup(db_name(st->db));
	return 0;
}

struct store *store_open_url(const char *data_dir, const char *url, const char *secret_file,
                             char **err)
{
	struct store *st;

	if (crypto_init(err) < 0)
		return NULL;
	st = xcalloc(1, sizeof *st);
	pthread_mutex_init(&st->lock, NULL);
	if ((secret_file && *secret_file && store_secret_load(st, secret_file, err) < 0) ||
	    open_db(st, data_dir, url, err) < 0 || store_schema_migrate(st, err) < 0) {
		store_close(st);
		return NULL;
	}
	return st;
}

struct store *store_open(const char *data_dir, char **err)
{
	return store_open_url(data_dir, NULL, NULL, err);
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < STORE_KEPT_MAX; i++)
		db_finalize(st->kept[i]); /* NULL is a no-op */
	db_close(st->db);                 /* NULL is a no-op */
	pthread_mutex_destroy(&st->lock);
	sodium_memzero(st->secret, sizeof st->secret);
	free(st->path);
	free(st);
}

/* ---- accounts (callers hold st->lock) ---------------------------------- */

/* The account's id; 0 if there is none, -1 on error. */
static int64_t account_id(struct store *st, const char *name, char **err)
{
	struct db_stmt *stmt = store_prepare(st, "SELECT id FROM accounts WHERE name = ?1", err);
	int64_t id = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW)
		id = db_column_int64(stmt, 0);
	db_finalize(stmt);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail_db(st, err, "account lookup");
	return id;
}

int64_t store_account_id(struct store *st, const char *name, char **err)
{
	return account_id(st, name, err);
}

/* As account_id(), but "no such account" is an error too. */
static int64_t account_id_existing(struct store *st, const char *name, char **err)
{
	int64_t id = account_id(st, name, err);

	if (id == 0)
		return store_fail(err, "no such account '%s'", name);
	return id;
}

int store_step_done(struct store *st, struct db_stmt *stmt, const char *what, char **err)
{
	int rc = db_step(stmt);

	if (rc != DB_DONE)
		store_fail_db(st, err, what);
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : -1;
}

/* Domains are stored lower-case; a domain the account already has is kept. */
static int insert_domains(struct store *st, int64_t id, const char *const *domains, size_t n,
                          char **err)
{
	static const char sql[] = "INSERT INTO account_domains (account_id, domain) VALUES (?1, ?2)"
	                          " ON CONFLICT DO NOTHING";

	for (size_t i = 0; i < n; i++) {
		struct db_stmt *stmt = store_prepare(st, sql, err);
		char *lower = xstrdup(domains[i]);
		int rc;

		if (stmt == NULL) {
			free(lower);
			return -1;
		}
		ascii_lower(lower);
		db_bind_int64(stmt, 1, id);
		db_bind_text(stmt, 2, lower, -1, DB_TRANSIENT);
		free(lower);
		rc = store_step_done(st, stmt, "add domain", err);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int64_t insert_account(struct store *st, const char *name, const char *hash, char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st,
	                  "INSERT INTO accounts (name, password_hash, created_at)"
	                  " VALUES (?1, ?2, ?3) RETURNING id",
	                  err);
	int64_t id = -1;
	int rc;

	if (stmt == NULL)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	if (hash != NULL)
		db_bind_text(stmt, 2, hash, -1, DB_STATIC);
	db_bind_int64(stmt, 3, clock_now_s());
	rc = db_step(stmt);
	if (rc == DB_ROW)
		id = db_column_int64(stmt, 0);
	db_finalize(stmt);
	if (rc == DB_CONSTRAINT_UNIQUE)
		return store_fail(err, "account '%s' already exists", name);
	if (rc != DB_ROW)
		return store_fail_db(st, err, "add account");
	return id;
}

static int add_locked(struct store *st, const char *name, const char *hash,
                      const char *const *domains, size_t n_domains, char **err)
{
	int64_t id;

	if (store_tx_begin(st, err) < 0)
		return -1;
	id = insert_account(st, name, hash, err);
	if (id < 0 || insert_domains(st, id, domains, n_domains, err) < 0)
		return store_tx_rollback(st);
	if (store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

/* Checks what every call that sets a password checks, before any work. */
static int password_check(const char *password, char **err)
{
	if (password != NULL && password[0] == '\0')
		return store_fail(err, "empty password");
	return 0;
}

/* password may be NULL: the account then owns domains but cannot AUTH. */
int store_user_add(struct store *st, const char *name, const char *password,
                   const char *const *domains, size_t n_domains, char **err)
{
	char hash[crypto_pwhash_STRBYTES];
	int rc;

	if (!store_account_name_valid(name))
		return store_fail(err,
		                  "invalid account name (1-%d characters of A-Z a-z 0-9 . _ @ + -)",
		                  STORE_NAME_MAX);
	if (password_check(password, err) < 0 || domains_check(domains, n_domains, err) < 0)
		return -1;
	/* Hash before taking the lock: argon2id takes tens of milliseconds. */
	if (password != NULL && hash_password(hash, password) != 0)
		return store_fail(err, "cannot hash the password (out of memory?)");
	pthread_mutex_lock(&st->lock);
	rc = add_locked(st, name, password ? hash : NULL, domains, n_domains, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int del_locked(struct store *st, const char *name, char **err)
{
	int64_t id;
	struct db_stmt *stmt;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((id = account_id_existing(st, name, err)) < 0)
		return store_tx_rollback(st);
	/* Explicit rather than ON DELETE CASCADE: another tool may open the
	 * file without PRAGMA foreign_keys. */
	stmt = store_prepare(st, "DELETE FROM account_domains WHERE account_id = ?1", err);
	if (stmt == NULL)
		return store_tx_rollback(st);
	db_bind_int64(stmt, 1, id);
	if (store_step_done(st, stmt, "delete domains", err) < 0)
		return store_tx_rollback(st);
	if ((stmt = store_prepare(st, "DELETE FROM accounts WHERE id = ?1", err)) == NULL)
		return store_tx_rollback(st);
	db_bind_int64(stmt, 1, id);
	if (store_step_done(st, stmt, "delete account", err) < 0 || store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_user_del(struct store *st, const char *name, char **err)
{
	int rc;

	if (strcmp(name, STORE_DEFAULT_ACCOUNT) == 0)
		return store_fail(err, "the built-in account '%s' cannot be deleted", name);
	pthread_mutex_lock(&st->lock);
	rc = del_locked(st, name, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int passwd_locked(struct store *st, const char *name, const char *hash, char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st, "UPDATE accounts SET password_hash = ?2 WHERE name = ?1", err);

	if (stmt == NULL)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	db_bind_text(stmt, 2, hash, -1, DB_STATIC);
	if (store_step_done(st, stmt, "set password", err) < 0)
		return -1;
	if (db_changes(st->db) == 0)
		return store_fail(err, "no such account '%s'", name);
	return 0;
}

int store_user_passwd(struct store *st, const char *name, const char *password, char **err)
{
	char hash[crypto_pwhash_STRBYTES];
	int rc;

	if (strcmp(name, STORE_DEFAULT_ACCOUNT) == 0)
		return store_fail(
		    err, "the built-in account '%s' has no password and cannot log in", name);
	if (password == NULL)
		return store_fail(err, "no password given");
	if (password_check(password, err) < 0)
		return -1;
	if (hash_password(hash, password) != 0)
		return store_fail(err, "cannot hash the password (out of memory?)");
	/* One UPDATE is its own transaction: no BEGIN needed. */
	pthread_mutex_lock(&st->lock);
	rc = passwd_locked(st, name, hash, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int add_domains_locked(struct store *st, const char *name, const char *const *domains,
                              size_t n_domains, char **err)
{
	int64_t id;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((id = account_id_existing(st, name, err)) < 0 ||
	    insert_domains(st, id, domains, n_domains, err) < 0 || store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_user_add_domains(struct store *st, const char *name, const char *const *domains,
                           size_t n_domains, char **err)
{
	int rc;

	if (domains_check(domains, n_domains, err) < 0)
		return -1;
	pthread_mutex_lock(&st->lock);
	rc = add_domains_locked(st, name, domains, n_domains, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int delete_domain(struct store *st, const char *name, int64_t id, const char *domain,
                         char **err)
{
	struct db_stmt *stmt = store_prepare(st,
	                                     "DELETE FROM account_domains"
	                                     " WHERE account_id = ?1 AND domain = lower(?2)",
	                                     err);

	if (stmt == NULL)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, domain, -1, DB_STATIC);
	if (store_step_done(st, stmt, "remove domain", err) < 0)
		return -1;
	if (db_changes(st->db) == 0)
		return store_fail(err, "account '%s' does not own domain '%s'", name, domain);
	return 0;
}

static int del_domains_locked(struct store *st, const char *name, const char *const *domains,
                              size_t n_domains, char **err)
{
	int64_t id;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((id = account_id_existing(st, name, err)) < 0)
		return store_tx_rollback(st);
	for (size_t i = 0; i < n_domains; i++)
		if (delete_domain(st, name, id, domains[i], err) < 0)
			return store_tx_rollback(st);
	if (store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_user_del_domains(struct store *st, const char *name, const char *const *domains,
                           size_t n_domains, char **err)
{
	int rc;

	if (domains_check(domains, n_domains, err) < 0)
		return -1;
	pthread_mutex_lock(&st->lock);
	rc = del_domains_locked(st, name, domains, n_domains, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- listing ----------------------------------------------------------- */

struct list_row {
	char *name;
	struct buf domains;
};

struct list_rows {
	struct list_row *v;
	size_t n;
};

static void rows_add(struct list_rows *rows, const char *name, const char *domain)
{
	struct list_row *last = rows->n ? &rows->v[rows->n - 1] : NULL;

	if (last == NULL || strcmp(last->name, name) != 0) {
		rows->v = xrealloc(rows->v, (rows->n + 1) * sizeof *rows->v);
		last = &rows->v[rows->n++];
		last->name = xstrdup(name);
		buf_init(&last->domains);
	}
	if (domain == NULL)
		return;
	if (last->domains.len)
		buf_puts(&last->domains, ",");
	buf_puts(&last->domains, domain);
}

static void rows_free(struct list_rows *rows)
{
	for (size_t i = 0; i < rows->n; i++) {
		free(rows->v[i].name);
		buf_free(&rows->v[i].domains);
	}
	free(rows->v);
}

/* One SELECT is one snapshot: the listing is consistent. */
static int list_locked(struct store *st, struct list_rows *rows, char **err)
{
	struct db_stmt *stmt = store_prepare(st,
	                                     "SELECT a.name, d.domain FROM accounts a"
	                                     " LEFT JOIN account_domains d ON d.account_id = a.id"
	                                     " ORDER BY a.name, d.domain",
	                                     err);
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = db_step(stmt)) == DB_ROW)
		rows_add(rows, (const char *)db_column_text(stmt, 0),
		         (const char *)db_column_text(stmt, 1));
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "list accounts");
	return 0;
}

/* The callbacks run after the lock is released, so they may call the store. */
int store_user_list(struct store *st, void (*cb)(void *arg, const char *name, const char *domains),
                    void *arg, char **err)
{
	struct list_rows rows = {0};
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, &rows, err);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; rc == 0 && i < rows.n; i++)
		cb(arg, rows.v[i].name, rows.v[i].domains.len ? rows.v[i].domains.data : "");
	rows_free(&rows);
	return rc;
}

int store_user_exists(struct store *st, const char *name)
{
	int64_t id;

	pthread_mutex_lock(&st->lock);
	id = account_id(st, name, NULL);
	if (id < 0)
		log_db_error(st, "exists");
	pthread_mutex_unlock(&st->lock);
	return id < 0 ? -1 : id > 0;
}

/* ---- authentication and sender domains --------------------------------- */

/* The account's hash into out: 1 found with a password, 0 none, -1 error. */
static int fetch_hash(struct store *st, const char *name, char out[crypto_pwhash_STRBYTES])
{
	struct db_stmt *stmt =
	    store_prepare(st, "SELECT password_hash FROM accounts WHERE name = ?1", NULL);
	const char *hash;
	int rc, found = 0;

	if (stmt == NULL)
		return log_db_error(st, "verify");
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW) {
		hash = (const char *)db_column_text(stmt, 0);
		/* A hash too long for the buffer cannot be ours: treat as none. */
		if (hash != NULL && strlen(hash) < crypto_pwhash_STRBYTES) {
			strcpy(out, hash);
			found = 1;
		}
	}
	db_finalize(stmt);
	if (rc != DB_ROW && rc != DB_DONE)
		return log_db_error(st, "verify");
	return found;
}

/*
 * An unknown account, or one without a password ("default"), is checked
 * against the dummy hash so that the answer takes as long as for a real
 * account: the timing must not tell which names exist.
 */
int store_user_verify(struct store *st, const char *name, const char *password)
{
	char hash[crypto_pwhash_STRBYTES];
	int found, ok;

	if (name == NULL || password == NULL)
		return 0;
	pthread_mutex_lock(&st->lock);
	found = fetch_hash(st, name, hash);
	pthread_mutex_unlock(&st->lock);
	if (found < 0)
		return -1;
	ok = crypto_pwhash_str_verify(found ? hash : dummy_hash, password, strlen(password)) == 0;
	return found && ok;
}

static int owns_locked(struct store *st, const char *name, const char *domain)
{
	/* Stored domains are lower-case; SQLite's lower() folds ASCII only,
	 * which is all a DNS name holds. */
	struct db_stmt *stmt = store_prepare_kept(st, STORE_KEPT_OWNS_DOMAIN,
	                                          "SELECT 1 FROM accounts a"
	                                          " JOIN account_domains d ON d.account_id = a.id"
	                                          " WHERE a.name = ?1 AND d.domain = lower(?2)",
	                                          NULL);
	int rc;

	if (stmt == NULL)
		return log_db_error(st, "owns_domain");
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	db_bind_text(stmt, 2, domain, -1, DB_STATIC);
	rc = db_step(stmt);
	db_reset(stmt);
	db_clear_bindings(stmt); /* kept: it must not point at the caller's strings */
	if (rc != DB_ROW && rc != DB_DONE)
		return log_db_error(st, "owns_domain");
	return rc == DB_ROW;
}

int store_user_owns_domain(struct store *st, const char *name, const char *domain)
{
	int rc;

	if (name == NULL || domain == NULL)
		return 0;
	pthread_mutex_lock(&st->lock);
	rc = owns_locked(st, name, domain);
	pthread_mutex_unlock(&st->lock);
	return rc;
}
