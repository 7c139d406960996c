/* See security.h. */
#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "security.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT           47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static const int default_caps[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,  CAP_FOWNER,           CAP_MKNOD,      CAP_NET_RAW, CAP_SETGID,
    CAP_SETUID, CAP_SETFCAP,      CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,    CAP_AUDIT_WRITE,
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

/* The allow-list: Docker's default seccomp semantics (what an unprivileged container
 * with the default capabilities may do), grouped by purpose. Not here, so refused
 * with EPERM: kernel-wide state (modules, clocks, swap, reboot, kexec, keyrings,
 * accounting, quotas), mounts and namespaces (mount, the new mount API, unshare,
 * setns), bpf, perf_event_open, userfaultfd, open_by_handle_at and
 * name_to_handle_at, io_uring (allowed by Docker, kept out here for its record of
 * escapes), and anything newer than this table. clone, clone3, socket and
 * personality are checked with their arguments before the table. */
static const int allowed_syscalls[] = {
/* files and directories */
#ifdef __NR_open
    __NR_open,
#endif
#ifdef __NR_openat
    __NR_openat,
#endif
#ifdef __NR_openat2
    __NR_openat2,
#endif
#ifdef __NR_creat
    __NR_creat,
#endif
#ifdef __NR_close
    __NR_close,
#endif
#ifdef __NR_close_range
    __NR_close_range,
#endif
#ifdef __NR_read
    __NR_read,
#endif
#ifdef __NR_write
    __NR_write,
#endif
#ifdef __NR_readv
    __NR_readv,
#endif
#ifdef __NR_writev
    __NR_writev,
#endif
#ifdef __NR_pread64
    __NR_pread64,
#endif
#ifdef __NR_pwrite64
    __NR_pwrite64,
#endif
#ifdef __NR_preadv
    __NR_preadv,
#endif
#ifdef __NR_preadv2
    __NR_preadv2,
#endif
#ifdef __NR_pwritev
    __NR_pwritev,
#endif
#ifdef __NR_pwritev2
    __NR_pwritev2,
#endif
#ifdef __NR_lseek
    __NR_lseek,
#endif
#ifdef __NR__llseek
    __NR__llseek,
#endif
#ifdef __NR_stat
    __NR_stat,
#endif
#ifdef __NR_lstat
    __NR_lstat,
#endif
#ifdef __NR_fstat
    __NR_fstat,
#endif
#ifdef __NR_newfstatat
    __NR_newfstatat,
#endif
#ifdef __NR_statx
    __NR_statx,
#endif
#ifdef __NR_fstat64
    __NR_fstat64,
#endif
#ifdef __NR_stat64
    __NR_stat64,
#endif
#ifdef __NR_lstat64
    __NR_lstat64,
#endif
#ifdef __NR_fstatat64
    __NR_fstatat64,
#endif
#ifdef __NR_statfs
    __NR_statfs,
#endif
#ifdef __NR_fstatfs
    __NR_fstatfs,
#endif
#ifdef __NR_statfs64
    __NR_statfs64,
#endif
#ifdef __NR_fstatfs64
    __NR_fstatfs64,
#endif
#ifdef __NR_access
    __NR_access,
#endif
#ifdef __NR_faccessat
    __NR_faccessat,
#endif
#ifdef __NR_faccessat2
    __NR_faccessat2,
#endif
#ifdef __NR_readlink
    __NR_readlink,
#endif
#ifdef __NR_readlinkat
    __NR_readlinkat,
#endif
#ifdef __NR_getdents
    __NR_getdents,
#endif
#ifdef __NR_getdents64
    __NR_getdents64,
#endif
#ifdef __NR_mkdir
    __NR_mkdir,
#endif
#ifdef __NR_mkdirat
    __NR_mkdirat,
#endif
#ifdef __NR_rmdir
    __NR_rmdir,
#endif
#ifdef __NR_unlink
    __NR_unlink,
#endif
#ifdef __NR_unlinkat
    __NR_unlinkat,
#endif
#ifdef __NR_rename
    __NR_rename,
#endif
#ifdef __NR_renameat
    __NR_renameat,
#endif
#ifdef __NR_renameat2
    __NR_renameat2,
#endif
#ifdef __NR_link
    __NR_link,
#endif
#ifdef __NR_linkat
    __NR_linkat,
#endif
#ifdef __NR_symlink
    __NR_symlink,
#endif
#ifdef __NR_symlinkat
    __NR_symlinkat,
#endif
#ifdef __NR_chmod
    __NR_chmod,
#endif
#ifdef __NR_fchmod
    __NR_fchmod,
#endif
#ifdef __NR_fchmodat
    __NR_fchmodat,
#endif
#ifdef __NR_chown
    __NR_chown,
#endif
#ifdef __NR_fchown
    __NR_fchown,
#endif
#ifdef __NR_lchown
    __NR_lchown,
#endif
#ifdef __NR_fchownat
    __NR_fchownat,
#endif
#ifdef __NR_chown32
    __NR_chown32,
#endif
#ifdef __NR_fchown32
    __NR_fchown32,
#endif
#ifdef __NR_lchown32
    __NR_lchown32,
#endif
#ifdef __NR_truncate
    __NR_truncate,
#endif
#ifdef __NR_ftruncate
    __NR_ftruncate,
#endif
#ifdef __NR_truncate64
    __NR_truncate64,
#endif
#ifdef __NR_ftruncate64
    __NR_ftruncate64,
#endif
#ifdef __NR_fallocate
    __NR_fallocate,
#endif
#ifdef __NR_fadvise64
    __NR_fadvise64,
#endif
#ifdef __NR_fadvise64_64
    __NR_fadvise64_64,
#endif
#ifdef __NR_readahead
    __NR_readahead,
#endif
#ifdef __NR_sync
    __NR_sync,
#endif
#ifdef __NR_syncfs
    __NR_syncfs,
#endif
#ifdef __NR_fsync
    __NR_fsync,
#endif
#ifdef __NR_fdatasync
    __NR_fdatasync,
#endif
#ifdef __NR_sync_file_range
    __NR_sync_file_range,
#endif
#ifdef __NR_copy_file_range
    __NR_copy_file_range,
#endif
#ifdef __NR_sendfile
    __NR_sendfile,
#endif
#ifdef __NR_sendfile64
    __NR_sendfile64,
#endif
#ifdef __NR_splice
    __NR_splice,
#endif
#ifdef __NR_tee
    __NR_tee,
#endif
#ifdef __NR_vmsplice
    __NR_vmsplice,
#endif
#ifdef __NR_utime
    __NR_utime,
#endif
#ifdef __NR_utimes
    __NR_utimes,
#endif
#ifdef __NR_utimensat
    __NR_utimensat,
#endif
#ifdef __NR_futimesat
    __NR_futimesat,
#endif
#ifdef __NR_umask
    __NR_umask,
#endif
#ifdef __NR_getcwd
    __NR_getcwd,
#endif
#ifdef __NR_chdir
    __NR_chdir,
#endif
#ifdef __NR_fchdir
    __NR_fchdir,
#endif
#ifdef __NR_chroot
    __NR_chroot,
#endif
#ifdef __NR_mknod
    __NR_mknod,
#endif
#ifdef __NR_mknodat
    __NR_mknodat,
#endif
#ifdef __NR_flock
    __NR_flock,
#endif
#ifdef __NR_fcntl
    __NR_fcntl,
#endif
#ifdef __NR_fcntl64
    __NR_fcntl64,
#endif
#ifdef __NR_dup
    __NR_dup,
#endif
#ifdef __NR_dup2
    __NR_dup2,
#endif
#ifdef __NR_dup3
    __NR_dup3,
#endif
#ifdef __NR_ioctl
    __NR_ioctl,
#endif
/* extended attributes */
#ifdef __NR_getxattr
    __NR_getxattr,
#endif
#ifdef __NR_lgetxattr
    __NR_lgetxattr,
#endif
#ifdef __NR_fgetxattr
    __NR_fgetxattr,
#endif
#ifdef __NR_setxattr
    __NR_setxattr,
#endif
#ifdef __NR_lsetxattr
    __NR_lsetxattr,
#endif
#ifdef __NR_fsetxattr
    __NR_fsetxattr,
#endif
#ifdef __NR_listxattr
    __NR_listxattr,
#endif
#ifdef __NR_llistxattr
    __NR_llistxattr,
#endif
#ifdef __NR_flistxattr
    __NR_flistxattr,
#endif
#ifdef __NR_removexattr
    __NR_removexattr,
#endif
#ifdef __NR_lremovexattr
    __NR_lremovexattr,
#endif
#ifdef __NR_fremovexattr
    __NR_fremovexattr,
#endif
/* memory */
#ifdef __NR_brk
    __NR_brk,
#endif
#ifdef __NR_mmap
    __NR_mmap,
#endif
#ifdef __NR_mmap2
    __NR_mmap2,
#endif
#ifdef __NR_munmap
    __NR_munmap,
#endif
#ifdef __NR_mremap
    __NR_mremap,
#endif
#ifdef __NR_mprotect
    __NR_mprotect,
#endif
#ifdef __NR_madvise
    __NR_madvise,
#endif
#ifdef __NR_mincore
    __NR_mincore,
#endif
#ifdef __NR_msync
    __NR_msync,
#endif
#ifdef __NR_mlock
    __NR_mlock,
#endif
#ifdef __NR_mlock2
    __NR_mlock2,
#endif
#ifdef __NR_munlock
    __NR_munlock,
#endif
#ifdef __NR_mlockall
    __NR_mlockall,
#endif
#ifdef __NR_munlockall
    __NR_munlockall,
#endif
#ifdef __NR_membarrier
    __NR_membarrier,
#endif
#ifdef __NR_memfd_create
    __NR_memfd_create,
#endif
#ifdef __NR_remap_file_pages
    __NR_remap_file_pages,
#endif
#ifdef __NR_pkey_alloc
    __NR_pkey_alloc,
#endif
#ifdef __NR_pkey_free
    __NR_pkey_free,
#endif
#ifdef __NR_pkey_mprotect
    __NR_pkey_mprotect,
#endif
/* processes and threads */
#ifdef __NR_execve
    __NR_execve,
#endif
#ifdef __NR_execveat
    __NR_execveat,
#endif
#ifdef __NR_exit
    __NR_exit,
#endif
#ifdef __NR_exit_group
    __NR_exit_group,
#endif
#ifdef __NR_fork
    __NR_fork,
#endif
#ifdef __NR_vfork
    __NR_vfork,
#endif
#ifdef __NR_wait4
    __NR_wait4,
#endif
#ifdef __NR_waitid
    __NR_waitid,
#endif
#ifdef __NR_waitpid
    __NR_waitpid,
#endif
#ifdef __NR_kill
    __NR_kill,
#endif
#ifdef __NR_tkill
    __NR_tkill,
#endif
#ifdef __NR_tgkill
    __NR_tgkill,
#endif
#ifdef __NR_getpid
    __NR_getpid,
#endif
#ifdef __NR_getppid
    __NR_getppid,
#endif
#ifdef __NR_gettid
    __NR_gettid,
#endif
#ifdef __NR_getpgid
    __NR_getpgid,
#endif
#ifdef __NR_setpgid
    __NR_setpgid,
#endif
#ifdef __NR_getpgrp
    __NR_getpgrp,
#endif
#ifdef __NR_getsid
    __NR_getsid,
#endif
#ifdef __NR_setsid
    __NR_setsid,
#endif
#ifdef __NR_set_tid_address
    __NR_set_tid_address,
#endif
#ifdef __NR_set_robust_list
    __NR_set_robust_list,
#endif
#ifdef __NR_get_robust_list
    __NR_get_robust_list,
#endif
#ifdef __NR_futex
    __NR_futex,
#endif
#ifdef __NR_futex_waitv
    __NR_futex_waitv,
#endif
#ifdef __NR_rseq
    __NR_rseq,
#endif
#ifdef __NR_prctl
    __NR_prctl,
#endif
#ifdef __NR_arch_prctl
    __NR_arch_prctl,
#endif
#ifdef __NR_capget
    __NR_capget,
#endif
#ifdef __NR_capset
    __NR_capset,
#endif
#ifdef __NR_getpriority
    __NR_getpriority,
#endif
#ifdef __NR_setpriority
    __NR_setpriority,
#endif
#ifdef __NR_sched_yield
    __NR_sched_yield,
#endif
#ifdef __NR_sched_getaffinity
    __NR_sched_getaffinity,
#endif
#ifdef __NR_sched_setaffinity
    __NR_sched_setaffinity,
#endif
#ifdef __NR_sched_getparam
    __NR_sched_getparam,
#endif
#ifdef __NR_sched_setparam
    __NR_sched_setparam,
#endif
#ifdef __NR_sched_getscheduler
    __NR_sched_getscheduler,
#endif
#ifdef __NR_sched_setscheduler
    __NR_sched_setscheduler,
#endif
#ifdef __NR_sched_getattr
    __NR_sched_getattr,
#endif
#ifdef __NR_sched_setattr
    __NR_sched_setattr,
#endif
#ifdef __NR_sched_get_priority_max
    __NR_sched_get_priority_max,
#endif
#ifdef __NR_sched_get_priority_min
    __NR_sched_get_priority_min,
#endif
#ifdef __NR_sched_rr_get_interval
    __NR_sched_rr_get_interval,
#endif
#ifdef __NR_getrlimit
    __NR_getrlimit,
#endif
#ifdef __NR_setrlimit
    __NR_setrlimit,
#endif
#ifdef __NR_prlimit64
    __NR_prlimit64,
#endif
#ifdef __NR_ugetrlimit
    __NR_ugetrlimit,
#endif
#ifdef __NR_getrusage
    __NR_getrusage,
#endif
#ifdef __NR_times
    __NR_times,
#endif
#ifdef __NR_pidfd_open
    __NR_pidfd_open,
#endif
#ifdef __NR_pidfd_send_signal
    __NR_pidfd_send_signal,
#endif
#ifdef __NR_ptrace
    __NR_ptrace,
#endif
#ifdef __NR_process_vm_readv
    __NR_process_vm_readv,
#endif
#ifdef __NR_process_vm_writev
    __NR_process_vm_writev,
#endif
#ifdef __NR_ioprio_get
    __NR_ioprio_get,
#endif
#ifdef __NR_ioprio_set
    __NR_ioprio_set,
#endif
#ifdef __NR_getcpu
    __NR_getcpu,
#endif
#ifdef __NR_get_thread_area
    __NR_get_thread_area,
#endif
#ifdef __NR_set_thread_area
    __NR_set_thread_area,
#endif
#ifdef __NR_modify_ldt
    __NR_modify_ldt,
#endif
#ifdef __NR_seccomp
    __NR_seccomp,
#endif
#ifdef __NR_restart_syscall
    __NR_restart_syscall,
#endif
#ifdef __NR_uname
    __NR_uname,
#endif
#ifdef __NR_sysinfo
    __NR_sysinfo,
#endif
/* identity */
#ifdef __NR_getuid
    __NR_getuid,
#endif
#ifdef __NR_geteuid
    __NR_geteuid,
#endif
#ifdef __NR_getgid
    __NR_getgid,
#endif
#ifdef __NR_getegid
    __NR_getegid,
#endif
#ifdef __NR_getresuid
    __NR_getresuid,
#endif
#ifdef __NR_getresgid
    __NR_getresgid,
#endif
#ifdef __NR_getgroups
    __NR_getgroups,
#endif
#ifdef __NR_setuid
    __NR_setuid,
#endif
#ifdef __NR_setgid
    __NR_setgid,
#endif
#ifdef __NR_setreuid
    __NR_setreuid,
#endif
#ifdef __NR_setregid
    __NR_setregid,
#endif
#ifdef __NR_setresuid
    __NR_setresuid,
#endif
#ifdef __NR_setresgid
    __NR_setresgid,
#endif
#ifdef __NR_setfsuid
    __NR_setfsuid,
#endif
#ifdef __NR_setfsgid
    __NR_setfsgid,
#endif
#ifdef __NR_setgroups
    __NR_setgroups,
#endif
#ifdef __NR_getuid32
    __NR_getuid32,
#endif
#ifdef __NR_geteuid32
    __NR_geteuid32,
#endif
#ifdef __NR_getgid32
    __NR_getgid32,
#endif
#ifdef __NR_getegid32
    __NR_getegid32,
#endif
#ifdef __NR_getresuid32
    __NR_getresuid32,
#endif
#ifdef __NR_getresgid32
    __NR_getresgid32,
#endif
#ifdef __NR_getgroups32
    __NR_getgroups32,
#endif
#ifdef __NR_setuid32
    __NR_setuid32,
#endif
#ifdef __NR_setgid32
    __NR_setgid32,
#endif
#ifdef __NR_setreuid32
    __NR_setreuid32,
#endif
#ifdef __NR_setregid32
    __NR_setregid32,
#endif
#ifdef __NR_setresuid32
    __NR_setresuid32,
#endif
#ifdef __NR_setresgid32
    __NR_setresgid32,
#endif
#ifdef __NR_setfsuid32
    __NR_setfsuid32,
#endif
#ifdef __NR_setfsgid32
    __NR_setfsgid32,
#endif
#ifdef __NR_setgroups32
    __NR_setgroups32,
#endif
/* signals */
#ifdef __NR_rt_sigaction
    __NR_rt_sigaction,
#endif
#ifdef __NR_rt_sigprocmask
    __NR_rt_sigprocmask,
#endif
#ifdef __NR_rt_sigreturn
    __NR_rt_sigreturn,
#endif
#ifdef __NR_rt_sigpending
    __NR_rt_sigpending,
#endif
#ifdef __NR_rt_sigsuspend
    __NR_rt_sigsuspend,
#endif
#ifdef __NR_rt_sigtimedwait
    __NR_rt_sigtimedwait,
#endif
#ifdef __NR_rt_sigqueueinfo
    __NR_rt_sigqueueinfo,
#endif
#ifdef __NR_rt_tgsigqueueinfo
    __NR_rt_tgsigqueueinfo,
#endif
#ifdef __NR_sigaltstack
    __NR_sigaltstack,
#endif
#ifdef __NR_signalfd
    __NR_signalfd,
#endif
#ifdef __NR_signalfd4
    __NR_signalfd4,
#endif
#ifdef __NR_sigreturn
    __NR_sigreturn,
#endif
#ifdef __NR_sigprocmask
    __NR_sigprocmask,
#endif
#ifdef __NR_pause
    __NR_pause,
#endif
#ifdef __NR_alarm
    __NR_alarm,
#endif
/* time */
#ifdef __NR_clock_gettime
    __NR_clock_gettime,
#endif
#ifdef __NR_clock_getres
    __NR_clock_getres,
#endif
#ifdef __NR_clock_nanosleep
    __NR_clock_nanosleep,
#endif
#ifdef __NR_nanosleep
    __NR_nanosleep,
#endif
#ifdef __NR_gettimeofday
    __NR_gettimeofday,
#endif
#ifdef __NR_time
    __NR_time,
#endif
#ifdef __NR_getitimer
    __NR_getitimer,
#endif
#ifdef __NR_setitimer
    __NR_setitimer,
#endif
#ifdef __NR_timer_create
    __NR_timer_create,
#endif
#ifdef __NR_timer_delete
    __NR_timer_delete,
#endif
#ifdef __NR_timer_gettime
    __NR_timer_gettime,
#endif
#ifdef __NR_timer_settime
    __NR_timer_settime,
#endif
#ifdef __NR_timer_getoverrun
    __NR_timer_getoverrun,
#endif
#ifdef __NR_timerfd_create
    __NR_timerfd_create,
#endif
#ifdef __NR_timerfd_gettime
    __NR_timerfd_gettime,
#endif
#ifdef __NR_timerfd_settime
    __NR_timerfd_settime,
#endif
#ifdef __NR_adjtimex
    __NR_adjtimex,
#endif
/* polling and events */
#ifdef __NR_poll
    __NR_poll,
#endif
#ifdef __NR_ppoll
    __NR_ppoll,
#endif
#ifdef __NR_select
    __NR_select,
#endif
#ifdef __NR__newselect
    __NR__newselect,
#endif
#ifdef __NR_pselect6
    __NR_pselect6,
#endif
#ifdef __NR_epoll_create
    __NR_epoll_create,
#endif
#ifdef __NR_epoll_create1
    __NR_epoll_create1,
#endif
#ifdef __NR_epoll_ctl
    __NR_epoll_ctl,
#endif
#ifdef __NR_epoll_wait
    __NR_epoll_wait,
#endif
#ifdef __NR_epoll_pwait
    __NR_epoll_pwait,
#endif
#ifdef __NR_epoll_pwait2
    __NR_epoll_pwait2,
#endif
#ifdef __NR_eventfd
    __NR_eventfd,
#endif
#ifdef __NR_eventfd2
    __NR_eventfd2,
#endif
#ifdef __NR_inotify_init
    __NR_inotify_init,
#endif
#ifdef __NR_inotify_init1
    __NR_inotify_init1,
#endif
#ifdef __NR_inotify_add_watch
    __NR_inotify_add_watch,
#endif
#ifdef __NR_inotify_rm_watch
    __NR_inotify_rm_watch,
#endif
#ifdef __NR_fanotify_mark
    __NR_fanotify_mark,
#endif
#ifdef __NR_pipe
    __NR_pipe,
#endif
#ifdef __NR_pipe2
    __NR_pipe2,
#endif
/* sockets */
#ifdef __NR_bind
    __NR_bind,
#endif
#ifdef __NR_connect
    __NR_connect,
#endif
#ifdef __NR_listen
    __NR_listen,
#endif
#ifdef __NR_accept
    __NR_accept,
#endif
#ifdef __NR_accept4
    __NR_accept4,
#endif
#ifdef __NR_getsockname
    __NR_getsockname,
#endif
#ifdef __NR_getpeername
    __NR_getpeername,
#endif
#ifdef __NR_socketpair
    __NR_socketpair,
#endif
#ifdef __NR_sendto
    __NR_sendto,
#endif
#ifdef __NR_recvfrom
    __NR_recvfrom,
#endif
#ifdef __NR_sendmsg
    __NR_sendmsg,
#endif
#ifdef __NR_recvmsg
    __NR_recvmsg,
#endif
#ifdef __NR_sendmmsg
    __NR_sendmmsg,
#endif
#ifdef __NR_recvmmsg
    __NR_recvmmsg,
#endif
#ifdef __NR_shutdown
    __NR_shutdown,
#endif
#ifdef __NR_setsockopt
    __NR_setsockopt,
#endif
#ifdef __NR_getsockopt
    __NR_getsockopt,
#endif
/* System V and POSIX IPC, async I/O */
#ifdef __NR_shmget
    __NR_shmget,
#endif
#ifdef __NR_shmat
    __NR_shmat,
#endif
#ifdef __NR_shmdt
    __NR_shmdt,
#endif
#ifdef __NR_shmctl
    __NR_shmctl,
#endif
#ifdef __NR_semget
    __NR_semget,
#endif
#ifdef __NR_semop
    __NR_semop,
#endif
#ifdef __NR_semctl
    __NR_semctl,
#endif
#ifdef __NR_semtimedop
    __NR_semtimedop,
#endif
#ifdef __NR_msgget
    __NR_msgget,
#endif
#ifdef __NR_msgsnd
    __NR_msgsnd,
#endif
#ifdef __NR_msgrcv
    __NR_msgrcv,
#endif
#ifdef __NR_msgctl
    __NR_msgctl,
#endif
#ifdef __NR_mq_open
    __NR_mq_open,
#endif
#ifdef __NR_mq_unlink
    __NR_mq_unlink,
#endif
#ifdef __NR_mq_timedsend
    __NR_mq_timedsend,
#endif
#ifdef __NR_mq_timedreceive
    __NR_mq_timedreceive,
#endif
#ifdef __NR_mq_notify
    __NR_mq_notify,
#endif
#ifdef __NR_mq_getsetattr
    __NR_mq_getsetattr,
#endif
#ifdef __NR_io_setup
    __NR_io_setup,
#endif
#ifdef __NR_io_destroy
    __NR_io_destroy,
#endif
#ifdef __NR_io_submit
    __NR_io_submit,
#endif
#ifdef __NR_io_cancel
    __NR_io_cancel,
#endif
#ifdef __NR_io_getevents
    __NR_io_getevents,
#endif
#ifdef __NR_io_pgetevents
    __NR_io_pgetevents,
#endif
#ifdef __NR_getrandom
    __NR_getrandom,
#endif
#ifdef __NR_landlock_create_ruleset
    __NR_landlock_create_ruleset,
#endif
#ifdef __NR_landlock_add_rule
    __NR_landlock_add_rule,
#endif
#ifdef __NR_landlock_restrict_self
    __NR_landlock_restrict_self,
#endif
};

/* clone(2) may not create namespaces (CLONE_NEWUSER needs no privilege) */
#define DENIED_CLONE_FLAGS                                                                                             \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)
/* vsock reaches the hypervisor's host, outside the container's network */
#define SHIM_AF_VSOCK 40
/* personality(2): Linux, 32-bit Linux, and the same with UNAME26, or a query */
static const uint32_t allowed_personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LOW offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LOW (offsetof(struct seccomp_data, args[0]) + 4)
#endif

#define RET_ERRNO(e) (SECCOMP_RET_ERRNO | ((e)&SECCOMP_RET_DATA))

struct bpf_prog_builder {
	struct sock_filter *insns;
	size_t n, max;
	bool overflow;
};

static size_t emit(struct bpf_prog_builder *b, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
	if (b->n >= b->max) {
		b->overflow = true;
		return b->n;
	}
	b->insns[b->n] = (struct sock_filter){code, jt, jf, k};
	return b->n++;
}

/* A binary search over the sorted allowed numbers (the accumulator holds the
 * syscall number): each inner node jumps over its left half with BPF_JA, whose
 * 32-bit offset has no 255-instruction limit; each leaf compares a few numbers
 * and refuses the rest. */
static void emit_tree(struct bpf_prog_builder *b, const uint32_t *nrs, size_t n)
{
	if (n <= 3) {
		for (size_t i = 0; i < n; i++) {
			emit(b, BPF_JMP | BPF_JEQ | BPF_K, nrs[i], 0, 1);
			emit(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
		}
		emit(b, BPF_RET | BPF_K, RET_ERRNO(EPERM), 0, 0);
		return;
	}
	size_t mid = n / 2;
	emit(b, BPF_JMP | BPF_JGE | BPF_K, nrs[mid], 0, 1);
	size_t ja = emit(b, BPF_JMP | BPF_JA, 0, 0, 0);
	emit_tree(b, nrs, mid);
	if (!b->overflow)
		b->insns[ja].k = (uint32_t)(b->n - ja - 1);
	emit_tree(b, nrs + mid, n - mid);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

size_t seccomp_build(struct sock_filter *out, size_t max)
{
#ifndef SHIM_AUDIT_ARCH
	(void)out;
	(void)max;
	return 0;
#else
	struct bpf_prog_builder b = {.insns = out, .max = max};
	uint32_t nrs[SHIM_ARRAY_LEN(allowed_syscalls)];
	size_t n = 0;
	for (size_t i = 0; i < SHIM_ARRAY_LEN(allowed_syscalls); i++)
		nrs[n++] = (uint32_t)allowed_syscalls[i];
	qsort(nrs, n, sizeof(nrs[0]), cmp_u32);
	size_t uniq = 0;
	for (size_t i = 0; i < n; i++)
		if (uniq == 0 || nrs[uniq - 1] != nrs[i])
			nrs[uniq++] = nrs[i];

	/* A foreign ABI (e.g. i386 via int 0x80) has other syscall numbers: the
	 * table would not match it, so it gets ENOSYS as a whole. */
	emit(&b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
	emit(&b, BPF_JMP | BPF_JEQ | BPF_K, SHIM_AUDIT_ARCH, 1, 0);
	emit(&b, BPF_RET | BPF_K, RET_ERRNO(ENOSYS), 0, 0);
	emit(&b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
#if defined(__x86_64__)
	/* x32 syscalls share the arch value and set bit 30 of the number */
	emit(&b, BPF_JMP | BPF_JSET | BPF_K, 0x40000000, 0, 1);
	emit(&b, BPF_RET | BPF_K, RET_ERRNO(ENOSYS), 0, 0);
#endif
#ifdef __NR_clone3
	/* clone3 passes flags in memory, out of the filter's reach: ENOSYS makes
	 * libc fall back to clone, whose flags we can check */
	emit(&b, BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
	emit(&b, BPF_RET | BPF_K, RET_ERRNO(ENOSYS), 0, 0);
#endif
	/* Each argument check is a block that returns; the jf of its first
	 * instruction skips the block, with the syscall number still loaded. */
	emit(&b, BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4);
	emit(&b, BPF_LD | BPF_W | BPF_ABS, ARG0_LOW, 0, 0);
	emit(&b, BPF_JMP | BPF_JSET | BPF_K, DENIED_CLONE_FLAGS, 0, 1);
	emit(&b, BPF_RET | BPF_K, RET_ERRNO(EPERM), 0, 0);
	emit(&b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);

	emit(&b, BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 4);
	emit(&b, BPF_LD | BPF_W | BPF_ABS, ARG0_LOW, 0, 0);
	emit(&b, BPF_JMP | BPF_JEQ | BPF_K, SHIM_AF_VSOCK, 0, 1);
	emit(&b, BPF_RET | BPF_K, RET_ERRNO(EPERM), 0, 0);
	emit(&b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);

	const size_t np = SHIM_ARRAY_LEN(allowed_personas);
	emit(&b, BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0, (uint8_t)(np + 3));
	emit(&b, BPF_LD | BPF_W | BPF_ABS, ARG0_LOW, 0, 0);
	for (size_t i = 0; i < np; i++)
		emit(&b, BPF_JMP | BPF_JEQ | BPF_K, allowed_personas[i], (uint8_t)(np - i), 0);
	emit(&b, BPF_RET | BPF_K, RET_ERRNO(EPERM), 0, 0);
	emit(&b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);

	emit_tree(&b, nrs, uniq);
	return b.overflow ? 0 : b.n;
#endif
}

int seccomp_install(struct shim_err *err)
{
	struct sock_filter insns[SECCOMP_MAX_INSNS];
	size_t n = seccomp_build(insns, SHIM_ARRAY_LEN(insns));
	if (n == 0)
		return shim_fail(err, 0,
		                 "seccomp: no default profile for this architecture (use --seccomp unconfined)");
	struct sock_fprog prog = {.len = (unsigned short)n, .filter = insns};
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return shim_fail(err, errno, "seccomp: install filter");
	return 0;
}
