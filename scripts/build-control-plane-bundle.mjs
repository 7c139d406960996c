#!/usr/bin/env node
// Builds the control-plane bundle: everything `flotilla-api` needs on a host that has neither Node
// nor the repository, in one tarball, the way the agent bundle carries the agent:
//   api.js                  the control plane (apps/api/dist, as tsc emitted it with the decorator
//                           metadata Nest's DI reads) and its dependencies, bundled by esbuild
//   console/                the web console's build (apps/console/dist)
//   swagger-ui/             the OpenAPI UI's assets (/api/docs)
//   node, NODE_LICENSE      the pinned Node.js runtime (scripts/node-runtime.mjs)
//   flotilla-control-plane  a launcher: exec <its dir>/node api.js "$@" (api | worker | all), with
//                           FLOTILLA_CONSOLE_DIR pointing at console/ unless set
//   VERSION, RUNTIME        the API's package version and build time; the Node version
//
//   node scripts/build-control-plane-bundle.mjs [--out FILE]   (default apps/api/dist-bundle/flotilla-control-plane.tar.gz)
//
// Needs `npx tsc -b` and the console's build first (`npm run build` does both). Migrations are not
// in it: run `node prisma/migrate.mjs deploy` from a checkout against the primary, as before. The
// staging and packing shared with the agent bundle are in scripts/bundle-staging.mjs.
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { bundleForNode, outArgument, packBundle, repo, writeLauncher } from "./bundle-staging.mjs";

const out = outArgument("apps/api/dist-bundle/flotilla-control-plane.tar.gz");
const say = (m) => console.error(`build-control-plane-bundle: ${m}`);

const entry = join(repo, "apps/api/dist/main.js");
const consoleDir = join(repo, "apps/console/dist");
for (const [path, how] of [
  [entry, "npx tsc -b"],
  [join(consoleDir, "index.html"), "npx vite build --config apps/console/vite.config.ts"],
]) {
  if (!existsSync(path)) {
    say(`${path} is missing (${how}, or npm run build)`);
    process.exit(1);
  }
}
const { version } = JSON.parse(readFileSync(join(repo, "apps/api/package.json"), "utf8"));

// Optional integrations Nest and others probe for with require() inside try/catch: absent at run
// time, as they are in the repository's node_modules.
const OPTIONAL = [
  "@nestjs/microservices",
  "@nestjs/microservices/*",
  "@nestjs/websockets",
  "@nestjs/websockets/*",
  "@nestjs/platform-express",
  "@fastify/view",
  "class-transformer",
  "class-validator",
  // ssh2's optional native speed-ups; it falls back to JavaScript without them.
  "cpu-features",
  "*.node",
];

/** swagger-ui-dist finds its files next to its own module: in the bundle they sit in swagger-ui/. */
const swaggerAssets = {
  name: "swagger-ui-assets",
  setup(b) {
    b.onResolve({ filter: /^swagger-ui-dist\/absolute-path\.js$/ }, () => ({ path: "swagger-ui-path", namespace: "flotilla" }));
    b.onLoad({ filter: /.*/, namespace: "flotilla" }, () => ({
      contents: 'module.exports = () => require("path").join(__dirname, "swagger-ui");',
      loader: "js",
    }));
  },
};

await packBundle({
  tool: "build-control-plane-bundle",
  label: "control plane",
  version,
  out,
  tmpPrefix: "flotilla-cp-bundle-",
  async stage(work) {
    await bundleForNode(entry, join(work, "api.js"), { external: OPTIONAL, plugins: [swaggerAssets] });
    cpSync(consoleDir, join(work, "console"), { recursive: true });
    const swagger = join(repo, "node_modules/swagger-ui-dist");
    mkdirSync(join(work, "swagger-ui"));
    for (const f of [
      "swagger-ui.css",
      "swagger-ui-bundle.js",
      "swagger-ui-standalone-preset.js",
      "index.css",
      "favicon-16x16.png",
      "favicon-32x32.png",
      "oauth2-redirect.html",
      "oauth2-redirect.js",
      "LICENSE",
    ])
      copyFileSync(join(swagger, f), join(work, "swagger-ui", f));
    writeLauncher(work, "flotilla-control-plane", [
      "# Flotilla control-plane launcher (from the control-plane bundle): the bundled Node runs the API.",
      "# Usage: flotilla-control-plane api|worker|all; settings from the environment, as flotilla-api.",
      'here=$(dirname "$(readlink -f "$0")")',
      'FLOTILLA_CONSOLE_DIR="${FLOTILLA_CONSOLE_DIR:-$here/console}"',
      "export FLOTILLA_CONSOLE_DIR",
      'exec "$here/node" "$here/api.js" "$@"',
    ]);
    return ["api.js", "console", "swagger-ui", "node", "NODE_LICENSE", "flotilla-control-plane"];
  },
});
