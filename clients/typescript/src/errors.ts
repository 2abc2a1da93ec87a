// Errors of WebhookdClient: a ConnectError turned into the gRPC code plus the
// google.rpc.BadRequest field violations and google.rpc.ErrorInfo reason that webhookd sends in
// the grpc-status-details-bin trailer.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export { Code };

/** One invalid field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  /** Path of the field, e.g. "url". */
  field: string;
  /** Why the value is invalid. */
  description: string;
  /** Machine-readable reason, when the server gives one. */
  reason: string;
}

/** A failed webhookd call. `code` is the gRPC status code (Code.NotFound, ...). */
export class WebhookdError extends Error {
  override readonly name = "WebhookdError";
  /** gRPC status code. */
  readonly code: Code;
  /** The status message, without the "[code]" prefix ConnectError adds. */
  readonly rawMessage: string;
  /** BadRequest field violations (INVALID_ARGUMENT), else empty. */
  readonly fieldViolations: readonly FieldViolation[];
  /** ErrorInfo reason (authentication and permission errors), else "". */
  readonly reason: string;
  /** The underlying ConnectError (metadata, raw details). */
  override readonly cause: ConnectError;

  constructor(cause: ConnectError) {
    const violations = cause.findDetails(BadRequestSchema).flatMap((bad) =>
      bad.fieldViolations.map((v) => ({ field: v.field, description: v.description, reason: v.reason })),
    );
    // webhookd's messages usually list the violations already.
    const listed = violations.every((v) => cause.rawMessage.includes(`${v.field}: ${v.description}`));
    const suffix = violations.length && !listed
      ? ` (${violations.map((v) => `${v.field}: ${v.description}`).join("; ")})`
      : "";
    super(`${Code[cause.code] ?? cause.code}: ${cause.rawMessage}${suffix}`);
    this.code = cause.code;
    this.rawMessage = cause.rawMessage;
    this.fieldViolations = violations;
    this.reason = cause.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
    this.cause = cause;
  }

  /** The violation of `field`, if any. */
  violation(field: string): FieldViolation | undefined {
    return this.fieldViolations.find((v) => v.field === field);
  }

  /** Converts anything thrown by a Connect client into a WebhookdError. */
  static from(err: unknown): WebhookdError {
    return err instanceof WebhookdError ? err : new WebhookdError(ConnectError.from(err));
  }
}
