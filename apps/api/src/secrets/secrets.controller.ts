// /api/v1/secrets and /api/v1/configs: the same calls on two kinds of value. A secret is shown
// without its value; a config with it (base64). The value travels base64 in JSON.
import { Body, Controller, Delete, Get, HttpCode, Param, Post } from "@nestjs/common";
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiTags } from "@nestjs/swagger";
import { InvalidError, MAX_SECRET_BYTES, type SecretKind } from "@flotilla/core";
import { z } from "zod";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { SecretsService, type SecretView } from "./secrets.service";

const CreateBody = z.object({ name: z.string(), data: z.string(), labels: z.record(z.string(), z.string()).optional() }).strict();
type CreateBody = z.infer<typeof CreateBody>;

const BODY_SCHEMA = {
  type: "object",
  required: ["name", "data"],
  properties: {
    name: { type: "string", example: "db_password" },
    data: { type: "string", format: "byte", description: `the value, base64 (at most ${MAX_SECRET_BYTES} bytes decoded)` },
    labels: { type: "object", additionalProperties: { type: "string" } },
  },
};
const REF = { name: "ref", description: "name or id" };

/** base64 → bytes, refusing anything else (Buffer.from would skip the bad characters silently). */
function decode(data: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 === 1) throw new InvalidError("data must be base64", { field: "data" });
  return Buffer.from(data, "base64");
}

/** The calls both kinds share; the subclasses fix the kind and the path. */
abstract class ValuesController {
  constructor(
    protected readonly kind: SecretKind,
    protected readonly values: SecretsService,
  ) {}

  @Post()
  @ApiBody({ schema: BODY_SCHEMA })
  @ApiOperation({ summary: "Create (values are immutable: a name is taken once)" })
  create(@Body(new ZodValidationPipe(CreateBody)) body: CreateBody): Promise<SecretView> {
    return this.values.create(this.kind, body.name, decode(body.data), body.labels ?? {});
  }

  @Get()
  @ApiOperation({ summary: "List (names, sizes, dates)" })
  list(): Promise<SecretView[]> {
    return this.values.list(this.kind);
  }

  @Get(":ref")
  @ApiParam(REF)
  @ApiOperation({ summary: "Inspect: a secret without its value, a config with it" })
  get(@Param("ref") ref: string): Promise<SecretView> {
    return this.values.get(this.kind, ref);
  }

  @Delete(":ref")
  @HttpCode(204)
  @ApiParam(REF)
  @ApiOperation({ summary: "Remove" })
  async remove(@Param("ref") ref: string): Promise<void> {
    await this.values.remove(this.kind, ref);
  }
}

@ApiTags("secrets")
@ApiBearerAuth()
@Controller("api/v1/secrets")
export class SecretsController extends ValuesController {
  constructor(values: SecretsService) {
    super("secret", values);
  }

  @Post("rotate-key")
  @HttpCode(200)
  @ApiOperation({ summary: "Re-encrypt every secret and config with a new key (admin only)" })
  rotateKey(): Promise<{ resealed: number; keyId: string }> {
    return this.values.rotateKey();
  }
}

@ApiTags("configs")
@ApiBearerAuth()
@Controller("api/v1/configs")
export class ConfigsController extends ValuesController {
  constructor(values: SecretsService) {
    super("config", values);
  }
}
