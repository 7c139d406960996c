// `vite build --config apps/console/vite.config.ts` from the repository root writes apps/console/dist,
// which the API serves at `/`. `vite --config apps/console/vite.config.ts` serves it for development,
// proxying /api to a control plane on 127.0.0.1:8080.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const root = fileURLToPath(new URL(".", import.meta.url));
const lib = (name: string) => fileURLToPath(new URL(`../../libs/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  root,
  base: "/",
  plugins: [react()],
  // The few runtime values of our browser-safe packages come from their TypeScript sources (their
  // dist is CommonJS for Node); type-checking still reads their declarations.
  resolve: { alias: { "@flotilla/api-types": lib("api-types"), "@flotilla/sse": lib("sse") } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The API serves /assets/* as immutable: every file there must carry a content hash.
    assetsDir: "assets",
    sourcemap: true,
  },
  server: { host: "127.0.0.1", proxy: { "/api": "http://127.0.0.1:8080" } },
});
