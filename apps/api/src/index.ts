export { loadConfig, type AppConfig } from "./config/config";
export { start } from "./bootstrap";
