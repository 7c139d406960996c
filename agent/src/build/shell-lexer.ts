/**
 * Variable expansion and word splitting as Docker applies them to Dockerfile arguments (not a
 * shell: no globbing, no command substitution). Pure.
 *
 *   $VAR ${VAR}            value, or "" when unset
 *   ${VAR:-word} ${VAR-word}   word when VAR is unset (or empty, with the colon)
 *   ${VAR:+word} ${VAR+word}   word when VAR is set (and non-empty, with the colon), else ""
 *   ${VAR:?msg}  ${VAR?msg}    error with msg when VAR is unset (or empty)
 *   'single'  literal;  "double"  expands, escape only before " $ and the escape character
 *   \x (or `x with `# escape=``) the character itself; quotes are removed from the result
 */

export class ExpansionError extends Error {}

export type Lookup = (name: string) => string | undefined;

/** A lookup over `KEY=value` lists; later entries win, as in an environment. */
export function envLookup(...lists: ReadonlyArray<readonly string[]>): Lookup {
  const map = new Map<string, string>();
  for (const list of lists) {
    for (const kv of list) {
      const eq = kv.indexOf("=");
      if (eq > 0) map.set(kv.slice(0, eq), kv.slice(eq + 1));
      else if (eq < 0) map.set(kv, "");
    }
  }
  return (name) => map.get(name);
}

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}
  peek(offset = 0): string | undefined {
    return this.text[this.pos + offset];
  }
  next(): string | undefined {
    return this.text[this.pos++];
  }
  get done(): boolean {
    return this.pos >= this.text.length;
  }
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const SPECIAL = /[0-9*#?$!@-]/;

class Lexer {
  /** Words produced so far (for processWords); the current word is `current`. */
  private words: string[] = [];
  private current = "";
  /** True once the current word has content or quotes (`""` is an empty word, not none). */
  private started = false;

  constructor(
    private readonly s: Scanner,
    private readonly lookup: Lookup,
    private readonly escape: string,
    private readonly split: boolean,
  ) {}

  run(stopAt?: string): string[] {
    while (!this.s.done) {
      const ch = this.s.peek()!;
      if (stopAt !== undefined && ch === stopAt) break;
      if (this.split && /\s/.test(ch)) {
        this.s.next();
        this.flush();
        continue;
      }
      this.s.next();
      if (ch === this.escape) {
        const nextCh = this.s.next();
        // A trailing escape stays as it is, as Docker's lexer does.
        this.append(nextCh ?? ch);
      } else if (ch === "'") {
        this.started = true;
        this.append(this.singleQuoted());
      } else if (ch === '"') {
        this.started = true;
        this.append(this.doubleQuoted());
      } else if (ch === "$") {
        this.append(this.dollar(), true);
      } else {
        this.append(ch);
      }
    }
    this.flush();
    return this.words;
  }

  private append(text: string, expansion = false): void {
    if (text === "" && expansion) return;
    this.current += text;
    this.started = true;
  }

  private flush(): void {
    if (this.started) this.words.push(this.current);
    this.current = "";
    this.started = false;
  }

  private singleQuoted(): string {
    let out = "";
    for (;;) {
      const ch = this.s.next();
      if (ch === undefined) throw new ExpansionError("unexpected end of statement while looking for matching single-quote");
      if (ch === "'") return out;
      out += ch;
    }
  }

  private doubleQuoted(): string {
    let out = "";
    for (;;) {
      const ch = this.s.next();
      if (ch === undefined) throw new ExpansionError("unexpected end of statement while looking for matching double-quote");
      if (ch === '"') return out;
      if (ch === this.escape) {
        const nextCh = this.s.peek();
        if (nextCh === '"' || nextCh === "$" || nextCh === this.escape) {
          out += this.s.next();
          continue;
        }
        out += ch;
        continue;
      }
      out += ch === "$" ? this.dollar() : ch;
    }
  }

  /** After a `$`: a name, `{…}`, or a lone `$`. */
  private dollar(): string {
    const ch = this.s.peek();
    if (ch === "{") {
      this.s.next();
      return this.braced();
    }
    if (ch !== undefined && NAME_START.test(ch)) {
      let name = "";
      while (this.s.peek() !== undefined && NAME_CHAR.test(this.s.peek()!)) name += this.s.next();
      return this.lookup(name) ?? "";
    }
    if (ch !== undefined && SPECIAL.test(ch)) {
      // $1, $@ …: no such parameters in a Dockerfile; they expand to nothing.
      this.s.next();
      return "";
    }
    return "$";
  }

  private braced(): string {
    let name = "";
    while (this.s.peek() !== undefined && NAME_CHAR.test(this.s.peek()!)) name += this.s.next();
    if (name === "") throw new ExpansionError(`bad substitution: \${${this.s.text.slice(this.s.pos, this.s.pos + 10)}`);
    const ch = this.s.next();
    if (ch === "}") return this.lookup(name) ?? "";
    if (ch === undefined) throw new ExpansionError("missing '}'");
    let colon = false;
    let op = ch;
    if (ch === ":") {
      colon = true;
      op = this.s.next() ?? "";
    }
    if (!["-", "+", "?"].includes(op)) throw new ExpansionError(`unsupported modifier (${colon ? ":" : ""}${op}) in substitution`);
    // The word is itself expanded (nested ${…} and quotes), up to the matching brace.
    const inner = new Lexer(this.s, this.lookup, this.escape, false).run("}");
    if (this.s.next() !== "}") throw new ExpansionError("missing '}'");
    const word = inner.join("");
    const value = this.lookup(name);
    const set = value !== undefined && (!colon || value !== "");
    if (op === "-") return set ? value! : word;
    if (op === "+") return set ? word : "";
    if (!set) throw new ExpansionError(`${name}: ${word || "is not allowed to be unset"}`);
    return value!;
  }
}

/** Expands one word (quotes removed, spaces kept): ENV values, WORKDIR, USER, LABEL values… */
export function processWord(text: string, lookup: Lookup, escape = "\\"): string {
  return new Lexer(new Scanner(text), lookup, escape, false).run().join("");
}

/** Expands and splits on unquoted white space: COPY/ADD sources, EXPOSE ports, VOLUME paths. */
export function processWords(text: string, lookup: Lookup, escape = "\\"): string[] {
  return new Lexer(new Scanner(text), lookup, escape, true).run();
}
