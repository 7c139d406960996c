import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from "@nestjs/common";
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiQuery, ApiTags } from "@nestjs/swagger";
import { z } from "zod";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import type { MachineView, OperationAccepted } from "@flotilla/api-types";
import { MachinesService } from "./machines.service";

const CreateMachine = z.object({
  name: z.string().min(1),
  driver: z.string().min(1),
  options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
});
const Regenerate = z
  .object({ force: z.boolean().default(true), clientCerts: z.boolean().default(false) })
  .default({ force: true, clientCerts: false });

const NAME = { name: "name", description: "machine name" };

@ApiTags("machines")
@ApiBearerAuth()
@Controller("api/v1/machines")
export class MachinesController {
  constructor(private readonly machines: MachinesService) {}

  @Get("drivers")
  @ApiOperation({ summary: "Registered drivers with their self-described options (and the engine options)" })
  drivers() {
    return this.machines.drivers();
  }

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: "Create a machine: stored as CREATING, then the provision worker creates and provisions it" })
  @ApiBody({
    schema: {
      type: "object",
      required: ["name", "driver"],
      properties: {
        name: { type: "string", example: "devdays" },
        driver: { type: "string", example: "netns" },
        options: { type: "object", example: { "netns-cidr": "198.18.0.1/16", "engine-insecure-registry": "198.18.0.1:5000" } },
      },
    },
  })
  create(@Body(new ZodValidationPipe(CreateMachine)) body: z.infer<typeof CreateMachine>): Promise<OperationAccepted> {
    return this.machines.create(body);
  }

  @Get()
  @ApiOperation({ summary: "List machines" })
  list(): Promise<MachineView[]> {
    return this.machines.list();
  }

  @Get(":name")
  @ApiParam(NAME)
  @ApiOperation({ summary: "Inspect a machine" })
  get(@Param("name") name: string): Promise<MachineView> {
    return this.machines.get(name);
  }

  @Delete(":name")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiQuery({ name: "force", required: false, description: "remove the record even if the driver fails" })
  @ApiOperation({ summary: "Remove a machine (the driver deletes the host; the row goes with a `removed` event)" })
  remove(@Param("name") name: string, @Query("force") force?: string): Promise<OperationAccepted> {
    return this.machines.operate(name, "rm", { force: force === "true" || force === "1" });
  }

  @Post(":name/start")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiOperation({ summary: "Start a stopped machine and its agent (re-issues the certificate when the IP changed)" })
  start(@Param("name") name: string): Promise<OperationAccepted> {
    return this.machines.operate(name, "start");
  }

  @Post(":name/stop")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiOperation({ summary: "Stop a machine gracefully" })
  stop(@Param("name") name: string): Promise<OperationAccepted> {
    return this.machines.operate(name, "stop");
  }

  @Post(":name/restart")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiOperation({ summary: "Restart a machine and its agent" })
  restart(@Param("name") name: string): Promise<OperationAccepted> {
    return this.machines.operate(name, "restart");
  }

  @Post(":name/kill")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiOperation({ summary: "Power a machine off hard" })
  kill(@Param("name") name: string): Promise<OperationAccepted> {
    return this.machines.operate(name, "kill");
  }

  @Post(":name/provision")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiOperation({ summary: "Provision the machine again (agent, certificates, service)" })
  provision(@Param("name") name: string): Promise<OperationAccepted> {
    return this.machines.operate(name, "provision");
  }

  @Post(":name/regenerate-certs")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiBody({
    required: false,
    schema: {
      type: "object",
      properties: {
        force: { type: "boolean", default: true },
        clientCerts: {
          type: "boolean",
          default: false,
          description: "also a new client certificate for the machine; the old one is refused at once",
        },
      },
    },
  })
  @ApiOperation({
    summary:
      "Re-issue the agent's server certificate and restart it (force=false: only when the IP changed or it expires soon); clientCerts: rotate the machine's client certificate",
  })
  regenerateCerts(
    @Param("name") name: string,
    @Body(new ZodValidationPipe(Regenerate)) body: z.infer<typeof Regenerate>,
  ): Promise<OperationAccepted> {
    return this.machines.operate(name, "regenerate-certs", { force: body.force, clientCerts: body.clientCerts });
  }

  @Post(":name/upgrade")
  @HttpCode(202)
  @ApiParam(NAME)
  @ApiOperation({ summary: "Upload the current agent bundle and restart the agent" })
  upgrade(@Param("name") name: string): Promise<OperationAccepted> {
    return this.machines.operate(name, "upgrade");
  }

  @Get(":name/env")
  @ApiParam(NAME)
  @ApiOperation({ summary: "DOCKER_* variables pointing the docker CLI at the machine (ctl renders them per shell)" })
  env(@Param("name") name: string) {
    return this.machines.env(name);
  }

  @Get(":name/ip")
  @ApiParam(NAME)
  @ApiOperation({ summary: "The machine's IP address" })
  ip(@Param("name") name: string) {
    return this.machines.ip(name);
  }

  @Get(":name/url")
  @ApiParam(NAME)
  @ApiOperation({ summary: "The agent's URL (tcp://IP:2376)" })
  url(@Param("name") name: string) {
    return this.machines.url(name);
  }

  @Get(":name/status")
  @ApiParam(NAME)
  @ApiOperation({ summary: "The driver's live state (Running, Stopped, Unreachable, NotFound, ...)" })
  status(@Param("name") name: string) {
    return this.machines.status(name);
  }

  @Get(":name/config")
  @ApiParam(NAME)
  @ApiOperation({ summary: "docker CLI flags for the machine (--tlsverify ... -H=tcp://IP:2376)" })
  config(@Param("name") name: string) {
    return this.machines.config(name);
  }

  @Get(":name/ssh")
  @ApiParam(NAME)
  @ApiOperation({ summary: "SSH endpoint and key path of the machine (for `ctl machine ssh` on the control plane's host)" })
  ssh(@Param("name") name: string) {
    return this.machines.ssh(name);
  }
}
