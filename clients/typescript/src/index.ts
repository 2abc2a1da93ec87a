// @webhookd/client: TypeScript client of webhookd (webhooks.v1 over gRPC, HTTP/2).
export { WebhookdClient, type WebhookdClientOptions, type WebhookFields, type PageOptions, type EmitOptions, type BatchEvent } from "./client.js";
export { WebhookdError, Code, type FieldViolation } from "./errors.js";
export * from "./gen/webhooks/v1/webhooks_pb.js";
export * from "./gen/webhooks/v1/admin_pb.js";
