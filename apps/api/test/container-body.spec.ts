import { describe, expect, it } from "vitest";
import { normalizeServiceSpec } from "@flotilla/core";
import { containerBody, ingressEndpoints } from "../src/dispatch/dispatch.service";

describe("a task's container", () => {
  const spec = normalizeServiceSpec({
    name: "web",
    image: "busybox",
    ports: [
      { published: 8080, target: 80 },
      { published: 9100, target: 9100, mode: "host" },
      { published: 53, target: 53, protocol: "udp", mode: "host" },
    ],
  });

  it("publishes ingress ports on a dynamic host port and host ports on themselves", () => {
    const body = containerBody({ id: "s1" }, spec, { id: "t1", slot: 2 });
    expect(body.HostConfig?.PortBindings).toEqual({
      "80/tcp": [{ HostPort: "" }],
      "9100/tcp": [{ HostPort: "9100" }],
      "53/udp": [{ HostPort: "53" }],
    });
    expect(body.ExposedPorts).toEqual({ "80/tcp": {}, "9100/tcp": {}, "53/udp": {} });
    expect(body.Labels).toMatchObject({ "flotilla.service.id": "s1", "flotilla.task.id": "t1", "flotilla.slot": "2" });
  });

  it("attaches the container to its overlay networks by name, with the network's id, its address and its DNS names", () => {
    const body = containerBody({ id: "s1" }, spec, { id: "t1", slot: 1 }, [
      { networkId: "n-front", network: "front", ip: "10.0.0.3", aliases: ["web", "www"] },
      { networkId: "n-back", network: "back", ip: "10.0.1.7", aliases: ["web"] },
    ]);
    expect(body.NetworkingConfig).toEqual({
      EndpointsConfig: {
        front: { NetworkID: "n-front", IPAMConfig: { IPv4Address: "10.0.0.3" }, Aliases: ["web", "www"] },
        back: { NetworkID: "n-back", IPAMConfig: { IPv4Address: "10.0.1.7" }, Aliases: ["web"] },
      },
    });
    // The primary network stays the node's default bridge: no NetworkMode is set.
    expect(body.HostConfig).not.toHaveProperty("NetworkMode");
    expect(containerBody({ id: "s1" }, spec, { id: "t1", slot: 1 })).not.toHaveProperty("NetworkingConfig");
  });

  it("reads back where the ingress ports answer, ignoring host ports and unbound ones", () => {
    const ports = {
      "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "32771" }],
      "9100/tcp": [{ HostIp: "0.0.0.0", HostPort: "9100" }],
      "53/udp": null,
    };
    expect(ingressEndpoints(spec, ports)).toEqual([{ target: 80, protocol: "tcp", hostPort: 32771 }]);
    expect(ingressEndpoints(spec, { "80/tcp": null })).toEqual([]);
    expect(ingressEndpoints(spec, undefined)).toEqual([]);
  });

  it("mounts the spec's volumes, binds and tmpfs as Engine API Mounts, and none when there are none", () => {
    const withMounts = normalizeServiceSpec({
      name: "db",
      image: "busybox",
      mounts: [
        { type: "volume", source: "pgdata", target: "/data" },
        { type: "bind", source: "/srv/conf", target: "/conf", readOnly: true },
        { type: "tmpfs", target: "/cache", tmpfsSizeBytes: 1 << 20 },
      ],
    });
    expect(containerBody({ id: "s1" }, withMounts, { id: "t1", slot: 1 }).HostConfig?.Mounts).toEqual([
      { Type: "volume", Source: "pgdata", Target: "/data" },
      { Type: "bind", Source: "/srv/conf", Target: "/conf", ReadOnly: true },
      { Type: "tmpfs", Target: "/cache", TmpfsOptions: { SizeBytes: 1 << 20 } },
    ]);
    expect(containerBody({ id: "s1" }, spec, { id: "t1", slot: 1 }).HostConfig).not.toHaveProperty("Mounts");
  });

  it("sets the host name, user, working directory and container labels, which win over service labels", () => {
    const s = normalizeServiceSpec({
      name: "web",
      image: "busybox",
      labels: { tier: "web", both: "service" },
      containerLabels: { both: "container" },
      hostname: "web-host",
      user: "1000:1000",
      workdir: "/app",
    });
    const body = containerBody({ id: "s1" }, s, { id: "t1", slot: 1 });
    expect(body).toMatchObject({ Hostname: "web-host", User: "1000:1000", WorkingDir: "/app" });
    expect(body.Labels).toMatchObject({ tier: "web", both: "container" });
    const plain = containerBody({ id: "s1" }, spec, { id: "t1", slot: 1 });
    for (const k of ["Hostname", "User", "WorkingDir"]) expect(plain).not.toHaveProperty(k);
  });

  it("passes the spec's health check in nanoseconds, only the fields set, and none for the image's", () => {
    const withCheck = normalizeServiceSpec({
      name: "web",
      image: "busybox",
      healthcheck: { test: ["CMD-SHELL", "wget -q -O- localhost"], intervalMs: 2000, retries: 5 },
    });
    expect(containerBody({ id: "s1" }, withCheck, { id: "t1", slot: 1 }).Healthcheck).toEqual({
      Test: ["CMD-SHELL", "wget -q -O- localhost"],
      Interval: 2_000_000_000,
      Retries: 5,
    });
    const disabled = normalizeServiceSpec({ name: "web", image: "busybox", healthcheck: { test: ["NONE"] } });
    expect(containerBody({ id: "s1" }, disabled, { id: "t1", slot: 1 }).Healthcheck).toEqual({ Test: ["NONE"] });
    expect(containerBody({ id: "s1" }, spec, { id: "t1", slot: 1 }).Healthcheck).toBeUndefined();
  });
});
