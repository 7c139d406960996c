// The pure domain of Flotilla: decisions, no I/O. Everything that touches the world lives elsewhere.
export * from "./errors";
