/**
 * Choosing one manifest out of a multi-platform index, as containerd's platform matcher does,
 * small. Pure: no I/O (hostPlatform reads only `process`).
 */
import { InvalidError } from "@flotilla/core";
import type { Descriptor } from "./media-types";
import { INDEX_TYPES, MANIFEST_TYPES } from "./media-types";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

// Node's process.arch → Go's GOARCH, the names images use.
const NODE_TO_GO: Record<string, string> = {
  x64: "amd64",
  ia32: "386",
  arm64: "arm64",
  arm: "arm",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
};
const ALIASES: Record<string, Platform> = {
  x86_64: { os: "", architecture: "amd64" },
  "x86-64": { os: "", architecture: "amd64" },
  aarch64: { os: "", architecture: "arm64" },
  armhf: { os: "", architecture: "arm", variant: "v7" },
  armel: { os: "", architecture: "arm", variant: "v6" },
};

/** The platform of this host, the default for pulls. */
export function hostPlatform(): Platform {
  const architecture = NODE_TO_GO[process.arch] ?? process.arch;
  if (architecture === "arm64") return { os: "linux", architecture, variant: "v8" };
  if (architecture === "arm") {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    return { os: "linux", architecture, variant: `v${typeof v === "string" || typeof v === "number" ? v : 7}` };
  }
  return { os: "linux", architecture };
}

/** Normalises spellings (`aarch64`, `x86_64`, `arm64` without variant → `v8`). */
export function normalizePlatform(p: Platform): Platform {
  const alias = ALIASES[p.architecture.toLowerCase()];
  const architecture = alias?.architecture ?? p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || alias?.variant;
  if (architecture === "arm64" && (variant === undefined || variant === "8")) variant = "v8";
  if (architecture === "arm" && variant !== undefined && /^\d+$/.test(variant)) variant = `v${variant}`;
  return { os: p.os.toLowerCase(), architecture, ...(variant ? { variant } : {}) };
}

/** `linux/arm64/v8`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** Parses `linux/amd64` or `linux/arm/v7`; InvalidError otherwise. */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === "")) {
    throw new InvalidError(`invalid platform: ${s} (want os/arch[/variant])`, { field: "platform" });
  }
  return normalizePlatform({ os: parts[0]!, architecture: parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) });
}

/**
 * How well `candidate` serves `want`: undefined when it cannot run there, higher is better.
 * ARM variants are backwards compatible (a v7 host runs v6 and v5 images), so an older variant
 * is accepted but ranked below the exact one; amd64 and others ignore variants.
 */
function score(candidate: Platform, want: Platform): number | undefined {
  if (candidate.os !== want.os || candidate.architecture !== want.architecture) return undefined;
  if (candidate.architecture !== "arm") {
    if (!want.variant || !candidate.variant) return candidate.variant ? 1 : 2;
    return candidate.variant === want.variant ? 3 : candidate.architecture === "arm64" ? undefined : 1;
  }
  const have = Number((candidate.variant ?? "v0").slice(1));
  const need = Number((want.variant ?? "v7").slice(1));
  return have > need ? undefined : 10 + have;
}

/**
 * Picks the manifest for `want` from an index's entries; undefined when none fits. Entries
 * without a platform, of unknown media types, or attestation manifests (platform unknown/unknown)
 * never match.
 */
export function pickManifest(manifests: readonly Descriptor[], want: Platform): Descriptor | undefined {
  const target = normalizePlatform(want);
  let best: Descriptor | undefined;
  let bestScore = -1;
  for (const d of manifests) {
    if (!d.platform || !(MANIFEST_TYPES.has(d.mediaType) || INDEX_TYPES.has(d.mediaType))) continue;
    const s = score(normalizePlatform(d.platform), target);
    // Strictly greater: among equals the index order (the publisher's preference) wins.
    if (s !== undefined && s > bestScore) {
      best = d;
      bestScore = s;
    }
  }
  return best;
}
