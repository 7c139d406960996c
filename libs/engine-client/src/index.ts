// Client for the agents' Engine API (a Docker Engine API subset) over HTTP(S) with mTLS or a unix socket.
export * from "./types";
export * from "./errors";
export * from "./demux";
export * from "./engine-client";
