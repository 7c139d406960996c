import { CanActivate, ExecutionContext, Injectable, SetMetadata, UnauthorizedException } from "@nestjs/common";
import { Reflector } from "@nestjs/core";
import type { FastifyRequest } from "fastify";
import { TokensService } from "../tokens/tokens.service";

const PUBLIC = "flotilla:public";
/** Marks an endpoint that needs no token (health only). */
export const Public = () => SetMetadata(PUBLIC, true);

/** Every endpoint but the public ones needs `Authorization: Bearer <token>`. */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokensService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<FastifyRequest & { tokenName?: string }>();
    const header = req.headers.authorization;
    if (!header) throw new UnauthorizedException("missing API token: send 'Authorization: Bearer <token>' (ctl reads it from its config)");
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new UnauthorizedException("malformed Authorization header: expected 'Bearer <token>'");
    const token = await this.tokens.verify(match[1]);
    if (!token) throw new UnauthorizedException("invalid API token: it is unknown or was revoked");
    req.tokenName = token.name;
    return true;
  }
}
