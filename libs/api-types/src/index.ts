// The REST API's request and response shapes, shared by ctl and the console. Types, and the few
// constants a client needs at run time (no imports, no I/O), so a client pays next to nothing.
export type * from "./errors";
export type * from "./machines";
export type * from "./nodes";
export type * from "./services";
export type * from "./networks";
export type * from "./tasks";
export { ACTIVE_TASK_STATES } from "./tasks";
export type * from "./system";
