// `npm ci` rejects a lockfile that lacks entries for other platforms' optional packages, and npm
// leaves them out when the registry mirror here does not carry them (npm/cli#9846). This adds
// placeholder entries restricted by os/cpu, so npm never tries to fetch them on this platform.
// Run after any dependency change: npm run lock:fix
import { readFileSync, writeFileSync } from "node:fs";

const OSES = ["darwin", "win32", "linux", "freebsd", "openbsd", "netbsd", "android", "sunos", "aix", "openharmony"];
const CPUS = {
  arm64: "arm64",
  aarch64: "arm64",
  x64: "x64",
  ia32: "ia32",
  arm: "arm",
  gnueabihf: "arm",
  ppc64: "ppc64",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  wasm32: "wasm32",
};

const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
const packages = lock.packages;
let added = 0;
for (const [where, meta] of Object.entries(packages)) {
  for (const [name, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const nested = `${where ? `${where}/` : ""}node_modules/${name}`;
    if (packages[nested] || packages[`node_modules/${name}`]) continue;
    const words = name.split(/[/-]/);
    const os = OSES.find((o) => words.includes(o));
    if (!os) continue; // not platform-specific: a genuinely missing package, let npm say so
    const cpu = words.map((w) => CPUS[w]).find(Boolean);
    packages[`node_modules/${name}`] = {
      version: String(range).replace(/^[\^~=]/, ""),
      ...(meta.dev ? { dev: true } : {}),
      optional: true,
      os: [os],
      ...(cpu ? { cpu: [cpu] } : {}),
    };
    added++;
  }
}
writeFileSync("package-lock.json", JSON.stringify(lock, null, 2) + "\n");
console.log(`lock: added ${added} placeholder entries`);
