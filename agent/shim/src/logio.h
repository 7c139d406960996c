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
/* Emits the pending partial line, if any. */
void log_flush(struct log_pending *p, enum log_stream s, const char *time, struct strbuf *out);

#endif
