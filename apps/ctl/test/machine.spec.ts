import { describe, expect, it } from "vitest";
import { renderEnv, renderFormat } from "../src/commands/machine";
import { parseDriverArgs } from "../src/commands/machine-driver-options";

const vars = {
  DOCKER_TLS_VERIFY: "1",
  DOCKER_HOST: "tcp://198.18.0.2:2376",
  DOCKER_CERT_PATH: "/root/.config/flotilla/machines/devdays",
  DOCKER_MACHINE_NAME: "devdays",
};

describe("ctl machine helpers", () => {
  it("renders env for bash as docker-machine does", () => {
    expect(renderEnv("devdays", vars, "bash", false)).toBe(
      [
        'export DOCKER_TLS_VERIFY="1"',
        'export DOCKER_HOST="tcp://198.18.0.2:2376"',
        'export DOCKER_CERT_PATH="/root/.config/flotilla/machines/devdays"',
        'export DOCKER_MACHINE_NAME="devdays"',
        "# Run this command to configure your shell: ",
        "# eval $(ctl machine env devdays)",
        "",
      ].join("\n"),
    );
  });

  it("renders fish, powershell, cmd and --unset", () => {
    expect(renderEnv("devdays", vars, "fish", false)).toContain('set -gx DOCKER_HOST "tcp://198.18.0.2:2376";\n');
    expect(renderEnv("devdays", vars, "fish", false)).toContain("# eval (ctl machine env --shell fish devdays)");
    expect(renderEnv("devdays", vars, "powershell", false)).toContain('$Env:DOCKER_HOST = "tcp://198.18.0.2:2376"');
    expect(renderEnv("devdays", vars, "cmd", false)).toContain("SET DOCKER_HOST=tcp://198.18.0.2:2376");
    const unset = renderEnv("", vars, "bash", true);
    expect(unset).toContain("unset DOCKER_HOST\n");
    expect(unset).toContain("# eval $(ctl machine env --unset)");
    expect(renderEnv("", vars, "powershell", true)).toContain("Remove-Item Env:\\DOCKER_HOST");
  });

  it("passes driver flags through, typed by the driver's description", () => {
    const specs = [
      { name: "virtualbox-no-share", type: "bool", help: "" },
      { name: "virtualbox-memory", type: "int", help: "" },
    ];
    expect(parseDriverArgs(["--virtualbox-memory", "2048", "--virtualbox-no-share", "dev"], specs)).toEqual({
      options: { "virtualbox-memory": "2048", "virtualbox-no-share": true },
      operands: ["dev"],
    });
    expect(
      parseDriverArgs(["--netns-cidr=198.18.0.1/16", "--engine-insecure-registry", "a:1", "--engine-insecure-registry", "b:2", "x"], [])
        .options,
    ).toEqual({
      "netns-cidr": "198.18.0.1/16",
      "engine-insecure-registry": "a:1,b:2",
    });
    expect(() => parseDriverArgs(["x", "--netns-cidr"], [])).toThrow("option --netns-cidr needs a value");
  });

  it("renders --format templates", () => {
    const m = {
      id: "1",
      name: "dev",
      driver: "netns",
      state: "READY",
      stateReason: null,
      ip: "198.18.0.2",
      url: "tcp://198.18.0.2:2376",
      sshUser: "root",
      sshPort: 22,
      agentVersion: "0.1.0",
      options: {},
      createdAt: "",
      updatedAt: "",
    };
    expect(renderFormat("{{.Name}} {{ .DriverName }} {{.State}} {{.URL}} {{.Active}}", m, true)).toBe(
      "dev netns READY tcp://198.18.0.2:2376 *",
    );
    expect(() => renderFormat("{{.Nope}}", m, false)).toThrow("unknown field .Nope");
  });
});
