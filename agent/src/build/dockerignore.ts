/**
 * `.dockerignore` as Docker reads it: one pattern a line, `#` comments, `!` exceptions, the last
 * matching pattern decides, paths cleaned and relative to the context root, Go's filepath.Match
 * syntax (`*`, `?`, `[a-z]`, `\` escapes) plus `**` for any number of directories. A pattern
 * that matches a directory excludes everything below it. Pure.
 */

export interface IgnorePattern {
  exclusion: boolean;
  /** Cleaned pattern, `/`-separated, without leading `/` or `./`. */
  pattern: string;
  regex: RegExp;
}

/** Lexical clean of a slash path, as Go's path.Clean, relative ("" for the root). */
export function cleanPath(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else out.push("..");
      continue;
    }
    out.push(part);
  }
  return out.join("/");
}

function patternRegex(pattern: string): RegExp {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*") {
      if (pattern[i + 1] === "*") {
        i++;
        // `**/` matches zero or more directories; a bare `**` anything at all.
        if (pattern[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else re += ".*";
      } else re += "[^/]*";
    } else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) throw new Error(`syntax error in pattern ${pattern}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("^")) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else if (ch === "\\" && i + 1 < pattern.length) {
      re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`${re}$`);
}

/** Parses the file's text. Invalid patterns throw (Docker refuses the build too). */
export function parseDockerignore(text: string): IgnorePattern[] {
  const out: IgnorePattern[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    let exclusion = false;
    if (line.startsWith("!")) {
      exclusion = true;
      line = line.slice(1).trim();
    }
    const pattern = cleanPath(line);
    if (pattern === "") continue;
    out.push({ exclusion, pattern, regex: patternRegex(pattern) });
  }
  return out;
}

/**
 * Whether `path` (relative, `/`-separated) is excluded. A pattern matching one of its parent
 * directories excludes it too, unless a later `!` pattern brings it back.
 */
export function isIgnored(path: string, patterns: readonly IgnorePattern[]): boolean {
  const clean = cleanPath(path);
  if (clean === "" || patterns.length === 0) return false;
  const parts = clean.split("/");
  let ignored = false;
  for (const p of patterns) {
    let match = p.regex.test(clean);
    // A match on a parent directory counts: `dir` excludes `dir/file`.
    for (let i = 1; !match && i < parts.length; i++) match = p.regex.test(parts.slice(0, i).join("/"));
    if (match) ignored = !p.exclusion;
  }
  return ignored;
}
