import { Body, Controller, Delete, Get, HttpCode, Param, Post } from "@nestjs/common";
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from "@nestjs/swagger";
import { z } from "zod";
import { USER_ROLES } from "../auth/roles";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { TokensService } from "./tokens.service";

const CreateToken = z.object({
  name: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, "letters, digits, '.', '_' and '-', up to 63, starting with a letter or digit"),
  role: z.enum(USER_ROLES).default("admin"),
});

@ApiTags("tokens")
@ApiBearerAuth()
@Controller("api/v1/tokens")
export class TokensController {
  constructor(private readonly tokens: TokensService) {}

  @Get()
  @ApiOperation({ summary: "List API tokens (names and dates; secrets are never returned)" })
  list() {
    return this.tokens.list();
  }

  @Post()
  @ApiOperation({ summary: "Create an API token; the secret is in the response only" })
  @ApiBody({
    schema: {
      type: "object",
      required: ["name"],
      properties: {
        name: { type: "string", example: "ci" },
        role: {
          type: "string",
          enum: [...USER_ROLES],
          default: "admin",
          description: "admin: everything; operator: services, nodes, machines (no tokens, no host paths); viewer: read only",
        },
      },
    },
  })
  create(@Body(new ZodValidationPipe(CreateToken)) body: z.infer<typeof CreateToken>) {
    return this.tokens.create(body.name, body.role);
  }

  @Delete(":name")
  @HttpCode(204)
  @ApiOperation({ summary: "Revoke an API token" })
  async revoke(@Param("name") name: string): Promise<void> {
    await this.tokens.revoke(name);
  }
}
