import { describe, expect, it } from "vitest";
import { affectsTasks, InvalidError, normalizeServiceSpec, NotSupportedError, parseSecretFlag } from "../src";

const base = { name: "web", image: "busybox" };

describe("secret and config references", () => {
  it("fills docker's defaults: /run/secrets/NAME for secrets, /NAME for configs, root, 0444", () => {
    const spec = normalizeServiceSpec({ ...base, secrets: [{ source: "db_pass" }], configs: [{ source: "nginx.conf" }] });
    expect(spec.secrets).toEqual([{ source: "db_pass", target: "/run/secrets/db_pass", uid: "0", gid: "0", mode: 0o444 }]);
    expect(spec.configs).toEqual([{ source: "nginx.conf", target: "/nginx.conf", uid: "0", gid: "0", mode: 0o444 }]);
  });

  it("puts a relative secret target under /run/secrets and keeps an absolute one", () => {
    const spec = normalizeServiceSpec({
      ...base,
      secrets: [
        { source: "a", target: "pw", uid: "1000", gid: "100", mode: 0o400 },
        { source: "b", target: "/etc/b.key" },
      ],
      configs: [{ source: "c", target: "etc/c.conf" }],
    });
    expect(spec.secrets.map((s) => s.target)).toEqual(["/run/secrets/pw", "/etc/b.key"]);
    expect(spec.secrets[0]).toMatchObject({ uid: "1000", gid: "100", mode: 0o400 });
    expect(spec.configs[0].target).toBe("/etc/c.conf");
  });

  it("refuses bad references naming the field", () => {
    const cases: [unknown, string][] = [
      [{ secrets: [{ source: "-bad" }] }, "secrets[0].source"],
      [{ secrets: [{ source: "a", target: "../etc/passwd" }] }, "secrets[0].target"],
      [{ secrets: [{ source: "a", target: "/run/secrets/" }] }, "secrets[0].target"],
      [{ secrets: [{ source: "a", uid: "root" }] }, "secrets[0].uid"],
      [{ configs: [{ source: "a", mode: 0o1777 }] }, "configs[0].mode"],
      [{ secrets: [{ source: "a" }, { source: "b", target: "a" }] }, "secrets[1].target"],
      [{ secrets: [{ source: "a", target: "/x" }], configs: [{ source: "x" }] }, "configs[0].target"],
      [{ mounts: [{ type: "tmpfs", target: "/x" }], configs: [{ source: "x" }] }, "configs[0].target"],
      [{ secrets: "a" }, "secrets"],
    ];
    for (const [extra, field] of cases) {
      let err: unknown;
      try {
        normalizeServiceSpec({ ...base, ...(extra as object) });
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(extra)).toBeInstanceOf(InvalidError);
      expect((err as InvalidError).details.field, JSON.stringify(extra)).toBe(field);
    }
  });

  it("parses --secret and --config as docker does", () => {
    expect(parseSecretFlag("secret", "db_pass")).toEqual({ source: "db_pass" });
    expect(parseSecretFlag("secret", "src=db_pass,target=pw,uid=1000,gid=1000,mode=0400")).toEqual({
      source: "db_pass",
      target: "pw",
      uid: "1000",
      gid: "1000",
      mode: 0o400,
    });
    expect(parseSecretFlag("config", "source=app.conf,target=/etc/app.conf")).toEqual({ source: "app.conf", target: "/etc/app.conf" });
    expect(() => parseSecretFlag("secret", "target=x")).toThrow(/source is required/);
    expect(() => parseSecretFlag("secret", "source=a,mode=rw")).toThrow(/octal/);
    expect(() => parseSecretFlag("secret", "source=a,driver=vault")).toThrow(NotSupportedError);
  });

  it("replaces tasks when the secrets change", () => {
    const a = normalizeServiceSpec({ ...base, secrets: [{ source: "a" }] });
    const b = normalizeServiceSpec({ ...base, secrets: [{ source: "a", mode: 0o400 }] });
    expect(affectsTasks(a, b)).toBe(true);
    expect(affectsTasks(a, normalizeServiceSpec({ ...base, secrets: [{ source: "a" }] }))).toBe(false);
  });
});
