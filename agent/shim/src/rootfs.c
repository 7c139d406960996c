/* See rootfs.h.
 *
 * Every path inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT): the
 * image is untrusted, and a symlink such as /dev -> /../../etc must resolve
 * inside the rootfs, never to the host. Mounts then target the resolved
 * descriptor through /proc/self/fd/N (the host /proc, still visible until
 * pivot_root). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rootfs.h"

enum mk { MK_NONE, MK_DIR, MK_FILE };

int overlay_options(const struct shim_config *cfg, char *out, size_t size)
{
	size_t off = 0;
	int n = snprintf(out, size, "lowerdir=");
	if (n < 0 || (size_t)n >= size)
		return -1;
	off = (size_t)n;
	for (size_t i = 0; i < cfg->n_lowers; i++) {
		n = snprintf(out + off, size - off, "%s%s", i ? ":" : "", cfg->lowers[i]);
		if (n < 0 || (size_t)n >= size - off)
			return -1;
		off += (size_t)n;
	}
	/* index=off: the inode index ties an upper dir to its lower layers and makes
	 * a remount with other lowers fail; containers never need hard-link
	 * preservation across copy-up, so leave it off like docker does. */
	n = snprintf(out + off, size - off, ",upperdir=%s,workdir=%s,index=off", cfg->upper, cfg->work);
	if (n < 0 || (size_t)n >= size - off)
		return -1;
	return (int)(off + (size_t)n);
}

static int mount_fd(int fd, const char *src, const char *fstype, unsigned long flags, const char *data)
{
	char target[40];
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	return mount(src, target, fstype, flags, data);
}

/* Opens path inside root (O_PATH), creating the last component (and missing
 * parents as directories) when asked. */
static int open_in_root(int rootfd, const char *path, enum mk mk, struct shim_err *err)
{
	struct open_how how = {
	    .flags = O_PATH | O_CLOEXEC,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd >= 0)
		return fd;
	if (errno == ENOSYS)
		return shim_fail(err, errno, "open %s in rootfs: openat2 (needs Linux 5.6)", path);
	if (errno != ENOENT || mk == MK_NONE)
		return shim_fail(err, errno, "open %s in rootfs", path);

	char parent[PATH_MAX];
	if (strlen(path) >= sizeof(parent))
		return shim_fail(err, ENAMETOOLONG, "open %s in rootfs", path);
	strcpy(parent, path);
	size_t len = strlen(parent);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';
	char *slash = strrchr(parent, '/');
	const char *base = slash ? slash + 1 : parent;
	char base_copy[NAME_MAX + 1];
	snprintf(base_copy, sizeof(base_copy), "%s", base);
	if (slash == parent)
		parent[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(parent, "/");

	_cleanup_close_ int pfd = open_in_root(rootfd, parent, MK_DIR, err);
	if (pfd < 0)
		return -1;
	if (mk == MK_DIR) {
		if (mkdirat(pfd, base_copy, 0755) < 0 && errno != EEXIST)
			return shim_fail(err, errno, "mkdir %s in rootfs", path);
	} else {
		int f = openat(pfd, base_copy, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (f < 0 && errno != EEXIST)
			return shim_fail(err, errno, "create %s in rootfs", path);
		if (f >= 0)
			close(f);
	}
	/* EEXIST after ENOENT: a dangling symlink is in the way; this reports it */
	fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd < 0)
		return shim_fail(err, errno, "open %s in rootfs (after creating it)", path);
	return fd;
}

/* Mounts a fresh filesystem on path inside root. */
static int mount_new(int rootfd, const char *path, const char *fstype, unsigned long flags, const char *data,
                     struct shim_err *err)
{
	_cleanup_close_ int fd = open_in_root(rootfd, path, MK_DIR, err);
	if (fd < 0)
		return shim_wrap(err, "mount %s", path);
	if (mount_fd(fd, fstype, fstype, flags, data) < 0)
		return shim_fail(err, errno, "mount %s on %s", fstype, path);
	return 0;
}

/* The per-mount flags of an existing mount, to keep them across a bind remount
 * (MS_REMOUNT|MS_BIND replaces nosuid/noexec/... with what it is given). */
static unsigned long mount_flags_of(int fd)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (fstatvfs(fd, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* Remounts the mount now on top of path (re-resolved: the descriptor used to
 * mount still points at the covered directory, not the new mount). */
static int remount_at(int rootfd, const char *path, unsigned long add, struct shim_err *err)
{
	_cleanup_close_ int fd = open_in_root(rootfd, path, MK_NONE, err);
	if (fd < 0)
		return -1;
	if (mount_fd(fd, NULL, NULL, MS_REMOUNT | MS_BIND | mount_flags_of(fd) | add, NULL) < 0)
		return shim_fail(err, errno, "remount %s", path);
	return 0;
}

static int mount_bind(int rootfd, const char *src, const char *dst, bool readonly, struct shim_err *err)
{
	struct stat st;
	if (stat(src, &st) < 0)
		return shim_fail(err, errno, "mount %s: source %s", dst, src);
	_cleanup_close_ int fd = open_in_root(rootfd, dst, S_ISDIR(st.st_mode) ? MK_DIR : MK_FILE, err);
	if (fd < 0)
		return shim_wrap(err, "mount %s", dst);
	if (mount_fd(fd, src, NULL, MS_BIND | MS_REC, NULL) < 0)
		return shim_fail(err, errno, "mount %s: bind %s", dst, src);
	/* nodev on every volume: the container keeps CAP_MKNOD (docker's set) and a
	 * device node made in a volume must not open a host device */
	if (remount_at(rootfd, dst, MS_NODEV | (readonly ? MS_RDONLY : 0), err) < 0)
		return shim_wrap(err, "mount %s", dst);
	return 0;
}

/* /dev: a tmpfs with the few host devices a process expects, bound in (not
 * mknod'ed: a bind also works where mknod is refused, and keeps one inode). */
static int setup_dev(int rootfd, struct shim_err *err)
{
	static const char *const devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const links[][2] = {
	    {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
	    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
	};
	/* nodev on the tmpfs itself: nodes created in it (CAP_MKNOD) stay inert;
	 * the bound devices are separate mounts that keep the host's flags */
	if (mount_new(rootfd, "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_STRICTATIME,
	              "mode=755,size=65536k", err) < 0)
		return -1;
	_cleanup_close_ int devfd = open_in_root(rootfd, "/dev", MK_NONE, err);
	if (devfd < 0)
		return shim_wrap(err, "mount /dev");
	for (size_t i = 0; i < SHIM_ARRAY_LEN(devices); i++) {
		char host[32];
		snprintf(host, sizeof(host), "/dev/%s", devices[i]);
		_cleanup_close_ int f = openat(devfd, devices[i], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
		if (f < 0)
			return shim_fail(err, errno, "mount /dev: create %s", devices[i]);
		if (mount_fd(f, host, NULL, MS_BIND, NULL) < 0)
			return shim_fail(err, errno, "mount /dev: bind %s", host);
	}
	for (size_t i = 0; i < SHIM_ARRAY_LEN(links); i++)
		if (symlinkat(links[i][1], devfd, links[i][0]) < 0)
			return shim_fail(err, errno, "mount /dev: symlink %s", links[i][0]);
	/* newinstance: the container gets its own pty numbering, not the host's */
	if (mount_new(rootfd, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5",
	              err) < 0)
		return -1;
	if (mount_new(rootfd, "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k", err) < 0)
		return -1;
	/* mqueue shows the ipc namespace of the mounter: we are already in ours */
	return mount_new(rootfd, "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
}

static int mount_overlay(const struct shim_config *cfg, const char *target, struct shim_err *err)
{
	char opts[4096];
	if (overlay_options(cfg, opts, sizeof(opts)) >= 0) {
		if (mount("overlay", target, "overlay", MS_NODEV, opts) < 0)
			return shim_fail(err, errno, "rootfs: mount overlay on %s", target);
		return 0;
	}
	/* Too many layers for one page of options: add them one by one through
	 * the new mount API ("lowerdir+" exists since Linux 6.8). */
	_cleanup_close_ int fs = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		return shim_fail(err, errno, "rootfs: fsopen overlay (options exceed one page)");
	for (size_t i = 0; i < cfg->n_lowers; i++)
		if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", cfg->lowers[i], 0) < 0)
			return shim_fail(err, errno,
			                 "rootfs: overlay lowerdir+ %s (needs Linux 6.8 for this many layers)",
			                 cfg->lowers[i]);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", cfg->upper, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "workdir", cfg->work, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "index", "off", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return shim_fail(err, errno, "rootfs: configure overlay");
	_cleanup_close_ int mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV);
	if (mnt < 0)
		return shim_fail(err, errno, "rootfs: fsmount overlay");
	if (move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return shim_fail(err, errno, "rootfs: move overlay to %s", target);
	return 0;
}

/* Paths of /proc and /sys a container must not read or write: masked ones get
 * /dev/null (files) or an empty read-only tmpfs (directories), read-only ones
 * a read-only bind of themselves. Root in the container can otherwise write
 * /proc/sysrq-trigger or /proc/sys, which act on the whole host. */
static const char *const masked_paths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static int protect_kernel_paths(struct shim_err *err)
{
	/* After pivot_root: these are the container's fresh /proc and /sys, which
	 * the image cannot have planted symlinks in, so plain paths are safe. */
	for (size_t i = 0; i < SHIM_ARRAY_LEN(masked_paths); i++) {
		const char *p = masked_paths[i];
		struct stat st;
		if (stat(p, &st) < 0)
			continue; /* not on this kernel */
		int rc = S_ISDIR(st.st_mode)
		             ? mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
		             : mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (rc < 0)
			return shim_fail(err, errno, "mask %s", p);
	}
	for (size_t i = 0; i < SHIM_ARRAY_LEN(readonly_paths); i++) {
		const char *p = readonly_paths[i];
		if (access(p, F_OK) < 0)
			continue;
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			return shim_fail(err, errno, "make %s read-only", p);
	}
	return 0;
}

int rootfs_setup(const struct shim_config *cfg, const char *target, struct shim_err *err)
{
	/* First of all: nothing mounted from here on may propagate back to the
	 * host (the host's / is usually a shared mount), and host mount events
	 * must not reach the container. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return shim_fail(err, errno, "rootfs: make / private");

	if (cfg->n_lowers > 0) {
		if (mount_overlay(cfg, target, err) < 0)
			return -1;
	} else {
		/* pivot_root needs the new root to be a mount point */
		if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
			return shim_fail(err, errno, "rootfs: bind %s", target);
		_cleanup_close_ int t = open(target, O_PATH | O_CLOEXEC | O_DIRECTORY);
		if (t < 0 || mount_fd(t, NULL, NULL, MS_REMOUNT | MS_BIND | MS_NODEV | mount_flags_of(t), NULL) < 0)
			return shim_fail(err, errno, "rootfs: remount %s nodev", target);
	}
	/* opened after the mount, so it is the root of the new mount, not the
	 * directory underneath */
	_cleanup_close_ int rootfd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return shim_fail(err, errno, "rootfs: open %s", target);

	/* a new proc instance shows the pid namespace of the mounter: we are pid 1 of ours */
	if (mount_new(rootfd, "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
		return shim_wrap(err, "rootfs");
	/* sysfs lists the network devices of the mounter's netns: ours, joined already */
	if (mount_new(rootfd, "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
		return shim_wrap(err, "rootfs");
	if (setup_dev(rootfd, err) < 0)
		return shim_wrap(err, "rootfs");

	/* the user's mounts last, in the given order, so they may cover defaults
	 * (e.g. a bigger /dev/shm) and each other */
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const struct shim_mount *m = &cfg->mounts[i];
		if (m->kind == SHIM_MOUNT_BIND) {
			if (mount_bind(rootfd, m->src, m->dst, m->readonly, err) < 0)
				return -1;
		} else {
			char data[64] = "mode=1777";
			if (m->size > 0)
				snprintf(data, sizeof(data), "mode=1777,size=%lld", m->size);
			if (mount_new(rootfd, m->dst, "tmpfs", MS_NOSUID | MS_NODEV, data, err) < 0)
				return -1;
		}
	}

	/* the working directory exists before the root may turn read-only */
	if (cfg->cwd != NULL) {
		int fd = open_in_root(rootfd, cfg->cwd, MK_DIR, err);
		if (fd < 0)
			return shim_wrap(err, "cwd");
		close(fd);
	}

	/* pivot_root(".", "."): the new root becomes / and the old root ends up
	 * stacked on top of it, where a lazy unmount removes it; afterwards no host
	 * path is reachable from this mount namespace. */
	if (fchdir(rootfd) < 0)
		return shim_fail(err, errno, "rootfs: chdir to %s", target);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return shim_fail(err, errno, "rootfs: pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return shim_fail(err, errno, "rootfs: detach old root");
	if (chdir("/") < 0)
		return shim_fail(err, errno, "rootfs: chdir /");

	if (protect_kernel_paths(err) < 0)
		return shim_wrap(err, "rootfs");

	/* read-only last: every mount point above had to be created first */
	if (cfg->readonly_rootfs && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV, NULL) < 0)
		return shim_fail(err, errno, "rootfs: remount / read-only");

	if (cfg->cwd != NULL && chdir(cfg->cwd) < 0)
		return shim_fail(err, errno, "cwd: chdir %s", cfg->cwd);
	return 0;
}
