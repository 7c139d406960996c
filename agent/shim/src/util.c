/* See util.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	sb->oom = false;
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

static bool sb_grow(struct strbuf *sb, size_t extra)
{
	if (sb->oom)
		return false;
	if (sb->len + extra + 1 <= sb->cap)
		return true;
	size_t cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	char *b = realloc(sb->buf, cap);
	if (b == NULL) {
		sb->oom = true;
		return false;
	}
	sb->buf = b;
	sb->cap = cap;
	return true;
}

void sb_append(struct strbuf *sb, const char *s, size_t n)
{
	if (!sb_grow(sb, n))
		return;
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sb_puts(struct strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sb_grow(sb, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid/truncated. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and beyond U+10FFFF are invalid */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void sb_json_str(struct strbuf *sb, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	/* worst case every byte becomes \u00XX or U+FFFD (6 bytes) */
	if (!sb_grow(sb, n * 6))
		return;
	char *o = sb->buf + sb->len;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c < 0x80) {
			*o++ = '\\';
			switch (c) {
			case '"':
				*o++ = '"';
				break;
			case '\\':
				*o++ = '\\';
				break;
			case '\n':
				*o++ = 'n';
				break;
			case '\r':
				*o++ = 'r';
				break;
			case '\t':
				*o++ = 't';
				break;
			case '\b':
				*o++ = 'b';
				break;
			case '\f':
				*o++ = 'f';
				break;
			default:
				o += sprintf(o, "u%04x", c);
				break;
			}
			i++;
			continue;
		}
		size_t len = utf8_seq(s + i, n - i);
		if (len == 0) {
			memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD for one invalid byte */
			o += 3;
			i++;
		} else {
			memcpy(o, s + i, len);
			o += len;
			i += len;
		}
	}
	sb->len = (size_t)(o - sb->buf);
	sb->buf[sb->len] = '\0';
}

void sb_json_quoted(struct strbuf *sb, const char *s)
{
	if (s == NULL) {
		sb_puts(sb, "null");
		return;
	}
	sb_append(sb, "\"", 1);
	sb_json_str(sb, s, strlen(s));
	sb_append(sb, "\"", 1);
}

/* Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
 * civil_from_days), so no libc time zone machinery is involved: glibc's
 * gmtime_r and strftime read /etc/localtime on first use. */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
	z += 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (long long)yoe + era * 400 + (*m <= 2);
}

void fmt_rfc3339(const struct timespec *ts, char out[SHIM_TIME_MAX])
{
	long long sec = ts->tv_sec;
	long long days = sec >= 0 ? sec / 86400 : (sec - 86399) / 86400;
	long long rem = sec - days * 86400;
	long long y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	snprintf(out, SHIM_TIME_MAX, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%09ldZ", y, m, d, rem / 3600, rem / 60 % 60,
	         rem % 60, (long)ts->tv_nsec);
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int write_file(const char *path, const char *value, struct shim_err *err)
{
	const char *name = strrchr(path, '/');
	name = name ? name + 1 : path;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return shim_fail(err, errno, "write %s", name);
	/* cgroup files take one value per write(2): never split it */
	ssize_t w = write(fd, value, strlen(value));
	if (w < 0)
		return shim_fail(err, errno, "write %s", name);
	if ((size_t)w != strlen(value))
		return shim_fail(err, EIO, "write %s: short write", name);
	return 0;
}

ssize_t read_file(const char *path, char *buf, size_t size, struct shim_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return shim_fail(err, errno, "read %s", path);
	size_t off = 0;
	while (off + 1 < size) {
		ssize_t r = read(fd, buf + off, size - 1 - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return shim_fail(err, errno, "read %s", path);
		if (r == 0)
			break;
		off += (size_t)r;
	}
	buf[off] = '\0';
	return (ssize_t)off;
}

int mkdir_p(const char *path, mode_t mode, struct shim_err *err)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return shim_fail(err, errno, "mkdir %s", path);
	char buf[4096];
	if (strlen(path) >= sizeof(buf))
		return shim_fail(err, ENAMETOOLONG, "mkdir %s", path);
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return shim_fail(err, errno, "mkdir %s", buf);
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return shim_fail(err, errno, "mkdir %s", buf);
	return 0;
}
