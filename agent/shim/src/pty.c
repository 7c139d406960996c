/* See pty.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "proto.h"
#include "pty.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

static int send_fd(int sock, int fd, struct shim_err *err)
{
	struct shim_msg m = {.type = MSG_PTY};
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		return shim_fail(err, errno, "tty: send the pty master to the monitor");
	return 0;
}

int pty_open_in_container(int sock, bool console, bool chown_to_uid, uid_t uid, struct shim_err *err)
{
	/* /dev/ptmx is the link to pts/ptmx of the container's devpts (newinstance) */
	_cleanup_close_ int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return shim_fail(err, errno, "tty: open /dev/ptmx");
	int unlock = 0, n = -1;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
		return shim_fail(err, errno, "tty: unlock the pty");
	/* TIOCGPTPEER opens the slave of this very master, with no path lookup a
	 * process in the container could race */
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return shim_fail(err, errno, "tty: open the pty slave");
	if (chown_to_uid && fchown(slave, uid, (gid_t)-1) < 0) {
		shim_fail(err, errno, "tty: chown the pty slave");
		close(slave);
		return -1;
	}
	if (console) {
		char src[32];
		snprintf(src, sizeof(src), "/dev/pts/%d", n);
		int f = open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (f >= 0)
			close(f);
		if (f < 0 || mount(src, "/dev/console", NULL, MS_BIND, NULL) < 0) {
			shim_fail(err, errno, "tty: bind %s on /dev/console", src);
			close(slave);
			return -1;
		}
	}
	if (send_fd(sock, master, err) < 0) {
		close(slave);
		return -1;
	}
	return slave;
}

ssize_t recv_msg_fd(int sock, void *buf, size_t len, int *fd, bool block)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	*fd = -1;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
	if (n <= 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return n;
}

int pty_make_controlling(struct shim_err *err)
{
	if (ioctl(0, TIOCSCTTY, 0) < 0)
		return shim_fail(err, errno, "tty: set the controlling terminal");
	return 0;
}

int pty_resize(int master, unsigned short rows, unsigned short cols)
{
	struct winsize ws = {.ws_row = rows, .ws_col = cols};
	return ioctl(master, TIOCSWINSZ, &ws);
}
