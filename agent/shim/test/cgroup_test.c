/* Unit tests of the cgroup helpers: what cgroup_plan writes for v1 and v2, and when a
 * kill counts as the OOM killer's. */
#include <string.h>

#include "cgroup.h"
#include "check.h"
#include "config.h"

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

void run_cgroup_tests(void)
{
	test_cgroup_plan();
	test_oom_decide();
}
