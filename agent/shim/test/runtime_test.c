/* Unit tests of the container set-up helpers (overlay options, environment, capability
 * mask, error wrapping), plus one real-kernel check of the seccomp filter in a forked child. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "container.h"
#include "rootfs.h"
#include "security.h"
#include "util.h"

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
		if (insns[i].code == (BPF_JMP | BPF_JA)) {
			CHECK(i + 1 + insns[i].k < n);
		} else if (BPF_CLASS(insns[i].code) == BPF_JMP) {
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
		/* an allow-list: a number the table does not know is refused, not ENOSYS */
		if (syscall(1000, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
			_exit(17);
		if (syscall(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM, 0) != -1 || errno != EPERM)
			_exit(18);
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			_exit(19);
		int us = socket(AF_UNIX, SOCK_STREAM, 0);
		if (us < 0)
			_exit(20);
		if (syscall(SYS_personality, 0xffffffffUL) < 0)
			_exit(21);
		if (syscall(SYS_personality, 0x0040000UL /* ADDR_NO_RANDOMIZE */) != -1 || errno != EPERM)
			_exit(22);
		if (syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL) != -1 || errno != EPERM)
			_exit(23);
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

void run_runtime_tests(void)
{
	test_overlay_options();
	test_env();
	test_caps_and_seccomp();
	test_errors();
}
