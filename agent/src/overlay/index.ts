// Overlay networks, agent side: VXLAN segments across nodes from the control plane's table.
export { OverlayNetworks, type OverlayNetworksOptions } from "./overlay-networks";
export type { OverlayAttachment, OverlayRequest } from "./overlay-attachments";
export { OverlayKernel } from "./overlay-kernel";
export { checkNetworkTable, type CheckedNetworkTable } from "./overlay-table-check";
export { overlayAnswer } from "./overlay-dns";
export * from "./overlay-plan";
