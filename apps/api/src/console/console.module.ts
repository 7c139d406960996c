import { Module } from "@nestjs/common";
import { ConsoleController } from "./console.controller";

/** The web console's static files (apps/console/dist), served by the HTTP API at `/`. */
@Module({ controllers: [ConsoleController] })
export class ConsoleModule {}
