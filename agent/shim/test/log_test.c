/* Unit tests of the output formats: JSON string escaping, RFC 3339 timestamps, the
 * container log lines and the state file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "logio.h"
#include "state.h"
#include "util.h"

static const char *json(const char *s, size_t n)
{
	static struct strbuf sb;
	sb_free(&sb);
	sb_json_str(&sb, s, n);
	return sb.buf ? sb.buf : "";
}

static void test_json_escape(void)
{
	CHECK_STR(json("plain", 5), "plain");
	CHECK_STR(json("a\"b\\c", 5), "a\\\"b\\\\c");
	CHECK_STR(json("l1\nl2\t\r\b\f", 9), "l1\\nl2\\t\\r\\b\\f");
	CHECK_STR(json("\x01\x1f\x7f", 3), "\\u0001\\u001f\x7f");
	CHECK_STR(json("nul\0x", 5), "nul\\u0000x");
	CHECK_STR(json("caf\xc3\xa9 \xf0\x9f\x9a\xa2", 10), "caf\xc3\xa9 \xf0\x9f\x9a\xa2");
	CHECK_STR(json("\xff", 1), "\xef\xbf\xbd");
	CHECK_STR(json("a\xc3", 2), "a\xef\xbf\xbd");                               /* truncated sequence */
	CHECK_STR(json("\xc0\x80", 2), "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong NUL */
	CHECK_STR(json("\xed\xa0\x80", 3), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
	CHECK_STR(json("\xf4\x90\x80\x80", 4), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* > U+10FFFF */
	json(NULL, 0);
	struct strbuf sb = {0};
	sb_json_quoted(&sb, NULL);
	CHECK_STR(sb.buf, "null");
	sb_free(&sb);
}

static void test_rfc3339(void)
{
	char out[SHIM_TIME_MAX];
	fmt_rfc3339(&(struct timespec){0, 5}, out);
	CHECK_STR(out, "1970-01-01T00:00:00.000000005Z");
	fmt_rfc3339(&(struct timespec){1700000000, 123000000}, out);
	CHECK_STR(out, "2023-11-14T22:13:20.123000000Z");
	fmt_rfc3339(&(struct timespec){951782400, 0}, out); /* leap day of a century leap year */
	CHECK_STR(out, "2000-02-29T00:00:00.000000000Z");
	fmt_rfc3339(&(struct timespec){4107542399, 999999999}, out);
	CHECK_STR(out, "2100-02-28T23:59:59.999999999Z");
	fmt_rfc3339(&(struct timespec){-1, 0}, out);
	CHECK_STR(out, "1969-12-31T23:59:59.000000000Z");
	/* agrees with libc over a range of days */
	for (time_t t = 0; t < 200LL * 366 * 86400; t += 86400 * 7 + 3671) {
		struct tm tm;
		gmtime_r(&t, &tm);
		char want[SHIM_TIME_MAX];
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.000000000Z", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		fmt_rfc3339(&(struct timespec){t, 0}, out);
		if (strcmp(out, want) != 0) {
			CHECK_STR(out, want);
			break;
		}
	}
}

static const char *T = "2024-01-02T03:04:05.000000006Z";

static void test_log_lines(void)
{
	static struct log_pending p;
	struct strbuf out = {0};

	log_feed(&p, "hello\nworld\n", 12, LOG_STDOUT, T, &out);
	CHECK_STR(out.buf,
	          "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n"
	          "{\"log\":\"world\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n");
	sb_reset(&out);

	/* a line split over reads is one record; the partial tail waits */
	log_feed(&p, "par", 3, LOG_STDERR, T, &out);
	CHECK_INT(out.len, 0);
	log_feed(&p, "tial\nnext", 9, LOG_STDERR, T, &out);
	CHECK_STR(out.buf,
	          "{\"log\":\"partial\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n");
	sb_reset(&out);
	log_flush(&p, LOG_STDERR, T, &out);
	CHECK_STR(out.buf, "{\"log\":\"next\",\"stream\":\"stderr\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n");
	sb_reset(&out);
	log_flush(&p, LOG_STDERR, T, &out);
	CHECK_INT(out.len, 0);

	log_feed(&p, "say \"hi\"\t\\\n", 12, LOG_STDOUT, T, &out);
	CHECK_CONTAINS(out.buf, "\"log\":\"say \\\"hi\\\"\\t\\\\\\n\"");
	sb_reset(&out);

	/* a line longer than LOG_LINE_MAX is cut into records without newline */
	size_t big = LOG_LINE_MAX * 2 + 10;
	char *line = malloc(big + 1);
	memset(line, 'x', big);
	line[big] = '\n';
	log_feed(&p, line, big + 1, LOG_STDOUT, T, &out);
	int records = 0, newlines = 0;
	for (const char *c = out.buf; (c = strstr(c, "{\"log\":\"")) != NULL; c++)
		records++;
	for (const char *c = out.buf; (c = strstr(c, "\\n\"")) != NULL; c++)
		newlines++;
	CHECK_INT(records, 3);
	CHECK_INT(newlines, 1);
	CHECK_INT(p.len, 0);
	free(line);
	sb_free(&out);
}

static void test_state_format(void)
{
	struct shim_state st;
	memset(&st, 0, sizeof(st));
	st.id = "web-1";
	st.shim_pid = 10;
	st.exit_code = -1;
	struct strbuf sb = {0};
	state_format(&st, &sb);
	CHECK_STR(sb.buf, "{\"id\":\"web-1\",\"shimPid\":10,\"pid\":0,\"status\":\"created\",\"exitCode\":null,"
	                  "\"oomKilled\":false,\"startedAt\":null,\"finishedAt\":null,\"error\":null,"
	                  "\"cgroupVersion\":null,\"cgroup\":null}\n");
	sb_reset(&sb);
	st.pid = 11;
	st.status = SHIM_STATUS_EXITED;
	st.exit_code = 137;
	st.oom_killed = true;
	strcpy(st.started_at, "2024-01-01T00:00:00.000000000Z");
	strcpy(st.finished_at, "2024-01-01T00:00:01.000000000Z");
	strcpy(st.error, "exec: \"nope\": executable file not found in $PATH");
	st.cgroup_version = 2;
	st.cgroup = "flotilla/web-1";
	state_format(&st, &sb);
	CHECK_STR(sb.buf, "{\"id\":\"web-1\",\"shimPid\":10,\"pid\":11,\"status\":\"exited\",\"exitCode\":137,"
	                  "\"oomKilled\":true,\"startedAt\":\"2024-01-01T00:00:00.000000000Z\","
	                  "\"finishedAt\":\"2024-01-01T00:00:01.000000000Z\","
	                  "\"error\":\"exec: \\\"nope\\\": executable file not found in $PATH\","
	                  "\"cgroupVersion\":2,\"cgroup\":\"flotilla/web-1\"}\n");
	sb_free(&sb);
}

static void put(const char *dir, const char *name, const char *content)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs(content, f);
		fclose(f);
	}
}

static const char *get(const char *dir, const char *name)
{
	static char buf[64];
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "r");
	if (f == NULL)
		return "(missing)";
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_log_rotation(void)
{
	CHECK(!log_needs_rotation(0, 1 << 20, 100)); /* an empty log takes any batch */
	CHECK(!log_needs_rotation(50, 50, 100));
	CHECK(log_needs_rotation(51, 50, 100));
	CHECK(!log_needs_rotation(1LL << 40, 10, -1)); /* no limit */
	CHECK_INT(log_fitting_records("ab\ncd\nef\n", 9, -1), 9);
	CHECK_INT(log_fitting_records("ab\ncd\nef\n", 9, 9), 9);
	CHECK_INT(log_fitting_records("ab\ncd\nef\n", 9, 7), 6);
	CHECK_INT(log_fitting_records("ab\ncd\nef\n", 9, 2), 3); /* one record even if too long */
	CHECK_INT(log_fitting_records("ab\ncd\nef\n", 9, 0), 3);

	char dir[] = "/tmp/flotilla-shim-logrot-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[512];
	snprintf(path, sizeof(path), "%s/c.log", dir);
	put(dir, "c.log", "now");
	put(dir, "c.log.1", "one");
	put(dir, "c.log.2", "two");
	CHECK(log_rotate_files(path, 3) == 0);
	CHECK_STR(get(dir, "c.log"), "(missing)");
	CHECK_STR(get(dir, "c.log.1"), "now");
	CHECK_STR(get(dir, "c.log.2"), "one"); /* the oldest ("two") is gone */
	CHECK_STR(get(dir, "c.log.3"), "(missing)");
	/* max 1: nothing moves (the caller truncates) */
	put(dir, "c.log", "again");
	CHECK(log_rotate_files(path, 1) == 0);
	CHECK_STR(get(dir, "c.log"), "again");
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

void run_log_tests(void)
{
	test_log_rotation();
	test_json_escape();
	test_rfc3339();
	test_log_lines();
	test_state_format();
	json(NULL, 0); /* frees the buffer json() keeps */
}
