// Overlay networks, agent side: VXLAN segments across nodes from the control plane's table.
export { OverlayNetworks, type OverlayAttachment, type OverlayNetworksOptions, type OverlayRequest } from "./overlay-networks";
export { OverlayKernel } from "./overlay-kernel";
export { checkNetworkTable, type CheckedNetworkTable } from "./overlay-table-check";
export { overlayAnswer } from "./overlay-dns";
export * from "./overlay-plan";
