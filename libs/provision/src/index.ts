export * from "./certs";
