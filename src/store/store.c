/*
 * store: the database (SQLite 3, DATA_DIR/posthorn.db) and everything kept
 * in it: the schema, its numbered migrations, and accounts with their
 * password hashes (argon2id) and sender domains (the rest: store_*.c, store_int.h).
 *
 * Promises:
 * - store_open() creates DATA_DIR (0700) and the database (0600) if
 *   missing, then applies every migration the file lacks, each in its own
 *   transaction; a database newer than this code is refused, never touched.
 * - The CLI and a running server may use the file at the same time (WAL,
 *   a busy timeout, and BEGIN IMMEDIATE for every multi-statement write).
 * - One struct store may be shared by threads: the connection is serialized
 *   (SQLITE_OPEN_FULLMUTEX) and st->lock keeps multi-statement transactions
 *   of two threads from interleaving on the one connection.
 * - Passwords are hashed outside the lock, never stored, never logged.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
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

#define STORE_DB_FILE         "posthorn.db"
#define STORE_BUSY_MS         5000
#define STORE_DEFAULT_ACCOUNT "default"
#define STORE_NAME_MAX        64
#define STORE_DOMAIN_MAX      253
#define STORE_LABEL_MAX       63

/*
 * Migrations: migrations[i] brings the schema from version i to i + 1
 * (PRAGMA user_version). Append only; never edit a step that has shipped.
 * accounts.id is AUTOINCREMENT so that an id is never reused: rows of later
 * tables (keys, events) that point at a deleted account must not come to
 * belong to the next account created.
 */
static const char *const migrations[] = {
    /* 0 -> 1: accounts and their sender domains; the built-in account. */
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE account_domains ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  domain TEXT NOT NULL,"
    "  PRIMARY KEY (account_id, domain)"
    ");"
    "CREATE INDEX account_domains_domain ON account_domains(domain);"
    "INSERT INTO accounts (name, password_hash, created_at)"
    "  VALUES ('" STORE_DEFAULT_ACCOUNT "', NULL, CAST(strftime('%s', 'now') AS INTEGER));",

    /*
     * 1 -> 2: delivery counters (store_stats.c), one row per hour, account,
     * recipient domain and event. The account is kept by name, not by
     * accounts.id: `posthorn stats` must still show the history of an
     * account that was deleted. WITHOUT ROWID: the key is the whole row
     * but for the count, so a separate rowid b-tree would only cost space.
     * The key starts with the bucket, so "since" is a range scan.
     */
    "CREATE TABLE counters ("
    "  bucket INTEGER NOT NULL,"
    "  account TEXT NOT NULL,"
    "  domain TEXT NOT NULL,"
    "  event TEXT NOT NULL"
    "    CHECK (event IN ('accepted', 'delivered', 'deferred', 'bounced', 'suppressed')),"
    "  count INTEGER NOT NULL CHECK (count >= 0),"
    "  PRIMARY KEY (bucket, account, domain, event)"
    ") WITHOUT ROWID;",

    /*
     * 2 -> 3: HTTP API keys (store_apikey.c): only the SHA-256 of each key,
     * in hex; ids are given by the code (max + 1) so that the SQL is the
     * same on PostgreSQL. Keys are never deleted, only revoked, so an id
     * is never reused; deleting the account deletes its keys.
     */
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  admin INTEGER NOT NULL CHECK (admin IN (0, 1)),"
    "  created_at BIGINT NOT NULL,"
    "  last_used_at BIGINT,"
    "  revoked_at BIGINT"
    ");"
    "CREATE INDEX api_keys_account ON api_keys(account_id);",

    /*
     * 3 -> 4: DKIM signing keys (store_dkim.c), one row per selector of a
     * sender domain. The key itself is in a 0600 file under DATA_DIR; the
     * row holds its path. Times are unix seconds; activated and retired
     * are NULL until the key gets there. Plain SQL PostgreSQL accepts too.
     */
    "CREATE TABLE dkim_keys ("
    "  domain TEXT NOT NULL,"
    "  selector TEXT NOT NULL,"
    "  algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa2048', 'ed25519')),"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired')),"
    "  created BIGINT NOT NULL,"
    "  activated BIGINT,"
    "  retired BIGINT,"
    "  key_path TEXT NOT NULL,"
    "  PRIMARY KEY (domain, selector)"
    ");"
    "CREATE INDEX dkim_keys_state ON dkim_keys (state, domain);",

    /*
     * 4 -> 5: message templates (store_tmpl.c), by account and name. The
     * text of each part as the client sent it (NULL: no such part);
     * revision is a new random number at every write, which caches
     * compare to know that what they compiled is still current (a
     * counter could come back to an old value after a delete and a
     * create).
     */
    "CREATE TABLE templates ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  text_part TEXT,"
    "  html_part TEXT,"
    "  revision BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (account_id, name)"
    ");",

    /*
     * 5 -> 6: suppression lists (store_supp.c), by account. address_key
     * is what lookups compare (store_supp_normalize(): the address with
     * ASCII letters lower-cased); address is what was first given, with
     * its domain lower-cased. The key is the primary key: a lookup is one
     * index probe.
     */
    "CREATE TABLE suppressions ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  address_key TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  PRIMARY KEY (account_id, address_key)"
    ");",
    store_tls_migration,       /* 6 -> 7: outbound TLS policy (SQL in store_tls.c) */
    store_events_migration,    /* 7 -> 8: events and webhooks (SQL in store_events.c) */
    store_unsub_migration,     /* 8 -> 9: accounts.unsubscribe (store_account_unsub.c) */
    store_deliv_migration,     /* 9 -> 10: quotas, reputation, VERP (SQL in store_deliv.c) */
    store_idem_migration,      /* 10 -> 11: Idempotency-Key records (store_idem.c) */
    store_idem_plan_migration, /* 11 -> 12: their planned messages (store_idem.c) */
};

#define SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

int store_schema_version(void)
{
	return SCHEMA_VERSION;
}

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
	return store_fail(err, "%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
}

/* For calls whose contract has no *err: the daemon's log gets the cause. */
static int log_db_error(struct store *st, const char *op)
{
	log_err("event=store_error db=%s op=%s error=%s", log_q(st->path), op,
	        log_q(sqlite3_errmsg(st->db)));
	return -1;
}

/* Runs fixed SQL (never SQL holding user input: that goes through bind). */
static int exec_sql(struct store *st, const char *sql, char **err)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return store_fail_db(st, err, sql);
	return 0;
}

sqlite3_stmt *store_prepare(struct store *st, const char *sql, char **err)
{
	sqlite3_stmt *stmt = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		store_fail_db(st, err, "prepare");
		return NULL;
	}
	return stmt;
}

sqlite3_stmt *store_prepare_kept(struct store *st, enum store_kept which, const char *sql,
                                 char **err)
{
	if (!st->kept[which])
		st->kept[which] = store_prepare(st, sql, err);
	return st->kept[which];
}

/*
 * IMMEDIATE takes the write lock at once, so the busy timeout applies to
 * it. A deferred transaction that reads first and writes later can fail
 * with SQLITE_BUSY at the write without waiting when another process
 * committed in between (WAL snapshots cannot be upgraded).
 */
int store_tx_begin(struct store *st, char **err)
{
	return exec_sql(st, "BEGIN IMMEDIATE", err);
}

int store_tx_commit(struct store *st, char **err)
{
	return exec_sql(st, "COMMIT", err);
}

/* Ends a failed transaction; the error being reported is the earlier one. */
int store_tx_rollback(struct store *st)
{
	if (sqlite3_get_autocommit(st->db) == 0)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
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
 * Creates the file ourselves so that it is 0600 whatever the umask: it
 * holds password hashes. SQLite gives the -wal and -shm files the mode of
 * the database file.
 */
static int make_db_file(const char *path, char **err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return store_fail(err, "cannot open %s: %s", path, strerror(errno));
	close(fd);
	return 0;
}

static int user_version(struct store *st, int *version, char **err)
{
	sqlite3_stmt *stmt = store_prepare(st, "PRAGMA user_version", err);
	int rc;

	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW)
		return store_fail_db(st, err, "PRAGMA user_version");
	return 0;
}

static int too_new(struct store *st, int version, char **err)
{
	return store_fail(err,
	                  "%s: schema version %d is newer than this posthorn knows (%d); "
	                  "run a newer posthorn",
	                  st->path, version, SCHEMA_VERSION);
}

/*
 * Applies step `to - 1 -> to` in one transaction: 1 applied, 0 another
 * process had (a CLI started at the same moment: the version is read again
 * inside the transaction, after the wait for the write lock), -1 error.
 */
static int migrate_step(struct store *st, int to, char **err)
{
	char set[64];
	int version;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if (user_version(st, &version, err) < 0)
		return store_tx_rollback(st);
	if (version > SCHEMA_VERSION) {
		store_tx_rollback(st);
		return too_new(st, version, err);
	}
	if (version < to) {
		/* PRAGMA takes no bound parameters; `to` is our own integer. */
		snprintf(set, sizeof set, "PRAGMA user_version = %d", to);
		if (exec_sql(st, migrations[to - 1], err) < 0 || exec_sql(st, set, err) < 0)
			return store_tx_rollback(st);
	}
	if (store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return version < to;
}

/* Checked before anything writes to the file, WAL switch included. */
static int refuse_newer(struct store *st, int *version, char **err)
{
	if (user_version(st, version, err) < 0)
		return -1;
	if (*version > SCHEMA_VERSION)
		return too_new(st, *version, err);
	return 0;
}

static int migrate(struct store *st, int version, char **err)
{
	int applied = 0, rc = 0;

	for (int to = version + 1; to <= SCHEMA_VERSION && rc >= 0; to++)
		applied += (rc = migrate_step(st, to, err)) > 0;
	if (rc < 0)
		return -1;
	if (applied) /* one line, however many steps: a new data directory takes them all */
		log_info("event=store_migrate db=%s from=%d to=%d", log_q(st->path), version,
		         SCHEMA_VERSION);
	return 0;
}

/*
 * WAL lets the server read while the CLI writes and the other way round.
 * synchronous=FULL: every commit is fsync'd before it returns. In WAL mode
 * NORMAL would also keep the file consistent, but a power cut could undo
 * the last commits, and here those are account changes an operator was
 * told had succeeded: a `user passwd` that revoked a leaked password must
 * not come back undone. They are rare, so the fsync costs nothing. The
 * counters would be fine with NORMAL, but the setting belongs to the
 * shared connection and they commit at most once a second, in one batch
 * (store_counts_add), so they pay one fsync a second and FULL stays.
 */
static int configure(struct store *st, char **err)
{
	sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
	sqlite3_extended_result_codes(st->db, 1);
	return exec_sql(st, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", err);
}

/* One attempt: 1 now in WAL, 0 busy (try again), -1 error. */
static int try_wal(struct store *st, char **err)
{
	sqlite3_stmt *stmt = store_prepare(st, "PRAGMA journal_mode = WAL", err);
	const char *mode;
	int rc, wal = 0;

	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(stmt, 0);
		wal = mode != NULL && ascii_casecmp(mode, "wal") == 0;
	}
	sqlite3_finalize(stmt);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return 0;
	if (!wal)
		return store_fail(err, "%s: cannot switch to WAL mode: %s", st->path,
		                  sqlite3_errmsg(st->db));
	return 1;
}

/*
 * WAL is recorded in the file, so it is set once the version is known
 * good. Switching a new file needs an exclusive lock, and SQLite does not
 * call the busy handler for it: when several processes create the database
 * at once (a server and a CLI), the losers retry here for the busy timeout.
 */
static int use_wal(struct store *st, char **err)
{
	const struct timespec pause = {0, 10 * 1000 * 1000};

	for (int waited_ms = 0; waited_ms < STORE_BUSY_MS; waited_ms += 10) {
		int rc = try_wal(st, err);

		if (rc != 0)
			return rc < 0 ? -1 : 0;
		nanosleep(&pause, NULL);
	}
	return store_fail(err, "%s: cannot switch to WAL mode: database is locked", st->path);
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

static int open_db(struct store *st, char **err)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;

	if (sqlite3_open_v2(st->path, &st->db, flags, NULL) != SQLITE_OK) {
		if (st->db == NULL)
			return store_fail(err, "%s: cannot open: out of memory", st->path);
		return store_fail_db(st, err, "cannot open");
	}
	return 0;
}

struct store *store_open(const char *data_dir, char **err)
{
	struct store *st;
	int version;

	if (crypto_init(err) < 0 || make_data_dir(data_dir, err) < 0)
		return NULL;
	st = xcalloc(1, sizeof *st);
	st->path = xasprintf("%s/%s", data_dir, STORE_DB_FILE);
	pthread_mutex_init(&st->lock, NULL);
	if (make_db_file(st->path, err) < 0 || open_db(st, err) < 0 || configure(st, err) < 0 ||
	    refuse_newer(st, &version, err) < 0 || use_wal(st, err) < 0 ||
	    migrate(st, version, err) < 0) {
		store_close(st);
		return NULL;
	}
	return st;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < STORE_KEPT_MAX; i++)
		sqlite3_finalize(st->kept[i]); /* NULL is a no-op */
	sqlite3_close(st->db);                 /* NULL is a no-op */
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

/* ---- accounts (callers hold st->lock) ---------------------------------- */

/* The account's id; 0 if there is none, -1 on error. */
static sqlite3_int64 account_id(struct store *st, const char *name, char **err)
{
	sqlite3_stmt *stmt = store_prepare(st, "SELECT id FROM accounts WHERE name = ?1", err);
	sqlite3_int64 id = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail_db(st, err, "account lookup");
	return id;
}

sqlite3_int64 store_account_id(struct store *st, const char *name, char **err)
{
	return account_id(st, name, err);
}

/* As account_id(), but "no such account" is an error too. */
static sqlite3_int64 account_id_existing(struct store *st, const char *name, char **err)
{
	sqlite3_int64 id = account_id(st, name, err);

	if (id == 0)
		return store_fail(err, "no such account '%s'", name);
	return id;
}

int store_step_done(struct store *st, sqlite3_stmt *stmt, const char *what, char **err)
{
	int rc = sqlite3_step(stmt);

	if (rc != SQLITE_DONE)
		store_fail_db(st, err, what);
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Domains are stored lower-case; a domain the account already has is kept. */
static int insert_domains(struct store *st, sqlite3_int64 id, const char *const *domains, size_t n,
                          char **err)
{
	static const char sql[] =
	    "INSERT OR IGNORE INTO account_domains (account_id, domain) VALUES (?1, ?2)";

	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *stmt = store_prepare(st, sql, err);
		char *lower = xstrdup(domains[i]);
		int rc;

		if (stmt == NULL) {
			free(lower);
			return -1;
		}
		ascii_lower(lower);
		sqlite3_bind_int64(stmt, 1, id);
		sqlite3_bind_text(stmt, 2, lower, -1, SQLITE_TRANSIENT);
		free(lower);
		rc = store_step_done(st, stmt, "add domain", err);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static sqlite3_int64 insert_account(struct store *st, const char *name, const char *hash,
                                    char **err)
{
	sqlite3_stmt *stmt = store_prepare(st,
	                                   "INSERT INTO accounts (name, password_hash, created_at)"
	                                   " VALUES (?1, ?2, ?3)",
	                                   err);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	if (hash != NULL)
		sqlite3_bind_text(stmt, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, clock_now_s());
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return store_fail(err, "account '%s' already exists", name);
	if (rc != SQLITE_DONE)
		return store_fail_db(st, err, "add account");
	return sqlite3_last_insert_rowid(st->db);
}

static int add_locked(struct store *st, const char *name, const char *hash,
                      const char *const *domains, size_t n_domains, char **err)
{
	sqlite3_int64 id;

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
	sqlite3_int64 id;
	sqlite3_stmt *stmt;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((id = account_id_existing(st, name, err)) < 0)
		return store_tx_rollback(st);
	/* Explicit rather than ON DELETE CASCADE: another tool may open the
	 * file without PRAGMA foreign_keys. */
	stmt = store_prepare(st, "DELETE FROM account_domains WHERE account_id = ?1", err);
	if (stmt == NULL)
		return store_tx_rollback(st);
	sqlite3_bind_int64(stmt, 1, id);
	if (store_step_done(st, stmt, "delete domains", err) < 0)
		return store_tx_rollback(st);
	if ((stmt = store_prepare(st, "DELETE FROM accounts WHERE id = ?1", err)) == NULL)
		return store_tx_rollback(st);
	sqlite3_bind_int64(stmt, 1, id);
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
	sqlite3_stmt *stmt =
	    store_prepare(st, "UPDATE accounts SET password_hash = ?2 WHERE name = ?1", err);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, hash, -1, SQLITE_STATIC);
	if (store_step_done(st, stmt, "set password", err) < 0)
		return -1;
	if (sqlite3_changes(st->db) == 0)
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
	sqlite3_int64 id;

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

static int delete_domain(struct store *st, const char *name, sqlite3_int64 id, const char *domain,
                         char **err)
{
	sqlite3_stmt *stmt = store_prepare(st,
	                                   "DELETE FROM account_domains"
	                                   " WHERE account_id = ?1 AND domain = lower(?2)",
	                                   err);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	sqlite3_bind_text(stmt, 2, domain, -1, SQLITE_STATIC);
	if (store_step_done(st, stmt, "remove domain", err) < 0)
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return store_fail(err, "account '%s' does not own domain '%s'", name, domain);
	return 0;
}

static int del_domains_locked(struct store *st, const char *name, const char *const *domains,
                              size_t n_domains, char **err)
{
	sqlite3_int64 id;

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
	sqlite3_stmt *stmt = store_prepare(st,
	                                   "SELECT a.name, d.domain FROM accounts a"
	                                   " LEFT JOIN account_domains d ON d.account_id = a.id"
	                                   " ORDER BY a.name, d.domain",
	                                   err);
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		rows_add(rows, (const char *)sqlite3_column_text(stmt, 0),
		         (const char *)sqlite3_column_text(stmt, 1));
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
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
	sqlite3_int64 id;

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
	sqlite3_stmt *stmt =
	    store_prepare(st, "SELECT password_hash FROM accounts WHERE name = ?1", NULL);
	const char *hash;
	int rc, found = 0;

	if (stmt == NULL)
		return log_db_error(st, "verify");
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		hash = (const char *)sqlite3_column_text(stmt, 0);
		/* A hash too long for the buffer cannot be ours: treat as none. */
		if (hash != NULL && strlen(hash) < crypto_pwhash_STRBYTES) {
			strcpy(out, hash);
			found = 1;
		}
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
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
	sqlite3_stmt *stmt = store_prepare(st,
	                                   "SELECT 1 FROM accounts a"
	                                   " JOIN account_domains d ON d.account_id = a.id"
	                                   " WHERE a.name = ?1 AND d.domain = lower(?2)",
	                                   NULL);
	int rc;

	if (stmt == NULL)
		return log_db_error(st, "owns_domain");
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, domain, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return log_db_error(st, "owns_domain");
	return rc == SQLITE_ROW;
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
