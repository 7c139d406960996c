/* Unit tests of the command line: sizes, signals, users, ids, paths, mounts, and
 * config_parse for every command, including its error messages. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "util.h"

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
	char *args[] = {"flotilla-shim",
	                "run",
	                "--id",
	                "web-1",
	                "--state-dir",
	                "/run/fl/web-1",
	                "--rootfs-lower",
	                "/l/3:/l/2:/l/1",
	                "--upper",
	                "/c/up",
	                "--work",
	                "/c/work",
	                "--hostname",
	                "web",
	                "--env",
	                "A=1",
	                "--env=B=two",
	                "--cwd",
	                "/app",
	                "--user",
	                "1000:1000",
	                "--groups",
	                "10,20",
	                "--memory",
	                "64m",
	                "--cpu-quota",
	                "50000",
	                "--cpu-period",
	                "100000",
	                "--cpu-shares",
	                "512",
	                "--pids",
	                "100",
	                "--mount",
	                "bind:/v:/data:ro",
	                "--mount",
	                "tmpfs:/tmp:1m",
	                "--readonly-rootfs",
	                "--netns",
	                "/run/netns/x",
	                "--log",
	                "/var/log/c.json",
	                "--cgroup-parent",
	                "flotilla/svc",
	                "--seccomp",
	                "unconfined",
	                "--foreground",
	                "--",
	                "sh",
	                "-c",
	                "echo hi",
	                NULL};
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

	char *defaults[] = {"flotilla-shim", "run", "--id", "a",    "--state-dir", "/s",
	                    "--rootfs",      "/r",  "--",   "true", NULL};
	CHECK(parse(&cfg, &err, defaults) == 0);
	CHECK(cfg.netns == SHIM_NETNS_NEW && cfg.seccomp && !cfg.foreground);
	CHECK_STR(cfg.cgroup_parent, "flotilla");
	CHECK_STR(cfg.cgroup_root, "/sys/fs/cgroup");
	CHECK(cfg.memory == -1 && cfg.pids == -1 && cfg.cpu_shares == -1);
	CHECK(!cfg.has_caps);
	config_free(&cfg);

	char *caps[] = {"flotilla-shim", "run",        "--id", "a",    "--state-dir", "/s", "--rootfs", "/r",
	                "--caps",        "0xa80405fb", "--",   "true", NULL};
	CHECK(parse(&cfg, &err, caps) == 0);
	CHECK(cfg.has_caps && cfg.caps == 0xa80405fbULL);
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
	expect_error((char *[]){"s", "run", "--state-dir", "/s", "--rootfs", "/r", "--", "x", NULL},
	             "--id is required");
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
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--memory", "lots",
	                        "--", "x", NULL},
	             "--memory: invalid size \"lots\"");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--memory", NULL},
	             "--memory: missing value");
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--groups", "1", "--",
	                        "x", NULL},
	             "--groups needs --user");
	expect_error(
	    (char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--bogus", "--", "x", NULL},
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
	expect_error((char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--caps", "all", "--",
	                        "x", NULL},
	             "--caps: \"all\" must be a hexadecimal mask");
	expect_error(
	    (char *[]){"s", "run", "--id", "a", "--state-dir", "/s", "--rootfs", "/r", "--caps", "-1", "--", "x", NULL},
	    "--caps");
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

void run_args_tests(void)
{
	test_parse_size();
	test_parse_signal_user();
	test_ids_and_paths();
	test_parse_mount();
	test_config_run();
	test_config_errors();
	test_config_other_commands();
}
