// The REST API's request and response shapes, shared by ctl and the console. Types only: this
// package has no runtime code, so a client pays nothing for importing it.
export type * from "./errors";
export type * from "./machines";
export type * from "./nodes";
export type * from "./services";
export type * from "./tasks";
export type * from "./system";
