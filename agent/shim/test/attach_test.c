/* Unit tests of interactive I/O: the output frame header, control FIFO lines
 * (signals and window sizes), and the run/exec/resize options. */
#include <signal.h>
#include <string.h>

#include "attach.h"
#include "check.h"
#include "config.h"

static int parse(struct shim_config *cfg, struct shim_err *err, char **args)
{
	int argc = 0;
	while (args[argc])
		argc++;
	shim_err_clear(err);
	return config_parse(cfg, argc, args, err);
}

static void test_frame_header(void)
{
	unsigned char h[8];
	attach_frame_header(h, 2, 0x01020304);
	unsigned char want[8] = {2, 0, 0, 0, 1, 2, 3, 4};
	CHECK(memcmp(h, want, 8) == 0);
	attach_frame_header(h, 1, 5);
	CHECK(h[0] == 1 && h[7] == 5 && h[4] == 0);
}

static void test_control_parse(void)
{
	struct control_cmd c;
	CHECK(control_parse("15", &c) == 0 && c.kind == CONTROL_SIGNAL && c.signal == SIGTERM);
	CHECK(control_parse("KILL", &c) == 0 && c.kind == CONTROL_SIGNAL && c.signal == SIGKILL);
	CHECK(control_parse("w 24 80", &c) == 0 && c.kind == CONTROL_RESIZE && c.rows == 24 && c.cols == 80);
	CHECK(control_parse("w 0 0", &c) == 0 && c.rows == 0 && c.cols == 0);
	CHECK(control_parse("w 65535 1", &c) == 0 && c.rows == 65535);
	CHECK(control_parse("w 65536 1", &c) < 0);
	CHECK(control_parse("w -1 80", &c) < 0);
	CHECK(control_parse("w 24", &c) < 0);
	CHECK(control_parse("w 24 80 1", &c) < 0);
	CHECK(control_parse("w 24 x", &c) < 0);
	CHECK(control_parse("w", &c) < 0);
	CHECK(control_parse("nonsense", &c) < 0);
}

static void test_exec_args(void)
{
	struct shim_config cfg;
	struct shim_err err;
	char *ok[] = {"shim",     "exec",        "--id",     "e1",    "--state-dir", "/s",     "--pid", "42",
	              "--cgroup", "flotilla/c1", "--attach", "--tty", "--stdin",     "--user", "5:6",   "--env",
	              "A=b",      "--cwd",       "/w",       "--",    "sh",          NULL};
	CHECK(parse(&cfg, &err, ok) == 0);
	CHECK(cfg.cmd == SHIM_CMD_EXEC && cfg.target_pid == 42 && cfg.tty && cfg.open_stdin && cfg.attach);
	CHECK_STR(cfg.cgroup_rel, "flotilla/c1");
	CHECK(cfg.has_user && cfg.uid == 5 && cfg.gid == 6 && cfg.argc == 1);
	config_free(&cfg);

	char *nopid[] = {"shim", "exec", "--id", "e1", "--state-dir", "/s", "--cgroup", "x", "--", "sh", NULL};
	CHECK(parse(&cfg, &err, nopid) < 0);
	CHECK_CONTAINS(err.msg, "--pid and --cgroup");
	config_free(&cfg);

	char *rootfs[] = {"shim",     "exec", "--id",     "e1",  "--state-dir", "/s", "--pid", "1",
	                  "--cgroup", "x",    "--memory", "64m", "--",          "sh", NULL};
	CHECK(parse(&cfg, &err, rootfs) < 0);
	CHECK_CONTAINS(err.msg, "belong to run");
	config_free(&cfg);

	char *escape[] = {"shim", "exec",     "--id", "e1", "--state-dir", "/s", "--pid",
	                  "1",    "--cgroup", "../x", "--", "sh",          NULL};
	CHECK(parse(&cfg, &err, escape) < 0);
	config_free(&cfg);

	char *tty_alone[] = {"shim",     "run", "--id",  "c",  "--state-dir", "/s",
	                     "--rootfs", "/r",  "--tty", "--", "sh",          NULL};
	CHECK(parse(&cfg, &err, tty_alone) < 0);
	CHECK_CONTAINS(err.msg, "need --attach");
	config_free(&cfg);
}

static void test_resize_args(void)
{
	struct shim_config cfg;
	struct shim_err err;
	char *ok[] = {"shim", "resize", "--state-dir", "/s", "30", "100", NULL};
	CHECK(parse(&cfg, &err, ok) == 0 && cfg.cmd == SHIM_CMD_RESIZE && cfg.rows == 30 && cfg.cols == 100);
	config_free(&cfg);
	char *missing[] = {"shim", "resize", "--state-dir", "/s", "30", NULL};
	CHECK(parse(&cfg, &err, missing) < 0);
	config_free(&cfg);
	char *big[] = {"shim", "resize", "--state-dir", "/s", "30", "70000", NULL};
	CHECK(parse(&cfg, &err, big) < 0);
	config_free(&cfg);
	char *extra[] = {"shim", "resize", "--state-dir", "/s", "1", "2", "3", NULL};
	CHECK(parse(&cfg, &err, extra) < 0);
	config_free(&cfg);
}

void run_attach_tests(void)
{
	test_frame_header();
	test_control_parse();
	test_exec_args();
	test_resize_args();
}
