// Connections waiting to be accepted, for the API's listeners (the kernel caps it at
// net.core.somaxconn). Node's default, 511, overflowed 4,053 times in a 1,000-node bench run with
// the agents' long polls: each overflow drops a SYN, and that connection waits out TCP's retry
// (1 s, then 3 s, 7 s...), which is how beats answered in 150 ms took 1-3 s as agents saw them.
export const LISTEN_BACKLOG = 4096;
