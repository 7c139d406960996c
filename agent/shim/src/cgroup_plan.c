/* See cgroup.h: the pure half. The limits become a plan of (controller, file,
 * value) writes for v1 or v2, and the OOM evidence becomes a yes or no; nothing
 * here touches the filesystem, so both versions are unit tested on any host. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"

long long cpu_shares_to_weight(long long shares)
{
	/* Linear map of the v1 range [2, 262144] onto the v2 range [1, 10000];
	 * the v1 default 1024 lands near the v2 default 100 (39 vs 100 is the
	 * long-standing mapping every runtime uses, keep it for compatibility). */
	if (shares <= 0)
		return -1;
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

__attribute__((format(printf, 6, 7))) static void plan_add(struct cg_write *out, size_t *n, const char *ctrl,
                                                           const char *file, bool optional, const char *fmt, ...)
{
	struct cg_write *w = &out[(*n)++];
	w->ctrl = ctrl;
	w->file = file;
	w->optional = optional;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->value, sizeof(w->value), fmt, ap);
	va_end(ap);
}

size_t cgroup_plan(enum cg_version v, const struct shim_config *cfg, struct cg_write out[CG_MAX_WRITES])
{
	size_t n = 0;
	if (v == CG_V1) {
		if (cfg->memory > 0) {
			/* memsw (memory+swap) must stay >= limit_in_bytes, so the limit goes
			 * first; memsw = limit means no swap at all. memsw only exists with
			 * swap accounting, hence optional, with swappiness 0 as a fallback. */
			plan_add(out, &n, "memory", "memory.limit_in_bytes", false, "%lld", cfg->memory);
			plan_add(out, &n, "memory", "memory.memsw.limit_in_bytes", true, "%lld", cfg->memory);
			plan_add(out, &n, "memory", "memory.swappiness", true, "%d", 0);
		}
		/* the period first: the kernel validates quota against the current period */
		if (cfg->cpu_period > 0)
			plan_add(out, &n, "cpu", "cpu.cfs_period_us", false, "%lld", cfg->cpu_period);
		if (cfg->cpu_quota > 0)
			plan_add(out, &n, "cpu", "cpu.cfs_quota_us", false, "%lld", cfg->cpu_quota);
		if (cfg->cpu_shares > 0)
			plan_add(out, &n, "cpu", "cpu.shares", false, "%lld", cfg->cpu_shares);
		if (cfg->pids > 0)
			plan_add(out, &n, "pids", "pids.max", false, "%lld", cfg->pids);
	} else {
		if (cfg->memory > 0) {
			plan_add(out, &n, "memory", "memory.max", false, "%lld", cfg->memory);
			/* absent when the kernel has no swap support: nothing to turn off then */
			plan_add(out, &n, "memory", "memory.swap.max", true, "%d", 0);
		}
		if (cfg->cpu_quota > 0 || cfg->cpu_period > 0) {
			long long period = cfg->cpu_period > 0 ? cfg->cpu_period : 100000;
			if (cfg->cpu_quota > 0)
				plan_add(out, &n, "cpu", "cpu.max", false, "%lld %lld", cfg->cpu_quota, period);
			else
				plan_add(out, &n, "cpu", "cpu.max", false, "max %lld", period);
		}
		if (cfg->cpu_shares > 0)
			plan_add(out, &n, "cpu", "cpu.weight", false, "%lld", cpu_shares_to_weight(cfg->cpu_shares));
		if (cfg->pids > 0)
			plan_add(out, &n, "pids", "pids.max", false, "%lld", cfg->pids);
	}
	return n;
}

int cg_keyed_value(const char *text, const char *key, long long *out)
{
	size_t klen = strlen(key);
	for (const char *line = text; line && *line;) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			*out = strtoll(line + klen + 1, NULL, 10);
			return 0;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

bool cgroup_oom_decide(enum cg_version v, const char *events, long long failcnt, bool sigkilled)
{
	long long n = 0;
	if (v == CG_V2)
		return cg_keyed_value(events, "oom_kill", &n) == 0 && n > 0;
	/* memory.oom_control has counted kills since Linux 4.13; older kernels only
	 * tell that the group hit its limit, which with a SIGKILL death is the OOM killer */
	if (cg_keyed_value(events, "oom_kill", &n) == 0)
		return n > 0;
	long long under = 0;
	cg_keyed_value(events, "under_oom", &under);
	return sigkilled && (under > 0 || failcnt > 0);
}
