/*
 * tmpl_js: the few JavaScript rules that decide mustache.js's output on
 * JSON data, so that Posthorn's output is the same byte for byte: what
 * RegExp \s calls whitespace, how Number.prototype.toString() writes a
 * number, which properties a value has (object keys, array indexes and
 * length, string indexes and length counted in UTF-16 units) and which
 * values are falsy. PURE: libc, util and jansson's accessors.
 */
#include "tmpl/tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- whitespace ---------- */

/* RegExp \s beyond ASCII, in UTF-8: U+00A0, U+1680, U+2000..U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF. */
static size_t js_space_len_utf8(const unsigned char *u, size_t n)
{
	if (n >= 2 && u[0] == 0xC2 && u[1] == 0xA0)
		return 2;
	if (n < 3)
		return 0;
	if (u[0] == 0xE1)
		return u[1] == 0x9A && u[2] == 0x80 ? 3 : 0;
	if (u[0] == 0xE2 && u[1] == 0x80)
		return (u[2] >= 0x80 && u[2] <= 0x8A) || u[2] == 0xA8 || u[2] == 0xA9 ||
		               u[2] == 0xAF
		           ? 3
		           : 0;
	if (u[0] == 0xE2)
		return u[1] == 0x81 && u[2] == 0x9F ? 3 : 0;
	if (u[0] == 0xE3)
		return u[1] == 0x80 && u[2] == 0x80 ? 3 : 0;
	if (u[0] == 0xEF)
		return u[1] == 0xBB && u[2] == 0xBF ? 3 : 0;
	return 0;
}

size_t js_space_len(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	if (n == 0)
		return 0;
	if (u[0] == ' ' || (u[0] >= '\t' && u[0] <= '\r'))
		return 1;
	if (u[0] < 0x80)
		return 0;
	return js_space_len_utf8(u, n);
}

/* ---------- numbers ---------- */

/* The shortest digits that read back as d (d > 0, finite): digits without
 * the point into dig, and the decimal exponent n with d = 0.DIGITS * 10^n. */
static int shortest_digits(double d, char dig[20], int *n)
{
	char tmp[40], *e;
	int prec, k = 0;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	for (e = tmp; *e && *e != 'e'; e++)
		if (*e >= '0' && *e <= '9')
			dig[k++] = *e;
	while (k > 1 && dig[k - 1] == '0')
		k--;
	dig[k] = '\0';
	*n = atoi(e + 1) + 1;
	return k;
}

/* ECMA-262 Number::toString, radix 10, for finite d > 0. */
static void js_number_positive(double d, char *o)
{
	char dig[20];
	int n, k = shortest_digits(d, dig, &n);

	if (k <= n && n <= 21) {
		memcpy(o, dig, (size_t)k);
		memset(o + k, '0', (size_t)(n - k));
		o[n] = '\0';
	} else if (0 < n && n <= 21) {
		memcpy(o, dig, (size_t)n);
		o[n] = '.';
		strcpy(o + n + 1, dig + n);
	} else if (-6 < n && n <= 0) {
		o[0] = '0';
		o[1] = '.';
		memset(o + 2, '0', (size_t)-n);
		strcpy(o + 2 - n, dig);
	} else {
		int x = n - 1;
		*o++ = dig[0];
		if (k > 1) {
			*o++ = '.';
			memcpy(o, dig + 1, (size_t)(k - 1));
			o += k - 1;
		}
		sprintf(o, "e%c%d", x < 0 ? '-' : '+', abs(x));
	}
}

void js_number(double d, char out[32])
{
	if (isnan(d)) {
		strcpy(out, "NaN");
	} else if (isinf(d)) {
		strcpy(out, d < 0 ? "-Infinity" : "Infinity");
	} else if (d == 0) {
		strcpy(out, "0"); /* -0 too */
	} else if (d < 0) {
		out[0] = '-';
		js_number_positive(-d, out + 1);
	} else {
		js_number_positive(d, out);
	}
}

/* ---------- strings as UTF-16 ---------- */

/* Bytes of the UTF-8 character at s (1 for a stray byte), and its UTF-16 units. */
static size_t utf8_char(const unsigned char *s, size_t n, int *units)
{
	size_t len = 1;

	*units = 1;
	if (s[0] >= 0xF0 && s[0] <= 0xF7) {
		len = 4;
		*units = 2;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		len = 3;
	} else if (s[0] >= 0xC0 && s[0] <= 0xDF) {
		len = 2;
	}
	return len <= n ? len : n;
}

static size_t utf16_len(const char *s, size_t n)
{
	size_t i = 0, units = 0;

	while (i < n) {
		int u;
		i += utf8_char((const unsigned char *)s + i, n - i, &u);
		units += (size_t)u;
	}
	return units;
}

/* s[idx] in UTF-16 units, as a one-character string. 0 if idx is past the end. */
static int utf16_at(const char *s, size_t n, size_t idx, struct jv *out)
{
	size_t i = 0, unit = 0;

	while (i < n) {
		int u;
		size_t len = utf8_char((const unsigned char *)s + i, n - i, &u);
		if (idx < unit + (size_t)u) {
			out->kind = JV_CHAR;
			if (u == 2) {
				memcpy(out->ch, "\xEF\xBF\xBD", 3); /* a lone surrogate */
				out->ch_len = 3;
			} else {
				memcpy(out->ch, s + i, len);
				out->ch_len = len;
			}
			return 1;
		}
		i += len;
		unit += (size_t)u;
	}
	return 0;
}

/* ---------- properties ---------- */

/* A canonical array index: "0" or digits without a leading zero, below 2^32 - 1. */
static int array_index(const char *s, size_t n, size_t *idx)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v >= 0xFFFFFFFFu)
		return 0;
	*idx = (size_t)v;
	return 1;
}

static int is_length(const char *s, size_t n)
{
	return n == 6 && memcmp(s, "length", 6) == 0;
}

static int set_num(struct jv *out, double d)
{
	out->kind = JV_NUM;
	out->num = d;
	return 1;
}

static int set_json(struct jv *out, const json_t *j)
{
	if (!j)
		return 0;
	out->kind = JV_JSON;
	out->j = j;
	return 1;
}

static int array_prop(const json_t *a, const char *name, size_t n, struct jv *out)
{
	size_t idx;

	if (is_length(name, n))
		return set_num(out, (double)json_array_size(a));
	if (array_index(name, n, &idx))
		return set_json(out, json_array_get(a, idx));
	return 0;
}

static int string_prop(const char *s, size_t len, const char *name, size_t n, struct jv *out)
{
	size_t idx;

	if (is_length(name, n))
		return set_num(out, (double)utf16_len(s, len));
	if (array_index(name, n, &idx))
		return utf16_at(s, len, idx, out);
	return 0;
}

int jv_prop(const struct jv *v, const char *name, size_t n, int primitives, struct jv *out)
{
	struct jv in = *v; /* out may be v */

	memset(out, 0, sizeof(*out));
	if (in.kind == JV_CHAR && primitives)
		return string_prop(in.ch, in.ch_len, name, n, out);
	if (in.kind != JV_JSON)
		return 0;
	if (json_is_object(in.j))
		return set_json(out, json_object_getn(in.j, name, n));
	if (json_is_array(in.j))
		return array_prop(in.j, name, n, out);
	if (json_is_string(in.j) && primitives)
		return string_prop(json_string_value(in.j), json_string_length(in.j), name, n, out);
	return 0;
}

int jv_nullish(const struct jv *v)
{
	return v->kind == JV_UNDEF || (v->kind == JV_JSON && json_is_null(v->j));
}

int jv_truthy(const struct jv *v)
{
	switch (v->kind) {
	case JV_UNDEF:
		return 0;
	case JV_NUM:
		return v->num != 0 && !isnan(v->num);
	case JV_CHAR:
		return 1;
	case JV_JSON:
		break;
	}
	switch (json_typeof(v->j)) {
	case JSON_NULL:
	case JSON_FALSE:
		return 0;
	case JSON_INTEGER:
		return json_integer_value(v->j) != 0;
	case JSON_REAL:
		return json_real_value(v->j) != 0 && !isnan(json_real_value(v->j));
	case JSON_STRING:
		return json_string_length(v->j) > 0;
	default:
		return 1; /* true, objects, arrays (even empty) */
	}
}
