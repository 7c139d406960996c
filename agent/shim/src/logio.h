/* Container output as JSON lines, the format of docker's json-file driver:
 *
 *   {"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
 *
 * One record per line, newline included in "log". A line longer than
 * LOG_LINE_MAX is cut into records of that size without the newline, and a
 * partial last line is written as-is when the stream ends. Pure: the monitor
 * feeds bytes in and writes the resulting buffer with one write(2). */
#ifndef FLOTILLA_SHIM_LOGIO_H
#define FLOTILLA_SHIM_LOGIO_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define LOG_LINE_MAX 16384

enum log_stream { LOG_STDOUT = 0, LOG_STDERR = 1 };

struct log_pending {
	char buf[LOG_LINE_MAX];
	size_t len;
};

void log_format_record(struct strbuf *out, const char *data, size_t n, enum log_stream s, const char *time);
/* Appends records for every complete line in pending + data; keeps the rest. */
void log_feed(struct log_pending *p, const char *data, size_t n, enum log_stream s, const char *time,
              struct strbuf *out);
/* Moves FILE.(n-2) .. FILE.1 one up and FILE to FILE.1 (FILE.(n-1) is replaced),
 * as docker's json-file driver rotates; with max_files 1 there is nothing to move.
 * The caller then reopens FILE (truncating it). Returns 0 or -1 (errno set). */
int log_rotate_files(const char *path, int max_files);
/* Whether a write of `next` bytes to a log of `size` bytes must rotate first:
 * never for an empty log (a single oversized batch goes in whole). */
static inline bool log_needs_rotation(long long size, size_t next, long long max_size)
{
	return max_size > 0 && size > 0 && size + (long long)next > max_size;
}

/* How many bytes of `buf` (whole newline-terminated records) go into a log with
 * `room` bytes left (room < 0: no limit): all that fit, else the first record. */
size_t log_fitting_records(const char *buf, size_t len, long long room);

/* Emits the pending partial line, if any. */
void log_flush(struct log_pending *p, enum log_stream s, const char *time, struct strbuf *out);

#endif
