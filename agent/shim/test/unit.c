/* Unit tests of the shim's pure helpers, plus one real-kernel check of the
 * seccomp filter in a forked child. Run by `make test` and `make asan`. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "container.h"
#include "logio.h"
#include "rootfs.h"
#include "security.h"
#include "state.h"
#include "util.h"

static int failures, checks;

#define CHECK(cond)                                                                     \
	do {                                                                            \
		checks++;                                                               \
		if (!(cond)) {                                                          \
			failures++;                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                       \
	} while (0)

#define CHECK_STR(a, b)                                                                         \
	do {                                                                                    \
		checks++;                                                                       \
		const char *a_ = (a), *b_ = (b);                                                \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                          \
			failures++;                                                             \
			fprintf(stderr, "%s:%d: got \"%s\"\n    want \"%s\"\n", __FILE__, __LINE__, \
				a_ ? a_ : "(null)", b_ ? b_ : "(null)");                        \
		}                                                                               \
	} while (0)

#define CHECK_INT(a, b)                                                                                \
	do {                                                                                           \
		checks++;                                                                              \
		long long a_ = (long long)(a), b_ = (long long)(b);                                    \
		if (a_ != b_) {                                                                        \
			failures++;                                                                    \
			fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #a, a_, b_); \
		}                                                                                      \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                                                    \
	do {                                                                                           \
		checks++;                                                                              \
		if (strstr((hay), (needle)) == NULL) {                                                 \
			failures++;                                                                    \
			fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, (hay), \
				(needle));                                                             \
		}                                                                                      \
	} while (0)

/* Parses a NULL-terminated argument list; returns config_parse's result. */
static int parse(struct shim_config *cfg, struct shim_err *err, char **args)
{
	int argc = 0;
	while (args[argc])
		argc++;
	shim_err_clear(err);
	return config_parse(cfg, argc, args, err);
}

static void test_parse_size(void)
{
	long long v = 0;
	CHECK(parse_size("123", &v) == 0 && v == 123);
	CHECK(parse_size("64k", &v) == 0 && v == 64 << 10);
	CHECK(parse_size("64m", &v) == 0 && v == 64 << 20);
	CHECK(parse_size("64MiB", &v) == 0 && v == 64 << 20);
	CHECK(parse_size("64mb", &v) == 0 && v == 64 << 20);
	CHECK(parse_size("2G", &v) == 0 && v == 2LL << 30);
	CHECK(parse_size("", &v) < 0);
	CHECK(parse_size("abc", &v) < 0);
	CHECK(parse_size("-1", &v) < 0);
	CHECK(parse_size("12x", &v) < 0);
	CHECK(parse_size("0", &v) < 0);
	CHECK(parse_size("64 m", &v) < 0);
	CHECK(parse_size("99999999999t", &v) < 0);
	CHECK(parse_size("99999999999999999999", &v) < 0);
}

static void test_parse_signal_user(void)
{
	int s = 0;
	CHECK(parse_signal("TERM", &s) == 0 && s == SIGTERM);
	CHECK(parse_signal("SIGKILL", &s) == 0 && s == SIGKILL);
	CHECK(parse_signal("sigusr1", &s) == 0 && s == SIGUSR1);
	CHECK(parse_signal("9", &s) == 0 && s == 9);
	CHECK(parse_signal("FOO", &s) < 0);
	CHECK(parse_signal("0", &s) < 0);
	CHECK(parse_signal("65", &s) < 0);

	uid_t u = 0;
	gid_t g = 0;
	CHECK(parse_user("1000", &u, &g) == 0 && u == 1000 && g == 1000);
	CHECK(parse_user("65534:100", &u, &g) == 0 && u == 65534 && g == 100);
	CHECK(parse_user(":1", &u, &g) < 0);
	CHECK(parse_user("a:b", &u, &g) < 0);
	CHECK(parse_user("1:", &u, &g) < 0);
	CHECK(parse_user("4294967295", &u, &g) < 0); /* (uid_t)-1 means "unchanged" */
}

static void test_ids_and_paths(void)
{
	CHECK(valid_id("web-1"));
	CHECK(valid_id("a.b_c"));
	CHECK(!valid_id(""));
	CHECK(!valid_id("-x"));
	CHECK(!valid_id("a/b"));
	CHECK(!valid_id("a b"));
	CHECK(valid_rel_path("flotilla"));
	CHECK(valid_rel_path("a/b"));
	CHECK(!valid_rel_path("/abs"));
	CHECK(!valid_rel_path("a/../b"));
	CHECK(!valid_rel_path(".."));
	CHECK(valid_rel_path("a/..b"));
}

static void test_parse_mount(void)
{
	struct shim_mount m;
	struct shim_err err;
	char a[] = "bind:/srv/data:/data:ro";
	CHECK(parse_mount(a, &m, &err) == 0);
	CHECK(m.kind == SHIM_MOUNT_BIND && m.readonly);
	CHECK_STR(m.src, "/srv/data");
	CHECK_STR(m.dst, "/data");
	char b[] = "bind:/srv:/srv";
	CHECK(parse_mount(b, &m, &err) == 0 && !m.readonly);
	char c[] = "tmpfs:/tmp:64m";
	CHECK(parse_mount(c, &m, &err) == 0 && m.kind == SHIM_MOUNT_TMPFS && m.size == 64 << 20);
	CHECK_STR(m.dst, "/tmp");
	char d[] = "tmpfs:/run";
	CHECK(parse_mount(d, &m, &err) == 0 && m.size == -1);
	char e[] = "bind:relative:/x";
	CHECK(parse_mount(e, &m, &err) < 0);
	CHECK_CONTAINS(err.msg, "absolute");
	char f[] = "tmpfs:/";
	CHECK(parse_mount(f, &m, &err) < 0);
	char g[] = "bind:/a:/b/../../etc";
	CHECK(parse_mount(g, &m, &err) < 0);
	char h[] = "nfs:/a:/b";
	CHECK(parse_mount(h, &m, &err) < 0);
	CHECK_CONTAINS(err.msg, "unknown kind");
	char i[] = "bind:/a:/b:rx";
	CHECK(parse_mount(i, &m, &err) < 0);
	char j[] = "tmpfs:/t:huge";
	CHECK(parse_mount(j, &m, &err) < 0);
}

static void test_config_run(void)
{
	struct shim_config cfg;
	struct shim_err err;
	char *args[] = {"flotilla-shim", "run", "--id", "web-1", "--state-dir", "/run/fl/web-1",
			"--rootfs-lower", "/l/3:/l/2:/l/1", "--upper", "/c/up", "--work", "/c/work",
			"--hostname", "web", "--env", "A=1", "--env=B=two", "--cwd", "/app",
			"--user", "1000:1000", "--groups", "10,20", "--memory", "64m",
			"--cpu-quota", "50000", "--cpu-period", "100000", "--cpu-shares", "512",
			"--pids", "100", "--mount", "bind:/v:/data:ro", "--mount", "tmpfs:/tmp:1m",
			"--readonly-rootfs", "--netns", "/run/netns/x", "--log", "/var/log/c.json",
			"--cgroup-parent", "flotilla/svc", "--seccomp", "unconfined", "--foreground",
			"--", "sh", "-c", "echo hi", NULL};
	CHECK(parse(&cfg, &err, args) == 0);
	CHECK_STR(err.msg, "");
	CHECK(cfg.cmd == SHIM_CMD_RUN);
	CHECK_STR(cfg.id, "web-1");
	CHECK_INT(cfg.n_lowers, 3);
	CHECK_STR(cfg.lowers[0], "/l/3");
	CHECK_STR(cfg.lowers[2], "/l/1");
	CHECK_STR(cfg.upper, "/c/up");
	CHECK_INT(cfg.n_env, 2);
	CHECK_STR(cfg.env[1], "B=two");
	CHECK(cfg.has_user && cfg.uid == 1000 && cfg.gid == 1000);
	CHECK_INT(cfg.n_groups, 2);
	CHECK_INT(cfg.groups[1], 20);
	CHECK_INT(cfg.memory, 64 << 20);
	CHECK_INT(cfg.cpu_quota, 50000);
	CHECK_INT(cfg.cpu_shares, 512);
	CHECK_INT(cfg.pids, 100);
	CHECK_INT(cfg.n_mounts, 2);
	CHECK(cfg.mounts[0].readonly && cfg.mounts[1].kind == SHIM_MOUNT_TMPFS);
	CHECK(cfg.readonly_rootfs && cfg.foreground && !cfg.seccomp);
	CHECK(cfg.netns == SHIM_NETNS_PATH);
	CHECK_STR(cfg.netns_path, "/run/netns/x");
	CHECK_STR(cfg.cgroup_parent, "flotilla/svc");
	CHECK_INT(cfg.argc, 3);
	CHECK_STR(cfg.argv[2], "echo hi");
	CHECK(cfg.argv[3] == NULL);
	config_free(&cfg);

	char *defaults[] = {"flotilla-shim", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--", "true", NULL};
	CHECK(parse(&cfg, &err, defaults) == 0);
	CHECK(cfg.netns == SHIM_NETNS_NEW && cfg.seccomp && !cfg.foreground);
	CHECK_STR(cfg.cgroup_parent, "flotilla");
	CHECK_STR(cfg.cgroup_root, "/sys/fs/cgroup");
	CHECK(cfg.memory == -1 && cfg.pids == -1 && cfg.cpu_shares == -1);
	config_free(&cfg);
}

static void expect_error(char **args, const char *needle)
{
	struct shim_config cfg;
	struct shim_err err;
	CHECK(parse(&cfg, &err, args) < 0);
	CHECK_CONTAINS(err.msg, needle);
	config_free(&cfg);
}

static void test_config_errors(void)
{
	expect_error((char *[]){"s", NULL}, "no command");
	expect_error((char *[]){"s", "launch", NULL}, "unknown command");
	expect_error((char *[]){"s", "run", "--state-dir", "/s", "--rootfs", "/r", "--", "x", NULL}, "--id is required");
	expect_error((char *[]){"s", "run", "--id", "a", "--rootfs", "/r", "--", "x", NULL}, "--state-dir");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--", "x", NULL}, "rootfs is required");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", NULL}, "no command");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--rootfs-lower", "/l",
				"--upper", "/u", "--work", "/w", "--", "x", NULL},
		     "exclusive");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs-lower", "/l", "--", "x", NULL},
		     "go together");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs-lower", "/l,x", "--upper", "/u",
				"--work", "/w", "--", "x", NULL},
		     "--rootfs-lower");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--memory", "lots", "--",
				"x", NULL},
		     "--memory: invalid size \"lots\"");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--memory", NULL},
		     "--memory: missing value");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--groups", "1", "--",
				"x", NULL},
		     "--groups needs --user");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--bogus", "--", "x",
				NULL},
		     "unknown option \"--bogus\"");
	expect_error((char *[]){"s", "run", "--id", "../x", "--state-dir", "/s", "--rootfs", "/r", "--", "x", NULL},
		     "--id");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--netns", "blue", "--",
				"x", NULL},
		     "--netns");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--cpu-shares", "1",
				"--", "x", NULL},
		     "--cpu-shares");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--cgroup-parent",
				"../up", "--", "x", NULL},
		     "--cgroup-parent");
	expect_error((char *[]){"s", "kill", "--state-dir", "/s", "NOPE", NULL}, "unknown signal");
	expect_error((char *[]){"s", "kill", "KILL", NULL}, "--state-dir");
}

static void test_config_other_commands(void)
{
	struct shim_config cfg;
	struct shim_err err;
	CHECK(parse(&cfg, &err, (char *[]){"s", "kill", "--state-dir", "/s", "KILL", NULL}) == 0);
	CHECK(cfg.cmd == SHIM_CMD_KILL && cfg.signal == SIGKILL);
	config_free(&cfg);
	CHECK(parse(&cfg, &err, (char *[]){"s", "kill", "--state-dir=/s", NULL}) == 0);
	CHECK(cfg.signal == SIGTERM);
	CHECK_STR(cfg.state_dir, "/s");
	config_free(&cfg);
	CHECK(parse(&cfg, &err, (char *[]){"s", "state", "--state-dir", "/s", NULL}) == 0 && cfg.cmd == SHIM_CMD_STATE);
	config_free(&cfg);
	CHECK(parse(&cfg, &err, (char *[]){"s", "version", NULL}) == 0 && cfg.cmd == SHIM_CMD_VERSION);
	config_free(&cfg);
}

static struct shim_config limits(long long mem, long long quota, long long period, long long shares, long long pids)
{
	struct shim_config c;
	memset(&c, 0, sizeof(c));
	c.memory = mem;
	c.cpu_quota = quota;
	c.cpu_period = period;
	c.cpu_shares = shares;
	c.pids = pids;
	return c;
}

static void test_cgroup_plan(void)
{
	struct cg_write w[CG_MAX_WRITES];
	struct shim_config c = limits(67108864, 50000, 100000, 512, 64);
	size_t n = cgroup_plan(CG_V1, &c, w);
	CHECK_INT(n, 7);
	CHECK_STR(w[0].file, "memory.limit_in_bytes");
	CHECK_STR(w[0].value, "67108864");
	CHECK_STR(w[1].file, "memory.memsw.limit_in_bytes"); /* after the limit: memsw >= limit */
	CHECK_STR(w[1].value, "67108864");
	CHECK(w[1].optional && !w[0].optional);
	CHECK_STR(w[2].file, "memory.swappiness");
	CHECK_STR(w[3].file, "cpu.cfs_period_us"); /* before the quota */
	CHECK_STR(w[4].file, "cpu.cfs_quota_us");
	CHECK_STR(w[4].value, "50000");
	CHECK_STR(w[5].file, "cpu.shares");
	CHECK_STR(w[5].value, "512");
	CHECK_STR(w[6].ctrl, "pids");
	CHECK_STR(w[6].value, "64");

	n = cgroup_plan(CG_V2, &c, w);
	CHECK_INT(n, 5);
	CHECK_STR(w[0].file, "memory.max");
	CHECK_STR(w[1].file, "memory.swap.max");
	CHECK_STR(w[1].value, "0");
	CHECK_STR(w[2].file, "cpu.max");
	CHECK_STR(w[2].value, "50000 100000");
	CHECK_STR(w[3].file, "cpu.weight");
	CHECK_STR(w[3].value, "20");
	CHECK_STR(w[4].file, "pids.max");

	c = limits(-1, 25000, -1, -1, -1);
	n = cgroup_plan(CG_V2, &c, w);
	CHECK_INT(n, 1);
	CHECK_STR(w[0].value, "25000 100000"); /* default period */
	c = limits(-1, -1, 20000, -1, -1);
	n = cgroup_plan(CG_V2, &c, w);
	CHECK_STR(w[0].value, "max 20000");
	c = limits(-1, -1, -1, -1, -1);
	CHECK_INT(cgroup_plan(CG_V1, &c, w), 0);
	CHECK_INT(cgroup_plan(CG_V2, &c, w), 0);

	CHECK_INT(cpu_shares_to_weight(2), 1);
	CHECK_INT(cpu_shares_to_weight(1024), 39);
	CHECK_INT(cpu_shares_to_weight(262144), 10000);
}

static void test_oom_decide(void)
{
	long long v = 0;
	CHECK(cg_keyed_value("low 0\nhigh 3\noom 1\noom_kill 2\n", "oom_kill", &v) == 0 && v == 2);
	CHECK(cg_keyed_value("oom 1\n", "oom_kill", &v) < 0);
	CHECK(cgroup_oom_decide(CG_V2, "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n", 0, false));
	CHECK(!cgroup_oom_decide(CG_V2, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", 0, true));
	CHECK(cgroup_oom_decide(CG_V1, "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", 0, false));
	CHECK(!cgroup_oom_decide(CG_V1, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", 9, true));
	/* kernels before 4.13 have no oom_kill counter: hitting the limit + SIGKILL */
	CHECK(cgroup_oom_decide(CG_V1, "oom_kill_disable 0\nunder_oom 0\n", 3, true));
	CHECK(!cgroup_oom_decide(CG_V1, "oom_kill_disable 0\nunder_oom 0\n", 3, false));
	CHECK(!cgroup_oom_decide(CG_V1, "oom_kill_disable 0\nunder_oom 0\n", 0, true));
}

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
	CHECK_STR(json("a\xc3", 2), "a\xef\xbf\xbd");                    /* truncated sequence */
	CHECK_STR(json("\xc0\x80", 2), "\xef\xbf\xbd\xef\xbf\xbd");      /* overlong NUL */
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
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.000000000Z", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
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
	CHECK_STR(out.buf, "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n"
			   "{\"log\":\"world\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n");
	sb_reset(&out);

	/* a line split over reads is one record; the partial tail waits */
	log_feed(&p, "par", 3, LOG_STDERR, T, &out);
	CHECK_INT(out.len, 0);
	log_feed(&p, "tial\nnext", 9, LOG_STDERR, T, &out);
	CHECK_STR(out.buf, "{\"log\":\"partial\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n");
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

static void test_overlay_options(void)
{
	struct shim_config c;
	memset(&c, 0, sizeof(c));
	const char *lowers[] = {"/l/top", "/l/base"};
	c.lowers = lowers;
	c.n_lowers = 2;
	c.upper = "/c/upper";
	c.work = "/c/work";
	char out[4096];
	CHECK(overlay_options(&c, out, sizeof(out)) > 0);
	CHECK_STR(out, "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work,index=off");
	char small[40];
	CHECK(overlay_options(&c, small, sizeof(small)) < 0);
}

static void test_env(void)
{
	struct shim_config c;
	memset(&c, 0, sizeof(c));
	const char *env[] = {"A=1", "B=2", "A=3"};
	c.env = env;
	c.n_env = 3;
	c.hostname = "box";
	const char *envp[8];
	char host[80];
	container_env(&c, envp, host, sizeof(host));
	CHECK_STR(envp[0], "B=2");
	CHECK_STR(envp[1], "A=3"); /* the later value wins */
	CHECK_CONTAINS(envp[2], "PATH=/usr/local/sbin:");
	CHECK_STR(envp[3], "HOSTNAME=box");
	CHECK(envp[4] == NULL);

	const char *env2[] = {"PATH=/opt/bin", "HOSTNAME=mine"};
	c.env = env2;
	c.n_env = 2;
	container_env(&c, envp, host, sizeof(host));
	CHECK_STR(envp[0], "PATH=/opt/bin");
	CHECK_STR(envp[1], "HOSTNAME=mine");
	CHECK(envp[2] == NULL);
}

static void test_caps_and_seccomp(void)
{
	CHECK_INT(default_cap_mask(), 0xa80425fbULL);

	struct sock_filter insns[SECCOMP_MAX_INSNS];
	size_t n = seccomp_build(insns, SECCOMP_MAX_INSNS);
#if defined(__x86_64__) || defined(__aarch64__)
	CHECK(n > 10);
	CHECK(insns[0].code == (BPF_LD | BPF_W | BPF_ABS));
	/* every jump lands inside the program, every path ends in a return */
	for (size_t i = 0; i < n; i++) {
		if (BPF_CLASS(insns[i].code) == BPF_JMP) {
			CHECK(i + 1 + insns[i].jt < n);
			CHECK(i + 1 + insns[i].jf < n);
		}
	}
	CHECK(BPF_CLASS(insns[n - 1].code) == BPF_RET);
	CHECK_INT(seccomp_build(insns, 5), 0); /* too small: refused, not truncated */

	/* the real kernel: install in a child and probe */
	pid_t pid = fork();
	if (pid == 0) {
		struct shim_err err;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_install(&err) < 0)
			_exit(10);
		if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
			_exit(11);
		if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
			_exit(12);
		if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
			_exit(13);
		if (syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) != -1 || errno != EPERM)
			_exit(14);
		pid_t c = fork(); /* plain clone still works */
		if (c == 0)
			_exit(0);
		int st;
		if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st))
			_exit(15);
		if (getpid() <= 0)
			_exit(16);
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
#else
	CHECK_INT(n, 0);
#endif
}

static void test_errors(void)
{
	struct shim_err err;
	shim_fail(&err, EBUSY, "write %s", "memory.limit_in_bytes");
	shim_wrap(&err, "cgroup %s", "memory");
	CHECK_STR(err.msg, "cgroup memory: write memory.limit_in_bytes: Device or resource busy");
	CHECK_INT(err.errnum, EBUSY);
	shim_fail(&err, 0, "no errno");
	CHECK_STR(err.msg, "no errno");
}

int main(void)
{
	test_parse_size();
	test_parse_signal_user();
	test_ids_and_paths();
	test_parse_mount();
	test_config_run();
	test_config_errors();
	test_config_other_commands();
	test_cgroup_plan();
	test_oom_decide();
	test_json_escape();
	test_rfc3339();
	test_log_lines();
	test_state_format();
	test_overlay_options();
	test_env();
	test_caps_and_seccomp();
	test_errors();
	json(NULL, 0);
	printf("%d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
