/* See logio.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "logio.h"

static const char *const stream_names[] = {"stdout", "stderr"};

void log_format_record(struct strbuf *out, const char *data, size_t n, enum log_stream s, const char *time)
{
	sb_puts(out, "{\"log\":\"");
	sb_json_str(out, data, n);
	sb_puts(out, "\",\"stream\":\"");
	sb_puts(out, stream_names[s]);
	sb_puts(out, "\",\"time\":\"");
	sb_puts(out, time);
	sb_puts(out, "\"}\n");
}

void log_feed(struct log_pending *p, const char *data, size_t n, enum log_stream s, const char *time,
              struct strbuf *out)
{
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) + 1 : n;
		if (p->len == 0 && nl && take <= LOG_LINE_MAX) {
			/* common case: a whole line inside this chunk, no copy */
			log_format_record(out, data, take, s, time);
			data += take;
			n -= take;
			continue;
		}
		size_t room = LOG_LINE_MAX - p->len;
		size_t chunk = take < room ? take : room;
		memcpy(p->buf + p->len, data, chunk);
		p->len += chunk;
		data += chunk;
		n -= chunk;
		if (p->len == LOG_LINE_MAX || p->buf[p->len - 1] == '\n') {
			log_format_record(out, p->buf, p->len, s, time);
			p->len = 0;
		}
	}
}

void log_flush(struct log_pending *p, enum log_stream s, const char *time, struct strbuf *out)
{
	if (p->len == 0)
		return;
	log_format_record(out, p->buf, p->len, s, time);
	p->len = 0;
}

int log_rotate_files(const char *path, int max_files)
{
	char from[PATH_MAX], to[PATH_MAX];
	for (int i = max_files - 1; i >= 2; i--) {
		snprintf(from, sizeof(from), "%s.%d", path, i - 1);
		snprintf(to, sizeof(to), "%s.%d", path, i);
		if (rename(from, to) < 0 && errno != ENOENT)
			return -1;
	}
	if (max_files >= 2) {
		snprintf(to, sizeof(to), "%s.1", path);
		if (rename(path, to) < 0 && errno != ENOENT)
			return -1;
	}
	return 0;
}

size_t log_fitting_records(const char *buf, size_t len, long long room)
{
	if (room < 0 || (long long)len <= room)
		return len;
	size_t fit = 0;
	for (size_t i = 0; i < len && (long long)(i + 1) <= room; i++)
		if (buf[i] == '\n')
			fit = i + 1;
	if (fit > 0)
		return fit;
	const char *nl = memchr(buf, '\n', len);
	return nl ? (size_t)(nl - buf) + 1 : len;
}
