/* See state.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "state.h"

static const char *const status_names[] = {"created", "running", "exited"};

static void opt_str(struct strbuf *out, const char *s)
{
	sb_json_quoted(out, s && *s ? s : NULL);
}

void state_format(const struct shim_state *st, struct strbuf *out)
{
	sb_puts(out, "{\"id\":");
	sb_json_quoted(out, st->id);
	sb_printf(out, ",\"shimPid\":%d,\"pid\":%d,\"status\":\"%s\",\"exitCode\":", (int)st->shim_pid, (int)st->pid,
	          status_names[st->status]);
	if (st->exit_code < 0)
		sb_puts(out, "null");
	else
		sb_printf(out, "%d", st->exit_code);
	sb_printf(out, ",\"oomKilled\":%s,\"startedAt\":", st->oom_killed ? "true" : "false");
	opt_str(out, st->started_at);
	sb_puts(out, ",\"finishedAt\":");
	opt_str(out, st->finished_at);
	sb_puts(out, ",\"error\":");
	opt_str(out, st->error);
	sb_puts(out, ",\"cgroupVersion\":");
	if (st->cgroup_version == 0)
		sb_puts(out, "null");
	else
		sb_printf(out, "%d", st->cgroup_version);
	sb_puts(out, ",\"cgroup\":");
	opt_str(out, st->cgroup);
	sb_puts(out, "}\n");
}

int state_write(const char *state_dir, const struct shim_state *st, struct shim_err *err)
{
	struct strbuf sb = {0};
	state_format(st, &sb);
	if (sb.oom) {
		sb_free(&sb);
		return shim_fail(err, ENOMEM, "state: format");
	}
	char tmp[PATH_MAX], final[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s/.state.json.tmp", state_dir);
	snprintf(final, sizeof(final), "%s/state.json", state_dir);
	/* No fsync: state describes live processes, which do not survive a host
	 * crash either; rename alone gives readers an all-or-nothing view. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		sb_free(&sb);
		return shim_fail(err, errno, "state: open %s", tmp);
	}
	int rc = write_all(fd, sb.buf, sb.len);
	int saved = errno;
	close(fd);
	sb_free(&sb);
	if (rc < 0)
		return shim_fail(err, saved, "state: write %s", tmp);
	if (rename(tmp, final) < 0)
		return shim_fail(err, errno, "state: rename to %s", final);
	return 0;
}
