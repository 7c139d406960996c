/**
 * Parsing `WWW-Authenticate` challenges (RFC 7235) as registries send them:
 * `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:x:pull"`.
 * Pure: no I/O.
 */

export interface AuthChallenge {
  /** Lowercased: `bearer`, `basic`. */
  scheme: string;
  /** Parameter names lowercased, values unquoted. */
  params: Record<string, string>;
}

/**
 * Parses every challenge in a header value. Tolerant of the forms seen in the wild: quoted or
 * bare values, backslash escapes, extra spaces, several challenges separated by commas.
 */
export function parseAuthChallenges(header: string | string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(", ") : header;
  const out: AuthChallenge[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === ",")) i++;
  };
  const token = () => {
    const start = i;
    while (i < text.length && !' \t,="'.includes(text[i]!)) i++;
    return text.slice(start, i);
  };
  while (i < text.length) {
    skipSpace();
    const scheme = token();
    if (!scheme) break;
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    for (;;) {
      skipSpace();
      const save = i;
      const name = token();
      while (text[i] === " ") i++;
      if (!name || text[i] !== "=") {
        // Not `name=`: the start of the next challenge (or a token68, which registries don't use).
        i = save;
        break;
      }
      i++;
      while (text[i] === " ") i++;
      let value = "";
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === "\\" && i + 1 < text.length) i++;
          value += text[i++];
        }
        i++;
      } else {
        value = token();
      }
      challenge.params[name.toLowerCase()] = value;
    }
  }
  return out;
}
