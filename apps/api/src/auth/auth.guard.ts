import { CanActivate, ExecutionContext, ForbiddenException, Injectable, SetMetadata, UnauthorizedException } from "@nestjs/common";
import { Reflector } from "@nestjs/core";
import type { FastifyRequest } from "fastify";
import { TokensService } from "../tokens/tokens.service";
import { refusal } from "./roles";

const PUBLIC = "flotilla:public";
/** Marks an endpoint that needs no token (health, and the agents' join with its own credential). */
export const Public = () => SetMetadata(PUBLIC, true);

/** Every endpoint but the public ones needs `Authorization: Bearer <token>` of a role allowed to call it. */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokensService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<FastifyRequest & { tokenName?: string; tokenRole?: string }>();
    const header = req.headers.authorization;
    if (!header) throw new UnauthorizedException("missing API token: send 'Authorization: Bearer <token>' (ctl reads it from its config)");
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new UnauthorizedException("malformed Authorization header: expected 'Bearer <token>'");
    const token = await this.tokens.verify(match[1]);
    if (!token) throw new UnauthorizedException("invalid API token: it is unknown or was revoked");
    const refused = refusal(token, req.method, req.routeOptions?.url, req.body);
    if (refused) throw new ForbiddenException(refused);
    req.tokenName = token.name;
    req.tokenRole = token.role;
    return true;
  }
}
