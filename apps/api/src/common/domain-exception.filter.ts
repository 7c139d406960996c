import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger, Optional } from "@nestjs/common";
import { DomainError, type DomainErrorKind } from "@flotilla/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ControlPlaneHealth } from "../health/control-plane-health";
import { connectionFailure, postgresUnavailable } from "./unavailable";

/** The one shape every API error has. */
export interface ErrorBody {
  error: string;
  message: string;
  details: Record<string, unknown>;
}

const STATUS: Record<DomainErrorKind, number> = {
  not_found: HttpStatus.NOT_FOUND,
  conflict: HttpStatus.CONFLICT,
  invalid: HttpStatus.BAD_REQUEST,
  not_supported: HttpStatus.NOT_IMPLEMENTED,
  unavailable: HttpStatus.SERVICE_UNAVAILABLE,
};

const NAME_BY_STATUS: Record<number, string> = {
  400: "invalid",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  501: "not_supported",
  503: "unavailable",
};

/** Maps typed domain errors (and Nest's own HTTP errors) to `{ error, message, details }`. */
@Catch()
export class DomainExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger("http");

  constructor(@Optional() private readonly health?: ControlPlaneHealth) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const method = host.switchToHttp().getRequest<FastifyRequest>()?.method ?? "GET";
    void this.classify(exception, method).then((e) => {
      const [status, body] = this.toResponse(e);
      if (status >= 500 && status !== 501 && status !== 503) {
        this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
      }
      void reply.status(status).send(body);
    });
  }

  /** A failure to reach Postgres becomes a 503 saying so (see common/unavailable.ts). */
  private async classify(exception: unknown, method: string): Promise<unknown> {
    if (exception instanceof DomainError || exception instanceof HttpException) return exception;
    const failure = connectionFailure(exception);
    if (failure === "postgres") return postgresUnavailable(method, exception);
    if (failure === "network" && this.health) {
      await this.health.probeOnce().catch(() => undefined);
      if (!this.health.isUp("postgres")) return postgresUnavailable(method);
    }
    return exception;
  }

  toResponse(exception: unknown): [number, ErrorBody] {
    if (exception instanceof DomainError) {
      return [STATUS[exception.kind], { error: exception.kind, message: exception.message, details: exception.details }];
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const res = exception.getResponse();
      const message = typeof res === "string" ? res : String((res as { message?: unknown }).message ?? exception.message);
      return [status, { error: NAME_BY_STATUS[status] ?? "error", message, details: {} }];
    }
    // Fastify's own errors (bad JSON body, body too large) carry a statusCode.
    const fastifyStatus = (exception as { statusCode?: number })?.statusCode;
    if (typeof fastifyStatus === "number" && fastifyStatus >= 400 && fastifyStatus < 500) {
      const message = (exception as Error).message;
      return [fastifyStatus, { error: NAME_BY_STATUS[fastifyStatus] ?? "invalid", message, details: {} }];
    }
    return [500, { error: "internal", message: "internal error; see the API logs", details: {} }];
  }
}
