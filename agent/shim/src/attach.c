/* See attach.h: the pure parts (frames, control lines). The socket itself is
 * served by the monitor's loop in events.c / io.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"
#include "config.h"

void attach_frame_header(unsigned char hdr[8], int stream, size_t len)
{
	memset(hdr, 0, 8);
	hdr[0] = (unsigned char)stream;
	hdr[4] = (unsigned char)(len >> 24);
	hdr[5] = (unsigned char)(len >> 16);
	hdr[6] = (unsigned char)(len >> 8);
	hdr[7] = (unsigned char)len;
}

int control_parse(const char *line, struct control_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	if (line[0] == 'w' && line[1] == ' ') {
		char extra;
		unsigned rows, cols;
		if (sscanf(line + 2, "%u %u %c", &rows, &cols, &extra) != 2 || rows > 65535 || cols > 65535)
			return -1;
		/* sscanf's %u accepts a sign: insist on digits and one space */
		for (const char *p = line + 2; *p; p++)
			if (!(*p >= '0' && *p <= '9') && *p != ' ')
				return -1;
		cmd->kind = CONTROL_RESIZE;
		cmd->rows = (unsigned short)rows;
		cmd->cols = (unsigned short)cols;
		return 0;
	}
	cmd->kind = CONTROL_SIGNAL;
	return parse_signal(line, &cmd->signal);
}
