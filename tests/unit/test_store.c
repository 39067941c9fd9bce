/*
 * Unit tests for store/ (accounts in SQLite) and `posthorn user` (cli_user).
 * Each test gets a fresh temporary data directory; a second handle, or raw
 * sqlite3 calls, stand in for another process (the CLI beside a server).
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "store/store.h"
#include "util/util.h"

#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("store");

	if (f == NULL)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* store_user_list flattened to "name\tdomains\n..." */
static void list_cb(void *arg, const char *name, const char *domains)
{
	buf_printf(arg, "%s\t%s\n", name, domains);
}

static char *list(struct store *st)
{
	struct buf b;
	char *err = NULL;

	buf_init(&b);
	buf_puts(&b, "");
	if (store_user_list(st, list_cb, &b, &err) != 0)
		fail_msg("store_user_list: %s", err);
	return b.data;
}

static void assert_list(struct store *st, const char *want)
{
	char *got = list(st);

	assert_string_equal(got, want);
	free(got);
}

static void add_ok(struct store *st, const char *name, const char *pw, const char *const *domains,
                   size_t n)
{
	char *err = NULL;

	if (store_user_add(st, name, pw, domains, n, &err) != 0)
		fail_msg("store_user_add %s: %s", name, err);
}

/*
 * Expects rc -1 and an error message containing `want`. Takes &err: the
 * call that sets it is another argument of the same call.
 */
static void assert_fails_with(int rc, char **err, const char *want)
{
	assert_int_equal(rc, -1);
	assert_non_null(*err);
	if (strstr(*err, want) == NULL)
		fail_msg("error '%s' does not mention '%s'", *err, want);
	free(*err);
	*err = NULL;
}

/* ---- opening, schema ---------------------------------------------------- */

static void test_open_creates_db_and_default(void **state)
{
	struct fixture *f = *state;
	struct stat sb;
	struct store *st = open_ok(f);

	assert_int_equal(stat(f->data, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(stat(f->db, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_list(st, "default\t\n");
	assert_int_equal(store_user_exists(st, "default"), 1);
	/* No password: the built-in account cannot AUTH, whatever is tried. */
	assert_int_equal(store_user_verify(st, "default", ""), 0);
	assert_int_equal(store_user_verify(st, "default", "default"), 0);
	store_close(st);
	assert_int_equal(raw_int(f, "PRAGMA user_version"), store_schema_version());
	assert_int_equal(raw_int(f, "SELECT count(*) FROM accounts"), 1);
}

static void test_open_uses_wal(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	sqlite3 *db;
	sqlite3_stmt *stmt;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	store_close(st);
}

static void test_open_fails_on_file_as_dir(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	int fd = open(f->data, O_CREAT | O_WRONLY, 0600);

	assert_true(fd >= 0);
	close(fd);
	assert_null(store_open(f->data, &err));
	assert_fails_with(-1, &err, "not a directory");
}

static void test_reopen_keeps_data_without_remigrating(void **state)
{
	struct fixture *f = *state;
	const char *d[] = {"a.example"};
	struct store *st = open_ok(f);

	add_ok(st, "alice", "pw-alice", d, 1);
	store_close(st);
	/* A re-run of migration 1 would fail (tables exist) or reset this. */
	raw_exec(f, "UPDATE accounts SET created_at = 42 WHERE name = 'default'");
	st = open_ok(f);
	assert_list(st, "alice\ta.example\ndefault\t\n");
	assert_int_equal(store_user_verify(st, "alice", "pw-alice"), 1);
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT created_at FROM accounts WHERE name = 'default'"), 42);
	assert_int_equal(raw_int(f, "PRAGMA user_version"), store_schema_version());
}

static void test_future_schema_refused(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;

	store_close(open_ok(f));
	raw_exec(f, "PRAGMA user_version = 999");
	assert_null(store_open(f->data, &err));
	assert_fails_with(-1, &err, "newer");
	/* Refused, not touched. */
	assert_int_equal(raw_int(f, "PRAGMA user_version"), 999);
}

/* Several processes (a server and CLIs) opening a new data dir at once:
 * each migration is applied exactly once and every open succeeds. */
static void test_concurrent_first_open(void **state)
{
	struct fixture *f = *state;
	pid_t pids[6];
	int status;

	for (size_t i = 0; i < ARRAY_LEN(pids); i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char *err = NULL;
			struct store *st = store_open(f->data, &err);

			if (st == NULL)
				fprintf(stderr, "child: %s\n", err);
			_exit(st && store_user_exists(st, "default") == 1 ? 0 : 1);
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(pids); i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(raw_int(f, "SELECT count(*) FROM accounts"), 1);
	assert_int_equal(raw_int(f, "PRAGMA user_version"), store_schema_version());
}

/* ---- accounts ----------------------------------------------------------- */

static void test_add_list_del_passwd(void **state)
{
	struct fixture *f = *state;
	const char *d[] = {"b.example", "a.example"};
	struct store *st = open_ok(f);
	char *err = NULL;

	add_ok(st, "bob", "secret-1", d, 2);
	add_ok(st, "carol", NULL, NULL, 0);
	assert_list(st, "bob\ta.example,b.example\ncarol\t\ndefault\t\n");
	assert_int_equal(store_user_verify(st, "bob", "secret-1"), 1);

	assert_int_equal(store_user_passwd(st, "bob", "secret-2", &err), 0);
	assert_int_equal(store_user_verify(st, "bob", "secret-1"), 0);
	assert_int_equal(store_user_verify(st, "bob", "secret-2"), 1);
	assert_fails_with(store_user_passwd(st, "nobody", "x", &err), &err, "no such account");
	assert_fails_with(store_user_passwd(st, "bob", "", &err), &err, "empty password");

	assert_int_equal(store_user_del(st, "bob", &err), 0);
	assert_list(st, "carol\t\ndefault\t\n");
	assert_int_equal(store_user_verify(st, "bob", "secret-2"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM account_domains"), 0);
	assert_fails_with(store_user_del(st, "bob", &err), &err, "no such account 'bob'");
	store_close(st);
}

static void test_duplicate_add_fails(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char *err = NULL;

	add_ok(st, "dave", "pw", NULL, 0);
	assert_fails_with(store_user_add(st, "dave", "other", NULL, 0, &err), &err,
	                  "account 'dave' already exists");
	assert_fails_with(store_user_add(st, "default", "pw", NULL, 0, &err), &err,
	                  "account 'default' already exists");
	/* The first password still holds. */
	assert_int_equal(store_user_verify(st, "dave", "pw"), 1);
	store_close(st);
}

static void test_add_rejects_bad_input(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"good.example", "bad..example"};
	struct store *st = open_ok(f);
	char *err = NULL;

	assert_fails_with(store_user_add(st, "with space", "pw", NULL, 0, &err), &err,
	                  "invalid account name");
	assert_fails_with(store_user_add(st, "erin", "", NULL, 0, &err), &err, "empty password");
	assert_fails_with(store_user_add(st, "erin", "pw", bad, 2, &err), &err,
	                  "invalid domain 'bad..example'");
	/* Nothing half-done. */
	assert_int_equal(store_user_exists(st, "erin"), 0);
	assert_list(st, "default\t\n");
	store_close(st);
}

static void test_cannot_delete_default(void **state)
{
	struct fixture *f = *state;
	const char *d[] = {"relay.example"};
	struct store *st = open_ok(f);
	char *err = NULL;

	assert_fails_with(store_user_del(st, "default", &err), &err, "cannot be deleted");
	assert_fails_with(store_user_passwd(st, "default", "pw", &err), &err, "cannot log in");
	/* But it may own domains. */
	assert_int_equal(store_user_add_domains(st, "default", d, 1, &err), 0);
	assert_int_equal(store_user_owns_domain(st, "default", "relay.example"), 1);
	assert_list(st, "default\trelay.example\n");
	store_close(st);
}

static void test_verify(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);

	add_ok(st, "frank", "correct horse", NULL, 0);
	add_ok(st, "nopw", NULL, NULL, 0);
	assert_int_equal(store_user_verify(st, "frank", "correct horse"), 1);
	assert_int_equal(store_user_verify(st, "frank", "correct horse "), 0);
	assert_int_equal(store_user_verify(st, "frank", "Correct horse"), 0);
	assert_int_equal(store_user_verify(st, "frank", ""), 0);
	assert_int_equal(store_user_verify(st, "Frank", "correct horse"), 0);
	assert_int_equal(store_user_verify(st, "nobody", "correct horse"), 0);
	assert_int_equal(store_user_verify(st, "nopw", ""), 0);
	/* The hash is argon2id, not the password. */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM accounts WHERE name = 'frank'"
	                            " AND password_hash LIKE '$argon2id$%'"),
	                 1);
	store_close(st);
}

static double verify_seconds(struct store *st, const char *name, const char *pw)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_user_verify(st, name, pw), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* Loose bounds: the point is that an unknown name still pays for argon2id. */
static void test_verify_unknown_takes_as_long(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	double known, unknown;

	add_ok(st, "gina", "pw-gina", NULL, 0);
	/* The fastest of three interleaved runs each: on a busy machine a
	 * single run measures the neighbours, the minimum measures the work. */
	known = unknown = 1e9;
	for (int i = 0; i < 3; i++) {
		double k = verify_seconds(st, "gina", "wrong");
		double u = verify_seconds(st, "nobody", "wrong");
		known = k < known ? k : known;
		unknown = u < unknown ? u : unknown;
	}
	if (unknown < known / 2 || unknown > known * 2)
		fail_msg("known %.3fs vs unknown %.3fs", known, unknown);
	store_close(st);
}

/* ---- domains ------------------------------------------------------------ */

static void test_owns_domain_case_insensitive(void **state)
{
	struct fixture *f = *state;
	const char *d[] = {"Example.COM"};
	struct store *st = open_ok(f);

	add_ok(st, "hank", "pw", d, 1);
	add_ok(st, "ivy", "pw", NULL, 0);
	assert_list(st, "default\t\nhank\texample.com\nivy\t\n");
	assert_int_equal(store_user_owns_domain(st, "hank", "example.com"), 1);
	assert_int_equal(store_user_owns_domain(st, "hank", "EXAMPLE.Com"), 1);
	assert_int_equal(store_user_owns_domain(st, "hank", "sub.example.com"), 0);
	assert_int_equal(store_user_owns_domain(st, "hank", "example.org"), 0);
	assert_int_equal(store_user_owns_domain(st, "ivy", "example.com"), 0);
	assert_int_equal(store_user_owns_domain(st, "nobody", "example.com"), 0);
	store_close(st);
}

static void test_domain_add_del(void **state)
{
	struct fixture *f = *state;
	const char *d1[] = {"one.example", "two.example"};
	const char *d2[] = {"TWO.example", "three.example"};
	const char *gone[] = {"one.example", "never.example"};
	struct store *st = open_ok(f);
	char *err = NULL;

	add_ok(st, "jack", "pw", d1, 2);
	assert_int_equal(store_user_add_domains(st, "jack", d2, 2, &err), 0);
	assert_list(st, "default\t\njack\tone.example,three.example,two.example\n");
	/* All or nothing: one.example stays because never.example is not owned. */
	assert_fails_with(store_user_del_domains(st, "jack", gone, 2, &err), &err,
	                  "does not own domain 'never.example'");
	assert_int_equal(store_user_del_domains(st, "jack", gone, 1, &err), 0);
	assert_list(st, "default\t\njack\tthree.example,two.example\n");
	assert_fails_with(store_user_add_domains(st, "nobody", d1, 1, &err), &err,
	                  "no such account");
	store_close(st);
}

static void test_name_and_domain_rules(void **state)
{
	char name65[66], label64[70], long_domain[260];

	memset(name65, 'a', 65);
	name65[65] = '\0';
	assert_true(store_account_name_valid("a"));
	assert_true(store_account_name_valid("user.name+tag@example.com"));
	assert_true(store_account_name_valid(name65 + 1));
	assert_false(store_account_name_valid(name65));
	assert_false(store_account_name_valid(""));
	assert_false(store_account_name_valid("a b"));
	assert_false(store_account_name_valid("a:b"));

	memset(label64, 'x', 64);
	strcpy(label64 + 64, ".com");
	for (int i = 0; i < 254; i++)
		long_domain[i] = i % 2 ? '.' : 'a';
	long_domain[253] = '\0'; /* 253 chars ending in 'a' */
	assert_true(store_domain_valid("example.com"));
	assert_true(store_domain_valid("Mail-1.EXAMPLE.com"));
	assert_true(store_domain_valid("localhost"));
	assert_true(store_domain_valid("xn--bcher-kva.example"));
	assert_true(store_domain_valid(long_domain));
	long_domain[253] = 'a';
	long_domain[254] = '\0';
	assert_false(store_domain_valid(long_domain));
	assert_true(store_domain_valid(label64 + 1));
	assert_false(store_domain_valid(label64));
	assert_false(store_domain_valid(""));
	assert_false(store_domain_valid(".example.com"));
	assert_false(store_domain_valid("example.com."));
	assert_false(store_domain_valid("a..b"));
	assert_false(store_domain_valid("-a.com"));
	assert_false(store_domain_valid("a-.com"));
	assert_false(store_domain_valid("a_b.com"));
	assert_false(store_domain_valid("exa mple.com"));
}

/* ---- two handles, threads ----------------------------------------------- */

static void test_two_handles_see_each_other(void **state)
{
	struct fixture *f = *state;
	const char *d[] = {"k.example"};
	struct store *cli = open_ok(f);
	struct store *server = open_ok(f);
	char *err = NULL;

	add_ok(cli, "kate", "pw-1", d, 1);
	assert_int_equal(store_user_verify(server, "kate", "pw-1"), 1);
	assert_int_equal(store_user_owns_domain(server, "kate", "k.example"), 1);
	assert_int_equal(store_user_passwd(cli, "kate", "pw-2", &err), 0);
	assert_int_equal(store_user_verify(server, "kate", "pw-1"), 0);
	assert_int_equal(store_user_verify(server, "kate", "pw-2"), 1);
	assert_int_equal(store_user_del(server, "kate", &err), 0);
	assert_list(cli, "default\t\n");
	assert_int_equal(store_user_owns_domain(server, "kate", "k.example"), 0);
	store_close(server);
	store_close(cli);
}

struct thread_arg {
	struct store *st;
	int n;
};

static void *add_many(void *p)
{
	struct thread_arg *a = p;
	char name[32], domain[32];
	const char *d[] = {domain};

	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "t%d-%d", a->n, i);
		snprintf(domain, sizeof domain, "d%d.example", i);
		add_ok(a->st, name, NULL, d, 1);
		assert_int_equal(store_user_owns_domain(a->st, name, domain), 1);
	}
	return NULL;
}

/* One handle shared by threads: transactions must not interleave. */
static void test_threads_share_a_handle(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct thread_arg args[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){st, i};
		assert_int_equal(pthread_create(&t[i], NULL, add_many, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM accounts"), 41);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM account_domains"), 40);
}

/* ---- the command line --------------------------------------------------- */

/*
 * Runs cli_user with `input` on stdin; stdout goes to *out (malloc'd).
 * stderr is left alone: the messages show in the test log.
 */
static int run_cli(const struct fixture *f, const char *input, char **out, int argc, ...)
{
	struct conf c = {.data_dir = f->data};
	char *argv[16], path[128];
	va_list ap;
	int rc, in_fd, out_fd, saved_in = dup(0), saved_out = dup(1);
	FILE *fp;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	argv[argc] = NULL;
	va_end(ap);

	snprintf(path, sizeof path, "%s/stdin", f->base);
	fp = fopen(path, "w");
	fputs(input, fp);
	fclose(fp);
	in_fd = open(path, O_RDONLY);
	snprintf(path, sizeof path, "%s/stdout", f->base);
	out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fflush(stdout);
	dup2(in_fd, 0);
	dup2(out_fd, 1);
	rc = cli_user(argc, argv, &c);
	fflush(stdout);
	dup2(saved_in, 0);
	dup2(saved_out, 1);
	close(in_fd);
	close(out_fd);
	close(saved_in);
	close(saved_out);

	if (out != NULL) {
		struct buf b;
		char chunk[512];
		size_t n;

		buf_init(&b);
		buf_puts(&b, "");
		fp = fopen(path, "r");
		while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
			buf_append(&b, chunk, n);
		fclose(fp);
		*out = b.data;
	}
	return rc;
}

static void test_cli_user(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	char *out;

	assert_int_equal(run_cli(f, "s3cret\n", NULL, 7, "user", "add", "lena", "--password-stdin",
	                         "--domain", "Lena.example", "--domain=l2.example"),
	                 0);
	assert_int_equal(run_cli(f, "", &out, 2, "user", "list"), 0);
	assert_string_equal(out, "default\t\nlena\tl2.example,lena.example\n");
	free(out);

	st = open_ok(f);
	assert_int_equal(store_user_verify(st, "lena", "s3cret"), 1);
	store_close(st);

	/* CRLF from a Windows-made file: the CR is not part of the password. */
	assert_int_equal(
	    run_cli(f, "n3w\r\n", NULL, 4, "user", "passwd", "lena", "--password-stdin"), 0);
	assert_int_equal(run_cli(f, "", NULL, 5, "user", "domain", "del", "lena", "l2.example"), 0);
	assert_int_equal(run_cli(f, "", NULL, 5, "user", "domain", "add", "lena", "l3.example"), 0);
	st = open_ok(f);
	assert_int_equal(store_user_verify(st, "lena", "n3w"), 1);
	assert_list(st, "default\t\nlena\tl3.example,lena.example\n");
	store_close(st);

	assert_int_equal(run_cli(f, "", NULL, 3, "user", "del", "lena"), 0);
	assert_int_equal(run_cli(f, "", &out, 2, "user", "list"), 0);
	assert_string_equal(out, "default\t\n");
	free(out);
}

static void test_cli_user_errors(void **state)
{
	struct fixture *f = *state;

	/* Usage errors: 2. */
	assert_int_equal(run_cli(f, "", NULL, 1, "user"), 2);
	assert_int_equal(run_cli(f, "", NULL, 2, "user", "frobnicate"), 2);
	assert_int_equal(run_cli(f, "", NULL, 2, "user", "add"), 2);
	assert_int_equal(run_cli(f, "pw\n", NULL, 4, "user", "add", "bad name", "--password-stdin"),
	                 2);
	assert_int_equal(run_cli(f, "pw\n", NULL, 6, "user", "add", "m", "--password-stdin",
	                         "--domain", "bad..domain"),
	                 2);
	assert_int_equal(
	    run_cli(f, "pw\n", NULL, 5, "user", "add", "m", "--password-stdin", "--domain"), 2);
	assert_int_equal(run_cli(f, "", NULL, 4, "user", "list", "--bogus", "x"), 2);
	assert_int_equal(run_cli(f, "", NULL, 4, "user", "domain", "add", "m"), 2);

	/* Runtime errors: 1. */
	assert_int_equal(run_cli(f, "\n", NULL, 4, "user", "add", "m", "--password-stdin"), 1);
	assert_int_equal(run_cli(f, "", NULL, 4, "user", "add", "m", "--password-stdin"), 1);
	assert_int_equal(run_cli(f, "pw\n", NULL, 4, "user", "add", "m", "--password-stdin"), 0);
	assert_int_equal(run_cli(f, "pw\n", NULL, 4, "user", "add", "m", "--password-stdin"), 1);
	assert_int_equal(run_cli(f, "", NULL, 3, "user", "del", "default"), 1);
	assert_int_equal(run_cli(f, "", NULL, 3, "user", "del", "nobody"), 1);
	assert_int_equal(
	    run_cli(f, "pw\n", NULL, 4, "user", "passwd", "nobody", "--password-stdin"), 1);
	assert_int_equal(
	    run_cli(f, "pw\n", NULL, 4, "user", "passwd", "default", "--password-stdin"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_open_creates_db_and_default),
	    T(test_open_uses_wal),
	    T(test_open_fails_on_file_as_dir),
	    T(test_reopen_keeps_data_without_remigrating),
	    T(test_future_schema_refused),
	    T(test_concurrent_first_open),
	    T(test_add_list_del_passwd),
	    T(test_duplicate_add_fails),
	    T(test_add_rejects_bad_input),
	    T(test_cannot_delete_default),
	    T(test_verify),
	    T(test_verify_unknown_takes_as_long),
	    T(test_owns_domain_case_insensitive),
	    T(test_domain_add_del),
	    T(test_name_and_domain_rules),
	    T(test_two_handles_see_each_other),
	    T(test_threads_share_a_handle),
	    T(test_cli_user),
	    T(test_cli_user_errors),
#undef T
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
