// WebhookdClient against a real webhookd, given by WEBHOOKD_GRPC_ADDR, WEBHOOKD_HTTP_ADDR and
// WEBHOOKD_ADMIN_TOKEN (scripts/test-clients sets them). Without them the server tests are
// skipped. Each test uses its own account.
import { strict as assert } from "node:assert";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { BreakerState, Code, DeliveryState, type DeliveryStatus, WebhookdClient, WebhookdError } from "../src/index.js";
import { BadRequestSchema } from "../src/gen/google/rpc/error_details_pb.js";

const env = {
  grpc: process.env.WEBHOOKD_GRPC_ADDR,
  http: process.env.WEBHOOKD_HTTP_ADDR,
  admin: process.env.WEBHOOKD_ADMIN_TOKEN,
};
const noServer = !env.grpc || !env.http || !env.admin
  ? "no webhookd server (WEBHOOKD_GRPC_ADDR, WEBHOOKD_HTTP_ADDR, WEBHOOKD_ADMIN_TOKEN unset)"
  : false;

const TRIGGER = "alert group created";
const EVENT = { alert_group: { id: "AG1", title: "Disk full" } };

const clients: WebhookdClient[] = [];

/** A client of a fresh account, with a token from the admin REST API. */
async function newClient(scopes = ["webhooks:read", "webhooks:write"]): Promise<WebhookdClient> {
  const accountId = `ts-${randomUUID().slice(0, 12)}`;
  const res = await fetch(`http://${env.http}/admin/v1/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ account_id: accountId, scopes }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const body = (await res.json()) as { token: string; account_id: string };
  assert.equal(body.account_id, accountId);
  const client = new WebhookdClient({ baseUrl: env.grpc!, token: body.token });
  clients.push(client);
  return client;
}

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook target on 127.0.0.1 that answers 200 and records requests. */
class Receiver {
  readonly requests: Recorded[] = [];
  private server?: Server;
  url = "";

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.requests.push({
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        });
        res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
    return this;
  }

  async waitFor(n: number, timeoutMs = 10_000): Promise<Recorded[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.requests.length < n) {
      if (Date.now() > deadline) assert.fail(`receiver got ${this.requests.length} requests, wanted ${n}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.requests;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server?.closeAllConnections();
      this.server?.close(() => resolve());
    });
  }
}

/**
 * A live tail of a webhook's deliveries after `cursor` ("" = from now), once the server has
 * answered (so changes made after this resolves are in it).
 */
async function watch(client: WebhookdClient, webhookId: string, cursor: string) {
  const abort = new AbortController();
  let answered!: () => void;
  const header = new Promise<void>((resolve) => (answered = resolve));
  const tail = client.service
    .watchDeliveries({ webhookId, cursor }, { signal: abort.signal, onHeader: () => answered() })
    [Symbol.asyncIterator]();
  let pending = tail.next();
  await Promise.race([header, pending]);
  return {
    async next(): Promise<DeliveryStatus> {
      const { value, done } = await pending;
      assert.ok(!done, "the tail ended");
      pending = tail.next();
      return value;
    },
    close: () => {
      pending.catch(() => {}); // the read left pending ends with the abort
      abort.abort();
    },
  };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("WebhookdError (no server)", () => {
  test("decodes BadRequest field violations", () => {
    const bad = create(BadRequestSchema, {
      fieldViolations: [{ field: "url", description: "required" }],
    });
    const cause = new ConnectError("invalid webhook", Code.InvalidArgument, undefined, [
      { desc: BadRequestSchema, value: bad },
    ]);
    const err = WebhookdError.from(cause);
    assert.equal(err.code, Code.InvalidArgument);
    assert.equal(err.rawMessage, "invalid webhook");
    assert.deepEqual(err.fieldViolations, [{ field: "url", description: "required", reason: "" }]);
    assert.equal(err.violation("url")?.description, "required");
    assert.match(err.message, /InvalidArgument: invalid webhook \(url: required\)/);
  });

  test("wraps errors without details", () => {
    const err = WebhookdError.from(new ConnectError("webhook not found", Code.NotFound));
    assert.equal(err.code, Code.NotFound);
    assert.deepEqual(err.fieldViolations, []);
    assert.ok(err instanceof Error);
  });
});

describe("WebhookdClient", { skip: noServer }, () => {
  let receiver: Receiver;

  before(async () => {
    receiver = await new Receiver().start();
  });

  after(async () => {
    for (const c of clients) c.close();
    await receiver.close();
  });

  test("create, get, update, list and delete", async () => {
    const client = await newClient();
    const hook = await client.createWebhook({ name: "crud", url: receiver.url, triggerType: TRIGGER });
    assert.ok(hook.id);
    assert.equal(hook.name, "crud");
    assert.equal(hook.isWebhookEnabled, true);
    assert.equal(hook.forwardAll, true);
    assert.equal(hook.httpMethod, "POST");
    assert.ok(hook.createdAt && timestampMs(hook.createdAt) > 0);

    assert.equal((await client.getWebhook(hook.id)).name, "crud");

    const updated = await client.updateWebhook(hook.id, { isWebhookEnabled: false, description: "paused" });
    assert.equal(updated.isWebhookEnabled, false);
    assert.equal(updated.description, "paused");
    assert.equal(updated.url, receiver.url, "fields outside the mask keep their values");

    assert.deepEqual((await client.listWebhooks()).map((w) => w.id), [hook.id]);

    await client.deleteWebhook(hook.id);
    await assert.rejects(client.getWebhook(hook.id), (err: WebhookdError) => err.code === Code.NotFound);
    assert.deepEqual(await client.listWebhooks(), []);
  });

  test("listWebhooks walks every page", async () => {
    const client = await newClient();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await client.createWebhook({ name: `page-${i}`, url: receiver.url, triggerType: TRIGGER })).id);
    }
    assert.deepEqual((await client.listWebhooks({ pageSize: 2 })).map((w) => w.id), ids);
    const first = await client.service.listWebhooks({ pageSize: 2 });
    assert.equal(first.webhooks.length, 2);
    assert.ok(first.nextPageToken);
    assert.equal(first.totalSize, 5);
  });

  test("emitEvent streams ACCEPTED, QUEUED then SUCCEEDED and records the response", async () => {
    const client = await newClient();
    const hook = await client.createWebhook({ name: "emit", url: receiver.url, triggerType: TRIGGER });
    const before = receiver.requests.length;

    const [accepted, ...statuses] = await collect(client.emitEvent(TRIGGER, EVENT));

    assert.equal(accepted!.state, DeliveryState.ACCEPTED);
    assert.ok(accepted!.eventId);
    assert.equal(accepted!.matchedDeliveries, 1);
    assert.ok(statuses.length >= 2, JSON.stringify(statuses));
    assert.equal(statuses[0]!.state, DeliveryState.QUEUED);
    assert.equal(statuses[0]!.eventId, accepted!.eventId);
    assert.equal(statuses[0]!.webhookId, hook.id);
    const last = statuses[statuses.length - 1]!;
    assert.equal(last.state, DeliveryState.SUCCEEDED);
    assert.equal(last.webhookId, hook.id);
    assert.equal(last.statusCode, 200);
    assert.equal(last.attempt, 1);
    assert.equal(new Set(statuses.map((s) => s.deliveryId)).size, 1);

    const reqs = await receiver.waitFor(before + 1);
    const req = reqs[before]!;
    assert.equal(req.method, "POST");
    assert.equal(req.url, "/hook");
    assert.deepEqual(JSON.parse(req.body).alert_group, EVENT.alert_group);

    const responses = await collect(client.listResponses(hook.id));
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.statusCode, 200);
    assert.equal(responses[0]!.deliveryId, last.deliveryId);
  });

  test("emitEvent without a matching webhook tells the event id and ends", async () => {
    const client = await newClient();
    const statuses = await collect(client.emitEvent("nobody listens to this", EVENT));
    assert.equal(statuses.length, 1, JSON.stringify(statuses));
    assert.equal(statuses[0]!.state, DeliveryState.ACCEPTED);
    assert.ok(statuses[0]!.eventId);
    assert.equal(statuses[0]!.matchedDeliveries, 0);
  });

  test("emitEvents returns one result per event, in order, with QUEUED deliveries", async () => {
    const client = await newClient();
    const hook = await client.createWebhook({ name: "batch", url: receiver.url, triggerType: TRIGGER });
    const before = receiver.requests.length;
    const events = [
      { eventType: TRIGGER, data: { alert_group: { id: "AG0" } } },
      { eventType: TRIGGER, data: { alert_group: { id: "AG1" } }, idempotencyKey: "batch-k-1" },
      { eventType: TRIGGER, data: { alert_group: { id: "AG2" } }, idempotencyKey: "batch-k-2" },
    ];

    const results = await client.emitEvents(events);

    assert.equal(results.length, 3);
    assert.equal(new Set(results.map((r) => r.eventId)).size, 3);
    for (const r of results) {
      assert.ok(r.eventId);
      assert.equal(r.duplicate, false);
      assert.equal(r.deliveries.length, 1, JSON.stringify(r.deliveries));
      const d = r.deliveries[0]!;
      assert.equal(d.state, DeliveryState.QUEUED);
      assert.equal(d.webhookId, hook.id);
      assert.equal(d.eventId, r.eventId);
      assert.equal(d.attempt, 0);
      assert.ok(d.deliveryId);
    }

    // In request order: the delivery of result i (webhook-id header) carries event i.
    const reqs = (await receiver.waitFor(before + 3)).slice(before);
    const sent = new Map(reqs.map((req) => [req.headers["webhook-id"], JSON.parse(req.body).alert_group.id]));
    assert.deepEqual(results.map((r) => sent.get(r.deliveries[0]!.deliveryId)), ["AG0", "AG1", "AG2"]);

    const again = await client.emitEvents(events.slice(1));
    assert.deepEqual(again.map((r) => r.eventId), results.slice(1).map((r) => r.eventId));
    assert.ok(again.every((r) => r.duplicate));
  });

  test("emitEvents with an invalid event fails the batch with events[1].event_type", async () => {
    const client = await newClient();
    await client.createWebhook({ name: "batch-bad", url: receiver.url, triggerType: TRIGGER });
    const before = receiver.requests.length;
    await assert.rejects(
      client.emitEvents([
        { eventType: TRIGGER, data: EVENT },
        { eventType: "", data: EVENT },
        { eventType: TRIGGER, data: EVENT },
      ]),
      (err: unknown) => {
        assert.ok(err instanceof WebhookdError);
        assert.equal(err.code, Code.InvalidArgument);
        assert.ok(err.violation("events[1].event_type")?.description, JSON.stringify(err.fieldViolations));
        return true;
      },
    );
    // Nothing was emitted: the next event is the only one delivered.
    const statuses = await collect(client.emitEvent(TRIGGER, EVENT));
    assert.equal(statuses[statuses.length - 1]!.state, DeliveryState.SUCCEEDED);
    assert.equal((await receiver.waitFor(before + 1)).length, before + 1);
  });

  test("listResponses pages newest first", async () => {
    const client = await newClient();
    const hook = await client.createWebhook({ name: "pages", url: receiver.url, triggerType: TRIGGER });
    for (let i = 0; i < 3; i++) {
      const statuses = await collect(client.emitEvent(TRIGGER, { alert_group: { id: `AG${i}` } }));
      assert.equal(statuses[statuses.length - 1]!.state, DeliveryState.SUCCEEDED);
    }
    const responses = await collect(client.listResponses(hook.id, { pageSize: 2 }));
    assert.equal(responses.length, 3);
    assert.ok(responses.every((r) => r.statusCode === 200));
    const stamps = responses.map((r) => timestampMs(r.timestamp!));
    assert.deepEqual(stamps, [...stamps].sort((a, b) => b - a));
    assert.equal(JSON.parse(responses[0]!.eventData).alert_group.id, "AG2");
  });

  test("a webhook without url is INVALID_ARGUMENT with a BadRequest violation for url", async () => {
    const client = await newClient();
    await assert.rejects(client.createWebhook({ name: "no-url", triggerType: TRIGGER }), (err: unknown) => {
      assert.ok(err instanceof WebhookdError);
      assert.equal(err.code, Code.InvalidArgument);
      assert.ok(err.violation("url"), JSON.stringify(err.fieldViolations));
      return true;
    });
  });

  test("another account's webhook is NOT_FOUND", async () => {
    const [mine, theirs] = [await newClient(), await newClient()];
    const hook = await theirs.createWebhook({ name: "theirs", url: receiver.url, triggerType: TRIGGER });
    const notFound = (err: unknown) => err instanceof WebhookdError && err.code === Code.NotFound;
    await assert.rejects(mine.getWebhook(hook.id), notFound);
    await assert.rejects(mine.updateWebhook(hook.id, { name: "stolen" }), notFound);
    await assert.rejects(mine.deleteWebhook(hook.id), notFound);
    await assert.rejects(collect(mine.listResponses(hook.id)), notFound);
    assert.deepEqual(await mine.listWebhooks(), []);
    assert.equal((await theirs.getWebhook(hook.id)).name, "theirs");
  });

  test("watchDeliveries resumes from the last cursor; getWebhookHealth counts the attempt", async () => {
    const client = await newClient();
    const hook = await client.createWebhook({ name: "tail", url: receiver.url, triggerType: TRIGGER });
    const first = await watch(client, hook.id, "");
    await collect(client.emitEvent(TRIGGER, EVENT));
    const queued = await first.next();
    const succeeded = await first.next();
    first.close();
    assert.deepEqual([queued.state, succeeded.state], [DeliveryState.QUEUED, DeliveryState.SUCCEEDED]);
    assert.equal(queued.deliveryId, succeeded.deliveryId);
    assert.notEqual(queued.cursor, succeeded.cursor);

    // Reconnecting with the cursor of QUEUED brings what came after it, nothing before.
    const resumed = await watch(client, hook.id, queued.cursor);
    const again = await resumed.next();
    resumed.close();
    assert.deepEqual([again.deliveryId, again.state, again.cursor], [succeeded.deliveryId, succeeded.state, succeeded.cursor]);

    const health = await client.service.getWebhookHealth({ webhookId: hook.id });
    assert.equal(health.breakerState, BreakerState.CLOSED);
    assert.ok(health.lastSuccessAt && !health.failingSince);
    assert.deepEqual([health.lastDay?.succeeded, health.lastDay?.failed], [1, 0]);
    assert.equal(health.hourly.length, 24);
    assert.deepEqual(health.hourly[23], health.lastHour);
  });

  test("watchDeliveries and getWebhookHealth refuse bad input", async () => {
    const client = await newClient();
    const tail = client.service.watchDeliveries({ cursor: "nope" });
    await assert.rejects(collect(tail), (err: unknown) => {
      const werr = WebhookdError.from(err);
      assert.equal(werr.code, Code.InvalidArgument);
      assert.deepEqual(werr.fieldViolations.map((v) => v.field), ["cursor"]);
      return true;
    });
    await assert.rejects(client.service.getWebhookHealth({ webhookId: "W0000000000000" }), (err: unknown) =>
      WebhookdError.from(err).code === Code.NotFound);
  });

  test("a bad token is UNAUTHENTICATED", async () => {
    const client = new WebhookdClient({ baseUrl: env.grpc!, token: "not-a-token" });
    clients.push(client);
    await assert.rejects(client.listWebhooks(), (err: unknown) => err instanceof WebhookdError && err.code === Code.Unauthenticated);
  });
});
