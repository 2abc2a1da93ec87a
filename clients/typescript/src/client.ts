// A thin wrapper around the generated WebhookService client: it sends the account token on
// every call, walks pages, and throws WebhookdError instead of ConnectError.
import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  WebhookSchema,
  WebhookService,
  type DeliveryStatus,
  type EmittedEvent,
  type Webhook,
  type WebhookResponse,
} from "./gen/webhooks/v1/webhooks_pb.js";
import { WebhookdError } from "./errors.js";

/** Fields of a Webhook, as accepted by create and update (camelCase, e.g. `triggerType`). */
export type WebhookFields = Omit<MessageInitShape<typeof WebhookSchema>, "$typeName">;

export interface WebhookdClientOptions {
  /** Address of the gRPC listener: "http://127.0.0.1:50051", "https://..." or "host:port". */
  baseUrl: string;
  /** Account token; sent as `authorization: Bearer <token>`. */
  token: string;
  /** Deadline of each unary call in milliseconds (default 30 000; 0 = none). */
  timeoutMs?: number;
  /** Extra interceptors, run after the one that adds the token. */
  interceptors?: Interceptor[];
}

/** Paging options of the list calls. */
export interface PageOptions {
  /** Page size asked of the server (0 or absent = the server's default). */
  pageSize?: number;
}

export interface EmitOptions {
  /** Emitting again with the same key within 24 h returns the first event. */
  idempotencyKey?: string;
  /** Aborts the stream (not the deliveries). */
  signal?: AbortSignal;
  /** Deadline of the whole stream in milliseconds (default none). */
  timeoutMs?: number;
}

/** One event of an emitEvents batch. */
export interface BatchEvent {
  /** Trigger type, e.g. "alert group created". */
  eventType: string;
  /** OnCall event_data (default {}). */
  data?: JsonObject;
  /** Emitting again with the same key within 24 h returns the first event. */
  idempotencyKey?: string;
}

/** Client of webhooks.v1.WebhookService over gRPC (HTTP/2). */
export class WebhookdClient {
  /** The generated Connect client, for calls the wrapper does not cover (token included). */
  readonly service: Client<typeof WebhookService>;
  readonly transport: Transport;
  private readonly sessions: Http2SessionManager;
  private readonly timeoutMs: number;

  constructor(options: WebhookdClientOptions) {
    const baseUrl = /^https?:\/\//.test(options.baseUrl) ? options.baseUrl : `http://${options.baseUrl}`;
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${options.token}`);
      return next(req);
    };
    this.sessions = new Http2SessionManager(baseUrl);
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.sessions,
      interceptors: [auth, ...(options.interceptors ?? [])],
    });
    this.service = createClient(WebhookService, this.transport);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Closes the HTTP/2 connection. */
  close(): void {
    this.sessions.abort();
  }

  private opts() {
    return this.timeoutMs > 0 ? { timeoutMs: this.timeoutMs } : {};
  }

  private async unary<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw WebhookdError.from(err);
    }
  }

  /** Creates a webhook (`name` and `url` are required). */
  createWebhook(webhook: WebhookFields): Promise<Webhook> {
    return this.unary(() => this.service.createWebhook({ webhook }, this.opts()));
  }

  /** Returns one webhook; Code.NotFound for unknown ids and other accounts' webhooks. */
  getWebhook(id: string): Promise<Webhook> {
    return this.unary(() => this.service.getWebhook({ id }, this.opts()));
  }

  /** Returns every webhook of the account in creation order, fetching all pages. */
  async listWebhooks(options: PageOptions = {}): Promise<Webhook[]> {
    const all: Webhook[] = [];
    for await (const webhook of this.iterWebhooks(options)) all.push(webhook);
    return all;
  }

  /** Yields every webhook of the account, one page per request. */
  async *iterWebhooks(options: PageOptions = {}): AsyncGenerator<Webhook> {
    let pageToken = "";
    do {
      const page = await this.unary(() =>
        this.service.listWebhooks({ pageSize: options.pageSize ?? 0, pageToken }, this.opts()),
      );
      yield* page.webhooks;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /**
   * Sets the given fields of a webhook, and only those: their names form the update mask.
   * `{ isWebhookEnabled: false }` disables it; `{ urls: [] }` clears the extra urls.
   */
  updateWebhook(id: string, fields: WebhookFields): Promise<Webhook> {
    const paths = Object.keys(fields).map((key) => {
      const field = WebhookSchema.fields.find((f) => f.localName === key || f.name === key);
      if (!field) throw new TypeError(`webhooks.v1.Webhook has no field ${key}`);
      return field.name;
    });
    if (paths.length === 0) throw new TypeError("updateWebhook needs at least one field");
    const updateMask = create(FieldMaskSchema, { paths: paths.sort() });
    return this.unary(() =>
      this.service.updateWebhook({ webhook: { ...fields, id }, updateMask }, this.opts()),
    );
  }

  /** Deletes a webhook and its delivery log. */
  async deleteWebhook(id: string): Promise<void> {
    await this.unary(() => this.service.deleteWebhook({ id }, this.opts()));
  }

  /** Yields every delivery attempt of a webhook, newest first, one page per request. */
  async *listResponses(webhookId: string, options: PageOptions = {}): AsyncGenerator<WebhookResponse> {
    let pageToken = "";
    do {
      const page = await this.unary(() =>
        this.service.listResponses({ webhookId, pageSize: options.pageSize ?? 0, pageToken }, this.opts()),
      );
      yield* page.responses;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /**
   * Emits an event and yields its DeliveryStatus stream until every matched webhook is final.
   * The first status is always DeliveryState.ACCEPTED: the event is durable, with its eventId and
   * matchedDeliveries (0 when no webhook matched; the stream then ends). Then one QUEUED (or
   * SKIPPED) per delivery, then one status per attempt. Breaking out of the loop closes the
   * stream; delivery goes on.
   */
  async *emitEvent(eventType: string, data: JsonObject = {}, options: EmitOptions = {}): AsyncGenerator<DeliveryStatus> {
    const stream = this.service.emitEvent(
      { eventType, data, idempotencyKey: options.idempotencyKey ?? "" },
      { signal: options.signal, timeoutMs: options.timeoutMs },
    );
    try {
      yield* stream;
    } catch (err) {
      throw WebhookdError.from(err);
    }
  }

  /**
   * Emits a batch of events (at most 1,000) in one call and resolves once all are durable, with
   * one EmittedEvent per event, in order: its eventId, duplicate (the idempotency key named an
   * earlier event) and the initial state of each delivery (QUEUED, or SKIPPED); no statuses
   * follow. An invalid event fails the whole batch with Code.InvalidArgument, its field
   * violations named `events[i].field`, and nothing is emitted.
   */
  async emitEvents(events: readonly BatchEvent[]): Promise<EmittedEvent[]> {
    const request = {
      events: events.map((e) => ({
        eventType: e.eventType,
        data: e.data ?? {},
        idempotencyKey: e.idempotencyKey ?? "",
      })),
    };
    const response = await this.unary(() => this.service.emitEvents(request, this.opts()));
    return response.results;
  }
}
