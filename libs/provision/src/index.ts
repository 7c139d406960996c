export * from "./certs";
export * from "./client-certs";
export * from "./engine-options";
export * from "./host-os";
export * from "./layout";
export * from "./provision";
export * from "./service";
export * from "./bundle";
