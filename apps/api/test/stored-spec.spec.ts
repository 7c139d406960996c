import { normalizeServiceSpec, UnavailableError } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { parseStoredSpec } from "../src/services/stored-spec";

describe("stored spec columns", () => {
  const spec = normalizeServiceSpec({
    name: "web",
    image: "busybox",
    ports: [{ published: 8080, target: 80 }],
    placement: { maxReplicasPerNode: 2 },
  });

  it("read back as the spec core wrote", () => {
    expect(parseStoredSpec(JSON.parse(JSON.stringify(spec)), "service web")).toEqual(spec);
  });

  it("give ports written before publish modes existed the ingress mode", () => {
    const old = JSON.parse(JSON.stringify(spec));
    delete old.ports[0].mode;
    expect(parseStoredSpec(old, "service web").ports).toEqual([{ published: 8080, target: 80, protocol: "tcp", mode: "ingress" }]);
  });

  it("refuse a row that is not a spec, naming the service and the field", () => {
    const broken = { ...JSON.parse(JSON.stringify(spec)), restartPolicy: { condition: "sometimes" } };
    const err = (() => {
      try {
        parseStoredSpec(broken, "service 1234");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/^service 1234: the stored spec is not a valid service spec \(restartPolicy\.condition: /);
    expect(() => parseStoredSpec(null, "service x")).toThrow(/service x: the stored spec is not a valid service spec \(\(root\)/);
  });
});
