// What a container's overlay requests become, decided before anything is plugged: each request
// names a network of the table in force and the address the control plane gave the task, which
// must be a task address of that network and not another container's. Pure.
import { DomainError, InvalidError, overlayMac, type NodeNetworkTable } from "@flotilla/core";
import { inSubnet, ipToInt, isIpv4, parseSubnet } from "../network/ipam";
import type { UserAttachment } from "../network/user-networks";
import { overlayVethName } from "./overlay-plan";
import type { OverlayAttachmentRecord, OverlayContainerRecord } from "./overlay-state";

/** What a container asks of an overlay network (from its create call's EndpointsConfig). */
export interface OverlayRequest {
  networkId: string;
  aliases: readonly string[];
  ipv4Address: string;
}

/** A container's interface on an overlay network, for inspect: shaped as one on a user network. */
export type OverlayAttachment = UserAttachment;

/** Where the container is plugged: the scope of our link names, its namespace, its first free interface index. */
export interface PlugTarget {
  scope: string;
  containerId: string;
  netns: string;
  firstIndex: number;
}

/**
 * The attachment records of `requests` (interfaces `eth<firstIndex>`…), or a DomainError
 * (not_found) for a network the table does not list and an InvalidError naming the field for an
 * address that is not the network's or is taken by another container.
 */
export function planAttachments(
  table: NodeNetworkTable | undefined,
  containers: readonly OverlayContainerRecord[],
  target: PlugTarget,
  requests: readonly OverlayRequest[],
): OverlayAttachmentRecord[] {
  return requests.map((r, i) => {
    const n = table?.networks.find((x) => x.id === r.networkId);
    if (!n)
      throw new DomainError(
        "not_found",
        `overlay network ${r.networkId} is not in this node's network table (version ${table?.version ?? "none"})`,
        {
          field: "NetworkingConfig.EndpointsConfig",
        },
      );
    const ip = r.ipv4Address;
    const subnet = parseSubnet(n.subnet);
    if (!isIpv4(ip) || !inSubnet(subnet, ipToInt(ip)) || ip === n.gateway)
      throw new InvalidError(
        `overlay network ${n.name}: IPAMConfig.IPv4Address ${JSON.stringify(ip)} is not a task address of ${n.subnet} (the control plane assigns it)`,
        { field: `EndpointsConfig.${n.name}.IPAMConfig.IPv4Address` },
      );
    const other = containers.find(
      (c) => c.containerId !== target.containerId && c.attachments.some((a) => a.networkId === n.id && a.ip === ip),
    );
    if (other)
      throw new InvalidError(`overlay network ${n.name}: address ${ip} is already used by container ${other.containerId.slice(0, 12)}`, {
        field: `EndpointsConfig.${n.name}.IPAMConfig.IPv4Address`,
      });
    return {
      networkId: n.id,
      networkName: n.name,
      ip,
      prefixLen: subnet.prefixLen,
      mac: overlayMac(ip),
      aliases: [...r.aliases],
      ifname: `eth${target.firstIndex + i}`,
      veth: overlayVethName(target.scope, n.id, target.containerId),
      netns: target.netns,
    };
  });
}

/** The record as inspect shows it (an overlay interface has no gateway of its own). */
export function toAttachment(a: OverlayAttachmentRecord): OverlayAttachment {
  return {
    networkId: a.networkId,
    networkName: a.networkName,
    ipAddress: a.ip,
    prefixLen: a.prefixLen,
    gateway: "",
    macAddress: a.mac,
    aliases: [...a.aliases],
  };
}
