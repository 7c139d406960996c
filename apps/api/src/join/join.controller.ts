import { Body, Controller, HttpCode, Post } from "@nestjs/common";
import { ApiBody, ApiForbiddenResponse, ApiOkResponse, ApiOperation, ApiTags, ApiUnauthorizedResponse } from "@nestjs/swagger";
import { z } from "zod";
import { Public } from "../auth/auth.guard";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { JoinService } from "./join.service";

const JoinBody = z.object({
  joinToken: z.string().min(1).max(200),
  hostname: z.string().min(1).max(253),
});

// No bearer token: the one-time join token in the body is the credential.
@ApiTags("nodes")
@Controller("api/v1/nodes")
export class JoinController {
  constructor(private readonly joins: JoinService) {}

  @Post("join")
  @Public()
  @HttpCode(200)
  @ApiOperation({
    summary: "An agent trades its one-time join token (from provisioning) for its own API token",
    description:
      "No Authorization header. The join token works once, before it expires (1 hour after provisioning), and only for the " +
      "machine it was issued for (`hostname` must be the machine's name). The returned token has the `agent` role: it may " +
      "only send heartbeats for that machine. Joining again (after a re-provisioning) replaces the agent's previous token.",
  })
  @ApiBody({
    schema: {
      type: "object",
      required: ["joinToken", "hostname"],
      properties: { joinToken: { type: "string", example: "flj_..." }, hostname: { type: "string", example: "devdays" } },
    },
  })
  @ApiOkResponse({ schema: { type: "object", properties: { token: { type: "string", example: "flt_..." } } } })
  @ApiUnauthorizedResponse({ description: "the join token is unknown (or replaced), was already used, or expired; the message says which" })
  @ApiForbiddenResponse({ description: "the join token was issued for another machine" })
  async join(@Body(new ZodValidationPipe(JoinBody)) body: z.infer<typeof JoinBody>): Promise<{ token: string }> {
    const { token } = await this.joins.join(body.joinToken, body.hostname);
    return { token };
  }
}
