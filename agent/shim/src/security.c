/* See security.h. */
#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "security.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static const int default_caps[] = {
	CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,     CAP_MKNOD,
	CAP_NET_RAW, CAP_SETGID,      CAP_SETUID,           CAP_SETFCAP,    CAP_SETPCAP,
	CAP_NET_BIND_SERVICE,         CAP_SYS_CHROOT,       CAP_KILL,       CAP_AUDIT_WRITE,
};

uint64_t default_cap_mask(void)
{
	uint64_t m = 0;
	for (size_t i = 0; i < SHIM_ARRAY_LEN(default_caps); i++)
		m |= 1ULL << default_caps[i];
	return m;
}

int security_apply(const struct shim_config *cfg, struct shim_err *err)
{
	uint64_t keep = default_cap_mask();
	if (cfg->has_caps) {
		/* --cap-drop only: the shim never grants more than docker's default set */
		if (cfg->caps & ~keep)
			return shim_fail(err, 0, "security: --caps 0x%llx asks for capabilities beyond the default set",
					 (unsigned long long)cfg->caps);
		keep = cfg->caps;
	}

	/* no_new_privs: setuid binaries and file capabilities inside the image can
	 * no longer raise privileges at exec; also lets us install seccomp without
	 * CAP_SYS_ADMIN. Order-independent, so first. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return shim_fail(err, errno, "security: prctl(PR_SET_NO_NEW_PRIVS)");

	/* The bounding set needs CAP_SETPCAP in the effective set to shrink, which
	 * the uid switch below would clear: drop it while we are still full root. */
	for (int cap = 0; cap < 64; cap++) {
		if (keep & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			return shim_fail(err, errno, "security: drop capability %d from the bounding set", cap);
		}
	}

	/* Keep the permitted set across setresuid(0 -> uid); the effective set is
	 * cleared by the switch and restored from permitted by capset below. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return shim_fail(err, errno, "security: prctl(PR_SET_KEEPCAPS)");

	/* groups and gid before uid: changing them needs CAP_SETGID, and setresuid
	 * to a non-root uid would drop it from the effective set */
	uid_t uid = cfg->has_user ? cfg->uid : 0;
	gid_t gid = cfg->has_user ? cfg->gid : 0;
	if (setgroups(cfg->n_groups, cfg->groups) < 0)
		return shim_fail(err, errno, "security: setgroups");
	if (setresgid(gid, gid, gid) < 0)
		return shim_fail(err, errno, "security: setresgid %u", (unsigned)gid);
	if (setresuid(uid, uid, uid) < 0)
		return shim_fail(err, errno, "security: setresuid %u", (unsigned)uid);

	/* Effective/permitted/inheritable = the default set. At exec a root process
	 * keeps them; a non-root one loses them (no file caps, no ambient), which is
	 * how docker behaves for USER. */
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2] = {0};
	for (int w = 0; w < 2; w++) {
		uint32_t bits = (uint32_t)(keep >> (32 * w));
		data[w].effective = data[w].permitted = data[w].inheritable = bits;
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return shim_fail(err, errno, "security: capset");

	/* ambient capabilities would survive exec for non-root users: none */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return shim_fail(err, errno, "security: clear ambient capabilities");
	return 0;
}

/* ---------------- seccomp ---------------- */

#if defined(__x86_64__)
#define SHIM_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SHIM_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Deny-list in the spirit of docker's default profile: kernel-wide state
 * (modules, clocks, swap, reboot, kexec, keyrings), new mount API and
 * namespaces, and interfaces with a history of container escapes (bpf,
 * perf_event_open, userfaultfd, open_by_handle_at, io_uring). Many are also
 * guarded by dropped capabilities: the filter is the second fence. */
static const int denied_syscalls[] = {
#ifdef __NR_acct
	__NR_acct,
#endif
#ifdef __NR_add_key
	__NR_add_key,
#endif
#ifdef __NR_bpf
	__NR_bpf,
#endif
#ifdef __NR_clock_adjtime
	__NR_clock_adjtime,
#endif
#ifdef __NR_clock_settime
	__NR_clock_settime,
#endif
#ifdef __NR_create_module
	__NR_create_module,
#endif
#ifdef __NR_delete_module
	__NR_delete_module,
#endif
#ifdef __NR_finit_module
	__NR_finit_module,
#endif
#ifdef __NR_fsconfig
	__NR_fsconfig, __NR_fsmount, __NR_fsopen, __NR_fspick, __NR_move_mount, __NR_open_tree,
#endif
#ifdef __NR_mount_setattr
	__NR_mount_setattr,
#endif
#ifdef __NR_get_kernel_syms
	__NR_get_kernel_syms,
#endif
#ifdef __NR_init_module
	__NR_init_module,
#endif
#ifdef __NR_io_uring_setup
	__NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register,
#endif
#ifdef __NR_ioperm
	__NR_ioperm,
#endif
#ifdef __NR_iopl
	__NR_iopl,
#endif
#ifdef __NR_kcmp
	__NR_kcmp,
#endif
#ifdef __NR_kexec_file_load
	__NR_kexec_file_load,
#endif
#ifdef __NR_kexec_load
	__NR_kexec_load,
#endif
#ifdef __NR_keyctl
	__NR_keyctl,
#endif
#ifdef __NR_lookup_dcookie
	__NR_lookup_dcookie,
#endif
#ifdef __NR_mount
	__NR_mount,
#endif
#ifdef __NR_name_to_handle_at
	__NR_name_to_handle_at,
#endif
#ifdef __NR_nfsservctl
	__NR_nfsservctl,
#endif
#ifdef __NR_open_by_handle_at
	__NR_open_by_handle_at,
#endif
#ifdef __NR_perf_event_open
	__NR_perf_event_open,
#endif
#ifdef __NR_pivot_root
	__NR_pivot_root,
#endif
#ifdef __NR_query_module
	__NR_query_module,
#endif
#ifdef __NR_quotactl
	__NR_quotactl,
#endif
#ifdef __NR_quotactl_fd
	__NR_quotactl_fd,
#endif
#ifdef __NR_reboot
	__NR_reboot,
#endif
#ifdef __NR_request_key
	__NR_request_key,
#endif
#ifdef __NR_setns
	__NR_setns,
#endif
#ifdef __NR_settimeofday
	__NR_settimeofday,
#endif
#ifdef __NR_swapon
	__NR_swapon,
#endif
#ifdef __NR_swapoff
	__NR_swapoff,
#endif
#ifdef __NR__sysctl
	__NR__sysctl,
#endif
#ifdef __NR_sysfs
	__NR_sysfs,
#endif
#ifdef __NR_umount2
	__NR_umount2,
#endif
#ifdef __NR_unshare
	__NR_unshare,
#endif
#ifdef __NR_uselib
	__NR_uselib,
#endif
#ifdef __NR_userfaultfd
	__NR_userfaultfd,
#endif
#ifdef __NR_ustat
	__NR_ustat,
#endif
#ifdef __NR_vm86
	__NR_vm86,
#endif
#ifdef __NR_vm86old
	__NR_vm86old,
#endif
};

/* clone(2) may not create namespaces (CLONE_NEWUSER needs no privilege) */
#define DENIED_CLONE_FLAGS \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LOW offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LOW (offsetof(struct seccomp_data, args[0]) + 4)
#endif

enum { L_ALLOW, L_EPERM, L_ENOSYS, L_CLONE, L_COUNT };

/* Jumps to labels are recorded as (label + 1) in jt/jf with the K field
 * untouched, then resolved in a second pass once label positions are known. */
struct bpf_prog_builder {
	struct sock_filter *insns;
	size_t n, max;
	size_t label_at[L_COUNT];
	bool overflow;
};

static void emit(struct bpf_prog_builder *b, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
	if (b->n >= b->max) {
		b->overflow = true;
		return;
	}
	b->insns[b->n++] = (struct sock_filter){code, jt, jf, k};
}

size_t seccomp_build(struct sock_filter *out, size_t max)
{
#ifndef SHIM_AUDIT_ARCH
	(void)out;
	(void)max;
	return 0;
#else
	struct bpf_prog_builder b = {.insns = out, .max = max};
	/* Jump targets need forward references; mark them in a side table. */
	uint8_t target[SECCOMP_MAX_INSNS][2] = {{0}}; /* label+1 for jt, jf; 0 = literal */
#define J(code, k, lt, lf)                                       \
	do {                                                     \
		if (b.n < SECCOMP_MAX_INSNS) {                   \
			target[b.n][0] = (lt);                   \
			target[b.n][1] = (lf);                   \
		}                                                \
		emit(&b, (code), (k), 0, 0);                     \
	} while (0)

	/* A foreign ABI (e.g. i386 via int 0x80) has other syscall numbers:
	 * the list below would not match it, so it gets ENOSYS as a whole. */
	emit(&b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
	J(BPF_JMP | BPF_JEQ | BPF_K, SHIM_AUDIT_ARCH, 0, L_ENOSYS + 1);
	emit(&b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
#if defined(__x86_64__)
	/* x32 syscalls share the arch value and set bit 30 of the number */
	J(BPF_JMP | BPF_JSET | BPF_K, 0x40000000, L_ENOSYS + 1, 0);
#endif
#ifdef __NR_clone3
	/* clone3 passes flags in memory, out of the filter's reach: ENOSYS makes
	 * libc fall back to clone, whose flags we can check */
	J(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, L_ENOSYS + 1, 0);
#endif
	J(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, L_CLONE + 1, 0);
	for (size_t i = 0; i < SHIM_ARRAY_LEN(denied_syscalls); i++)
		J(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied_syscalls[i], L_EPERM + 1, 0);
	b.label_at[L_ALLOW] = b.n;
	emit(&b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
	b.label_at[L_CLONE] = b.n;
	emit(&b, BPF_LD | BPF_W | BPF_ABS, ARG0_LOW, 0, 0);
	/* classic BPF only jumps forward: this branch gets its own allow */
	J(BPF_JMP | BPF_JSET | BPF_K, DENIED_CLONE_FLAGS, L_EPERM + 1, 0);
	emit(&b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
	b.label_at[L_EPERM] = b.n;
	emit(&b, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA), 0, 0);
	b.label_at[L_ENOSYS] = b.n;
	emit(&b, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA), 0, 0);
#undef J
	if (b.overflow)
		return 0;
	for (size_t i = 0; i < b.n; i++) {
		for (int side = 0; side < 2; side++) {
			if (target[i][side] == 0)
				continue;
			size_t to = b.label_at[target[i][side] - 1];
			size_t off = to - i - 1;
			if (to <= i || off > 255)
				return 0; /* cannot happen with this list; refuse rather than misjump */
			if (side == 0)
				out[i].jt = (uint8_t)off;
			else
				out[i].jf = (uint8_t)off;
		}
	}
	return b.n;
#endif
}

int seccomp_install(struct shim_err *err)
{
	struct sock_filter insns[SECCOMP_MAX_INSNS];
	size_t n = seccomp_build(insns, SHIM_ARRAY_LEN(insns));
	if (n == 0)
		return shim_fail(err, 0, "seccomp: no default profile for this architecture (use --seccomp unconfined)");
	struct sock_fprog prog = {.len = (unsigned short)n, .filter = insns};
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return shim_fail(err, errno, "seccomp: install filter");
	return 0;
}
