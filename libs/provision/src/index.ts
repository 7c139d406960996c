export * from "./certs";
export * from "./client-certs";
export * from "./layout";
export * from "./provision";
