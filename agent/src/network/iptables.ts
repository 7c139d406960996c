/**
 * The iptables command line, on either backend. Debian 12 ships `iptables` as iptables-nft
 * (nf_tables underneath); older hosts use iptables-legacy (x_tables). The rule syntax is the
 * same; what differs is which kernel tables the rules land in, so the backend we used is
 * recorded and reused: rules added through one are invisible to (and not removable by) the
 * other. Every change goes through `iptables-restore --noflush`, one atomic transaction per table.
 */
import * as fs from "node:fs/promises";
import { run, NetworkCommandError } from "./exec";
import { parseListing, restoreScript, type Table, type TableListing } from "./nat-rules";

/** nft: iptables-nft over nf_tables; legacy: iptables-legacy over x_tables. */
export type IptablesBackend = "nft" | "legacy";

/** One iptables flavour: its command, its restore command and what detection noticed. */
export class Iptables {
  private constructor(
    readonly backend: IptablesBackend,
    /** `iptables`, `iptables-nft` or `iptables-legacy`. */
    readonly command: string,
    /** Things worth a log line (mixed backends), found while detecting. */
    readonly warnings: readonly string[],
  ) {}

  /**
   * Finds the iptables to use. `preferred` (the backend recorded in our state, or the agent's
   * option) wins when its `iptables-<backend>` command exists; otherwise `iptables` decides by
   * what `iptables -V` says ("(nf_tables)" or "(legacy)").
   */
  static async detect(preferred?: IptablesBackend): Promise<Iptables> {
    const warnings: string[] = [];
    const plain = await versionOf("iptables");
    let backend: IptablesBackend | undefined = plain;
    let command = "iptables";
    if (preferred && preferred !== plain) {
      if ((await versionOf(`iptables-${preferred}`)) === preferred) {
        backend = preferred;
        command = `iptables-${preferred}`;
      } else {
        warnings.push(`iptables: ${preferred} backend requested but iptables-${preferred} is not available; using ${plain ?? "none"}`);
      }
    }
    if (!backend) {
      for (const b of ["nft", "legacy"] as const) {
        if ((await versionOf(`iptables-${b}`)) === b) {
          backend = b;
          command = `iptables-${b}`;
          break;
        }
      }
    }
    if (!backend) throw new NetworkCommandError("iptables", "iptables -V", "ENOENT", "no iptables, iptables-nft or iptables-legacy found");
    if (backend === "nft" && (await legacyTablesLoaded())) {
      // Both sets of tables are evaluated by the kernel: an x_tables DROP (an old Docker, a
      // firewall script) still drops what our nf_tables rules accept.
      warnings.push("iptables: legacy (x_tables) tables are also loaded; their rules apply too and are not ours to change");
    }
    return new Iptables(backend, command, warnings);
  }

  /** The table as `iptables -S` prints it. */
  async list(table: Table): Promise<TableListing> {
    return parseListing(await run(`iptables ${table}`, this.command, ["-w", "-t", table, "-S"]));
  }

  /**
   * Applies `lines` (`:CHAIN`, `-A`, `-I`, `-D`, `-F`, `-X`) to one table in one transaction:
   * all or nothing. A failure names the offending line, which iptables-restore only numbers.
   */
  async apply(step: string, table: Table, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const script = restoreScript(table, lines);
    try {
      await run(step, `${this.command}-restore`, ["-w", "--noflush"], { input: script });
    } catch (e) {
      if (e instanceof NetworkCommandError) {
        const n = /line (\d+) failed/.exec(e.stderr);
        const line = n ? script.split("\n")[Number(n[1]) - 1] : undefined;
        if (line) throw new NetworkCommandError(step, `${e.command} <<< ${JSON.stringify(line)}`, e.exitCode, e.stderr);
      }
      throw e;
    }
  }
}

async function versionOf(command: string): Promise<IptablesBackend | undefined> {
  try {
    const out = await run("iptables", command, ["-V"]);
    if (out.includes("nf_tables")) return "nft";
    if (out.includes("legacy")) return "legacy";
    // iptables before 1.8 had no backend marker and was always legacy.
    return /^iptables v1\.[0-7]\./.test(out.trim()) ? "legacy" : undefined;
  } catch {
    return undefined;
  }
}

/** x_tables tables in use, read from /proc rather than by running iptables-legacy, which loads them. */
async function legacyTablesLoaded(): Promise<boolean> {
  try {
    const names = await fs.readFile("/proc/net/ip_tables_names", "utf8");
    return /\b(nat|filter)\b/.test(names);
  } catch {
    return false;
  }
}
