/*
 * store_secret.h: the cluster's secret key file ([cluster] secret_key_file;
 * store_secret.c), checked without opening a store (check-config).
 */
#ifndef POSTHORN_STORE_SECRET_H
#define POSTHORN_STORE_SECRET_H

/* Reads path as the server will: 0 when it holds 64 hex digits, -1 and a
 * malloc'd *err (naming the file and what to do, never quoting its
 * content) otherwise. The key itself is wiped before this returns. */
int store_secret_check(const char *path, char **err);

#endif
