/*
 * Unit tests for the [http] keys of conf: the section's presence (SPEC 2:
 * a file without [http] runs no HTTP listener; the embedded default has
 * one), max_request_size, timeout and max_connections, and their errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "util/util.h"

static char *write_conf(const char *text)
{
	char path[] = "/tmp/posthorn-test-httpconf-XXXXXX";
	int fd = mkstemp(path);
	ssize_t n = (ssize_t)strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, (size_t)n), n);
	close(fd);
	return xstrdup(path);
}

/* Loads text; returns the conf (NULL on errors, then *errors is set). */
static struct conf *load(const char *text, char **errors)
{
	char *path = write_conf(text);
	struct conf *c;

	*errors = NULL;
	c = conf_load(path, errors);
	unlink(path);
	free(path);
	return c;
}

#define BASE "[server]\ndata_dir = /tmp/x\nhostname = relay.test\n"

static void test_default_has_http(void **state)
{
	char *errors = NULL;
	struct conf *c = conf_load(NULL, &errors);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->http_enabled, 1);
	assert_string_equal(c->http_address.text, "127.0.0.1:8025");
	assert_int_equal(c->http_max_request_size, 50 * 1024 * 1024);
	assert_int_equal(c->http_timeout, 30);
	assert_int_equal(c->http_max_connections, 256);
	conf_free(c);
}

static void test_file_without_http(void **state)
{
	char *errors;
	struct conf *c = load(BASE, &errors);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->http_enabled, 0);
	conf_free(c);
	c = load(BASE "[http]\n", &errors);
	assert_non_null(c);
	assert_int_equal(c->http_enabled, 1);
	assert_string_equal(c->http_address.text, "127.0.0.1:8025");
	conf_free(c);
}

static void test_keys(void **state)
{
	char *errors;
	struct conf *c = load(BASE "[http]\naddress = [::1]:9000\nmax_request_size = 2k\n"
	                           "timeout = 2m\nmax_connections = 10\n",
	                      &errors);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->http_max_request_size, 2048);
	assert_int_equal(c->http_timeout, 120);
	assert_int_equal(c->http_max_connections, 10);
	conf_free(c);
}

static void test_errors(void **state)
{
	static const char *const bad[][2] = {
	    {"max_request_size = 0", "max_request_size in [http]"},
	    {"max_request_size = lots", "max_request_size in [http]"},
	    {"timeout = 0", "timeout in [http]"},
	    {"timeout = soon", "timeout in [http]"},
	    {"max_connections = 0", "max_connections in [http]"},
	    {"max_body = 1", "unknown key 'max_body' in [http]"},
	};
	char *errors, *text;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		text = xasprintf(BASE "[http]\n%s\n", bad[i][0]);
		assert_null(load(text, &errors));
		if (!errors || !strstr(errors, bad[i][1]))
			fail_msg("'%s': errors '%s' lack '%s'", bad[i][0], errors, bad[i][1]);
		if (!strstr(errors, ":5: "))
			fail_msg("'%s': no line number in '%s'", bad[i][0], errors);
		free(errors);
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_has_http),
	    cmocka_unit_test(test_file_without_http),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
