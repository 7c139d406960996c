/* Small building blocks: a growable string buffer, JSON escaping, RFC 3339
 * timestamps (all pure and unit tested) and file helpers (thin syscalls). */
#ifndef FLOTILLA_SHIM_UTIL_H
#define FLOTILLA_SHIM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"

struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
	bool oom; /* sticky: an append failed to allocate */
};

void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as the inside of a JSON string: escapes quotes, backslashes and
 * control characters, and replaces bytes that are not valid UTF-8 with U+FFFD
 * (as Go's encoding/json does, so docker tooling reads the same text). */
void sb_json_str(struct strbuf *sb, const char *s, size_t n);
/* Appends "s" quoted, or null when s is NULL. */
void sb_json_quoted(struct strbuf *sb, const char *s);

#define SHIM_TIME_MAX 40
/* 2006-01-02T15:04:05.123456789Z (UTC, always nine fraction digits). */
void fmt_rfc3339(const struct timespec *ts, char out[SHIM_TIME_MAX]);

/* Writes value to path (O_WRONLY|O_TRUNC, no create). err: "write <name>". */
int write_file(const char *path, const char *value, struct shim_err *err);
/* Reads up to size-1 bytes, NUL-terminates. Returns bytes read or -1. */
ssize_t read_file(const char *path, char *buf, size_t size, struct shim_err *err);
/* mkdir -p; existing directories are fine. */
int mkdir_p(const char *path, mode_t mode, struct shim_err *err);
/* Writes all of buf, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);

#endif
