/* Interactive I/O of a container or exec: STATE_DIR/attach.sock, a unix stream
 * socket (0600) the agent connects to, once per attached client.
 *
 *   client -> shim   one mode byte, then raw bytes:
 *                      'i'  the client carries stdin: its bytes go to the command's
 *                           stdin; its EOF (shutdown of its write side) closes
 *                           stdin when --stdin-once is set and there is no tty
 *                      'o'  output only: anything it sends is discarded
 *   shim -> client   the output: raw bytes with --tty; otherwise Docker's
 *                    multiplexed frames (8-byte header: stream 1 or 2, three
 *                    zero bytes, big-endian length; then the bytes)
 *
 * The socket closes when the command has exited and its output is drained;
 * state.json says "exited" before that, so a client that sees EOF can read the
 * exit code. Resizing a tty and signals go through the control FIFO as lines:
 * "SIGNAL" (a number or name) or "w ROWS COLS". */
#ifndef FLOTILLA_SHIM_ATTACH_H
#define FLOTILLA_SHIM_ATTACH_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define ATTACH_MAX_CLIENTS 8
/* Output queued for a client that does not read; past this it is dropped. */
#define ATTACH_BACKLOG_MAX (4u << 20)
/* --attach-wait: the output is left in the kernel's buffers until the first
 * client connects (the agent, right after the start), at most this long. */
#define ATTACH_WAIT_MS 5000

enum attach_mode { ATTACH_HELLO, ATTACH_STDIN, ATTACH_OUTPUT };

struct attach_client {
	int fd; /* -1 = free slot */
	enum attach_mode mode;
	bool read_eof;     /* its write side is shut: stdin EOF, output still wanted */
	struct strbuf out; /* output not yet accepted by the socket */
};

/* One line of the control FIFO. */
struct control_cmd {
	enum { CONTROL_SIGNAL, CONTROL_RESIZE } kind;
	int signal;
	unsigned short rows, cols;
};

/* Pure helpers (unit tested). */
void attach_frame_header(unsigned char hdr[8], int stream, size_t len);
/* "15", "TERM", "w 24 80" -> cmd; -1 for anything else. */
int control_parse(const char *line, struct control_cmd *cmd);

#endif
