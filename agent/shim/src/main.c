/* flotilla-shim: runs one container per invocation. Commands: run, kill,
 * state, version (see README.md and shim_usage in args.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "monitor.h"
#include "util.h"

static int die(int code, const char *msg)
{
	fprintf(stderr, "flotilla-shim: %s\n", msg);
	return code;
}

/* Detached run: the caller forks, the child calls setsid() and forks the
 * monitor, then exits. The monitor is thus in its own session, is not a session
 * leader (it can never acquire a controlling terminal) and has been re-parented
 * away from the caller: killing the agent, its process group or its session
 * leaves the container and its monitor alone. The caller stays until the
 * monitor reports the start over a pipe, then exits with the outcome. */
static int run_detached(const struct shim_config *cfg)
{
	int rp[2];
	if (pipe2(rp, O_CLOEXEC) < 0)
		return die(SHIM_EXIT_FAILED, "detach: pipe failed");
	fflush(NULL);
	pid_t child = fork();
	if (child < 0)
		return die(SHIM_EXIT_FAILED, "detach: fork failed");
	if (child == 0) {
		close(rp[0]);
		if (setsid() < 0)
			_exit(SHIM_EXIT_FAILED);
		pid_t monitor = fork();
		if (monitor != 0)
			_exit(monitor < 0 ? SHIM_EXIT_FAILED : 0);
		/* the caller's stdio may be pipes it waits on: let go of them; from
		 * here on errors travel through the report pipe */
		int dn = open("/dev/null", O_RDWR);
		if (dn >= 0) {
			dup2(dn, 0);
			dup2(dn, 1);
			dup2(dn, 2);
			if (dn > 2)
				close(dn);
		}
		/* and of any other descriptor the caller let us inherit (a pipe
		 * it waits on would never close while we live) */
		if (rp[1] > 3)
			close_range(3, (unsigned)rp[1] - 1, 0);
		close_range((unsigned)rp[1] + 1, ~0U, 0);
		if (chdir("/") < 0)
			_exit(SHIM_EXIT_FAILED);
		struct shim_err err;
		monitor_run(cfg, rp[1], &err);
		_exit(0);
	}
	close(rp[1]);
	int status;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return die(SHIM_EXIT_FAILED, "detach: setsid/fork failed");

	struct strbuf sb = {0};
	char buf[4096];
	ssize_t n;
	while ((n = read(rp[0], buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		sb_append(&sb, buf, (size_t)n);
	}
	close(rp[0]);
	int code;
	if (sb.len > 3 && strncmp(sb.buf, "ok ", 3) == 0) {
		fputs(sb.buf + 3, stdout);
		code = 0;
	} else if (sb.len > 4 && strncmp(sb.buf, "err ", 4) == 0) {
		char *msg = NULL;
		code = (int)strtol(sb.buf + 4, &msg, 10);
		if (code <= 0 || code > 255)
			code = SHIM_EXIT_FAILED;
		while (msg && *msg == ' ')
			msg++;
		fprintf(stderr, "flotilla-shim: %s", msg ? msg : "start failed\n");
	} else {
		code = die(SHIM_EXIT_FAILED, "the monitor exited without reporting the start");
	}
	sb_free(&sb);
	return code;
}

/* Writes the signal to the control FIFO, where the monitor reads it and
 * signals the container init (which it alone can do without a pid race: the
 * init is its child, so its pid cannot be reused before the monitor reaps it). */
static int cmd_kill(const struct shim_config *cfg)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/control", cfg->state_dir);
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENXIO || errno == ENOENT) {
			fprintf(stderr, "flotilla-shim: kill: container is not running (no shim listening on %s)\n",
			        path);
			return 1;
		}
		fprintf(stderr, "flotilla-shim: kill: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	char line[16];
	int len = snprintf(line, sizeof(line), "%d\n", cfg->signal);
	int rc = write_all(fd, line, (size_t)len);
	int e = errno;
	close(fd);
	if (rc < 0) {
		fprintf(stderr, "flotilla-shim: kill: write %s: %s\n", path, strerror(e));
		return 1;
	}
	return 0;
}

/* A window size for the pty, through the control FIFO like a signal. */
static int cmd_resize(const struct shim_config *cfg)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/control", cfg->state_dir);
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "flotilla-shim: resize: %s\n",
		        errno == ENXIO || errno == ENOENT ? "not running" : strerror(errno));
		return 1;
	}
	char line[32];
	int len = snprintf(line, sizeof(line), "w %d %d\n", cfg->rows, cfg->cols);
	int rc = write_all(fd, line, (size_t)len);
	close(fd);
	return rc < 0 ? 1 : 0;
}

static int cmd_state(const struct shim_config *cfg)
{
	char path[PATH_MAX], buf[8192];
	struct shim_err err;
	snprintf(path, sizeof(path), "%s/state.json", cfg->state_dir);
	if (read_file(path, buf, sizeof(buf), &err) < 0)
		return die(1, err.msg);
	fputs(buf, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	/* fds 0-2 must exist: a pipe or lock must never land on them and later be
	 * clobbered by the dup2s that set up stdio */
	for (int fd = open("/dev/null", O_RDWR); fd >= 0; fd = open("/dev/null", O_RDWR)) {
		if (fd > 2) {
			close(fd);
			break;
		}
	}
	struct shim_config cfg;
	struct shim_err err;
	shim_err_clear(&err);
	int code;
	if (config_parse(&cfg, argc, argv, &err) < 0) {
		fprintf(stderr, "flotilla-shim: %s\n(see flotilla-shim help)\n", err.msg);
		config_free(&cfg);
		return SHIM_EXIT_FAILED;
	}
	switch (cfg.cmd) {
	case SHIM_CMD_HELP:
		fputs(shim_usage, stdout);
		code = 0;
		break;
	case SHIM_CMD_VERSION:
		printf("flotilla-shim %s\n", SHIM_VERSION);
		code = 0;
		break;
	case SHIM_CMD_KILL:
		code = cmd_kill(&cfg);
		break;
	case SHIM_CMD_STATE:
		code = cmd_state(&cfg);
		break;
	case SHIM_CMD_RESIZE:
		code = cmd_resize(&cfg);
		break;
	case SHIM_CMD_EXEC:
	case SHIM_CMD_RUN:
	default:
		if (geteuid() != 0) {
			code = die(SHIM_EXIT_FAILED, "run: must run as root");
			break;
		}
		if (cfg.foreground) {
			code = monitor_run(&cfg, -1, &err);
			if (err.msg[0] != '\0')
				fprintf(stderr, "flotilla-shim: %s\n", err.msg);
		} else {
			code = run_detached(&cfg);
		}
		break;
	}
	config_free(&cfg);
	return code;
}
