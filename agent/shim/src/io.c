/* The monitor's side of attach.h: the listening socket, its clients, and the
 * command's stdin. Everything is non-blocking; output a client does not take
 * is queued for it (bounded), stdin a command does not take is queued once and
 * stops reading clients until it drains (back-pressure instead of loss). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "run.h"

int attach_listen(struct run *r, struct shim_err *err)
{
	/* The state dir's path may exceed sun_path's 108 bytes: bind through the
	 * descriptor of the directory we hold (the lock) instead. */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/attach.sock", r->state_lock);
	r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->listen_fd < 0)
		return shim_fail(err, errno, "attach: socket");
	unlinkat(r->state_lock, "attach.sock", 0);
	/* 0600 from the start: only root may type into a container */
	mode_t old = umask(0177);
	int rc = bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		return shim_fail(err, errno, "attach: bind %s/attach.sock", r->cfg->state_dir);
	r->listen_made = true;
	if (listen(r->listen_fd, ATTACH_MAX_CLIENTS) < 0)
		return shim_fail(err, errno, "attach: listen");
	return 0;
}

static void drop(struct attach_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	sb_free(&c->out);
}

void attach_accept(struct run *r)
{
	for (;;) {
		int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct attach_client *slot = NULL;
		for (size_t i = 0; i < ATTACH_MAX_CLIENTS && slot == NULL; i++)
			if (r->clients[i].fd < 0)
				slot = &r->clients[i];
		if (slot == NULL) {
			close(fd);
			continue;
		}
		memset(slot, 0, sizeof(*slot));
		slot->fd = fd;
		slot->mode = ATTACH_HELLO;
		r->ever_attached = true;
	}
}

static void close_stdin(struct run *r)
{
	r->stdin_closing = true;
	if (r->stdin_pending.len == 0) {
		close_fd(&r->stdin_w);
		sb_free(&r->stdin_pending);
	}
}

void stdin_flush(struct run *r)
{
	while (r->stdin_w >= 0 && r->stdin_pending.len > 0) {
		ssize_t n = write(r->stdin_w, r->stdin_pending.buf, r->stdin_pending.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			/* the command closed its stdin: nothing more can go in */
			sb_reset(&r->stdin_pending);
			close_fd(&r->stdin_w);
			return;
		}
		memmove(r->stdin_pending.buf, r->stdin_pending.buf + n, r->stdin_pending.len - (size_t)n);
		r->stdin_pending.len -= (size_t)n;
	}
	if (r->stdin_closing && r->stdin_pending.len == 0)
		close_stdin(r);
}

void attach_on_client(struct run *r, struct attach_client *c, short revents)
{
	if (revents & POLLOUT) {
		while (c->out.len > 0) {
			ssize_t n = send(c->fd, c->out.buf, c->out.len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n < 0) {
				drop(c);
				return;
			}
			memmove(c->out.buf, c->out.buf + n, c->out.len - (size_t)n);
			c->out.len -= (size_t)n;
		}
	}
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->read_eof) {
		char buf[65536];
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		if (n <= 0) {
			c->read_eof = true;
			if (c->mode == ATTACH_STDIN && r->cfg->stdin_once && !r->cfg->tty && r->stdin_w >= 0)
				close_stdin(r);
			if (n < 0)
				drop(c);
			return;
		}
		const char *data = buf;
		size_t len = (size_t)n;
		if (c->mode == ATTACH_HELLO) {
			c->mode = buf[0] == 'i' ? ATTACH_STDIN : ATTACH_OUTPUT;
			data++;
			len--;
		}
		if (c->mode == ATTACH_STDIN && r->stdin_w >= 0 && !r->stdin_closing && len > 0) {
			sb_append(&r->stdin_pending, data, len);
			stdin_flush(r);
		}
		return;
	}
	/* read side done and the peer hung up entirely: nobody left to write to */
	if ((revents & (POLLHUP | POLLERR)) && c->read_eof)
		drop(c);
}

static void client_send(struct attach_client *c, const void *a, size_t alen, const void *b, size_t blen)
{
	if (c->out.len == 0) {
		/* the common case: straight into the socket, queue only the rest */
		struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			drop(c);
			return;
		}
		size_t done = n > 0 ? (size_t)n : 0;
		if (done >= alen + blen)
			return;
		if (done < alen) {
			sb_append(&c->out, (const char *)a + done, alen - done);
			done = alen;
		}
		sb_append(&c->out, (const char *)b + (done - alen), blen - (done - alen));
	} else {
		sb_append(&c->out, a, alen);
		sb_append(&c->out, b, blen);
	}
	/* a client that stopped reading must not make the monitor run out of memory */
	if (c->out.len > ATTACH_BACKLOG_MAX || c->out.oom)
		drop(c);
}

void attach_broadcast(struct run *r, int stream, const char *buf, size_t n)
{
	unsigned char hdr[8];
	attach_frame_header(hdr, stream, n);
	for (size_t i = 0; i < ATTACH_MAX_CLIENTS; i++) {
		struct attach_client *c = &r->clients[i];
		if (c->fd < 0)
			continue;
		if (r->cfg->tty)
			client_send(c, buf, n, "", 0);
		else
			client_send(c, hdr, sizeof(hdr), buf, n);
	}
}

void attach_close_all(struct run *r)
{
	for (size_t i = 0; i < ATTACH_MAX_CLIENTS; i++) {
		struct attach_client *c = &r->clients[i];
		if (c->fd < 0)
			continue;
		/* what is queued gets a bounded chance to go out */
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (c->fd >= 0 && c->out.len > 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
			if (ms >= DRAIN_MS)
				break;
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};
			if (poll(&p, 1, (int)(DRAIN_MS - ms)) <= 0)
				break;
			attach_on_client(r, c, POLLOUT);
		}
		/* unread input at close makes the peer's read fail with ECONNRESET,
		 * losing the output it has not read yet: take it first */
		char sink[4096];
		while (c->fd >= 0 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		drop(c);
	}
	close_fd(&r->listen_fd);
	if (r->listen_made)
		unlinkat(r->state_lock, "attach.sock", 0);
	r->listen_made = false;
}

bool attach_holding(struct run *r)
{
	if (!r->cfg->attach_wait || r->ever_attached)
		return false;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	long ms = (t.tv_sec - r->wait_from.tv_sec) * 1000 + (t.tv_nsec - r->wait_from.tv_nsec) / 1000000;
	return ms < ATTACH_WAIT_MS;
}
