package webhookd

import (
	"context"
	"fmt"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	webhooksv1 "github.com/webhookd/webhookd/clients/go/webhooksv1"
)

// Client is a client of webhooks.v1.WebhookService. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// Service is the generated client on the same connection; the token is sent on its calls too.
	Service webhooksv1.WebhookServiceClient
}

// New connects to the gRPC listener at target ("host:port") with an account token, which is sent
// as "authorization: Bearer <token>" on every call. The connection is plaintext unless opts
// carry transport credentials (grpc.WithTransportCredentials); opts are passed to grpc.NewClient.
func New(target, token string, opts ...grpc.DialOption) (*Client, error) {
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)),
	}, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("webhookd: connect to %s: %w", target, err)
	}
	return &Client{conn: conn, Service: webhooksv1.NewWebhookServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// bearer is a token sent as per-RPC credentials (also over plaintext, for local servers).
type bearer string

func (t bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// CreateWebhook creates a webhook (Name and Url are required).
func (c *Client) CreateWebhook(ctx context.Context, w *webhooksv1.Webhook) (*webhooksv1.Webhook, error) {
	out, err := c.Service.CreateWebhook(ctx, &webhooksv1.CreateWebhookRequest{Webhook: w})
	return out, convert(err)
}

// GetWebhook returns one webhook; an *Error with codes.NotFound for unknown ids and for other
// accounts' webhooks.
func (c *Client) GetWebhook(ctx context.Context, id string) (*webhooksv1.Webhook, error) {
	out, err := c.Service.GetWebhook(ctx, &webhooksv1.GetWebhookRequest{Id: id})
	return out, convert(err)
}

// ListWebhooks yields every webhook of the account in creation order, requesting pages of
// pageSize (0 = the server's default) as the loop goes. It stops after the first error.
func (c *Client) ListWebhooks(ctx context.Context, pageSize int32) iter.Seq2[*webhooksv1.Webhook, error] {
	return func(yield func(*webhooksv1.Webhook, error) bool) {
		token := ""
		for {
			page, err := c.Service.ListWebhooks(ctx, &webhooksv1.ListWebhooksRequest{PageSize: pageSize, PageToken: token})
			if err != nil {
				yield(nil, convert(err))
				return
			}
			for _, w := range page.GetWebhooks() {
				if !yield(w, nil) {
					return
				}
			}
			if token = page.GetNextPageToken(); token == "" {
				return
			}
		}
	}
}

// UpdateWebhook updates the webhook w.Id. paths are the proto field names to set from w (the
// update mask, e.g. "is_webhook_enabled", "urls"); with none, the server updates the fields
// populated in w.
func (c *Client) UpdateWebhook(ctx context.Context, w *webhooksv1.Webhook, paths ...string) (*webhooksv1.Webhook, error) {
	req := &webhooksv1.UpdateWebhookRequest{Webhook: w}
	if len(paths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	out, err := c.Service.UpdateWebhook(ctx, req)
	return out, convert(err)
}

// DeleteWebhook deletes a webhook and its delivery log.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.Service.DeleteWebhook(ctx, &webhooksv1.DeleteWebhookRequest{Id: id})
	return convert(err)
}

// ListResponses yields every delivery attempt of a webhook, newest first, requesting pages of
// pageSize (0 = the server's default) as the loop goes. It stops after the first error.
func (c *Client) ListResponses(ctx context.Context, webhookID string, pageSize int32) iter.Seq2[*webhooksv1.WebhookResponse, error] {
	return func(yield func(*webhooksv1.WebhookResponse, error) bool) {
		token := ""
		for {
			page, err := c.Service.ListResponses(ctx, &webhooksv1.ListResponsesRequest{WebhookId: webhookID, PageSize: pageSize, PageToken: token})
			if err != nil {
				yield(nil, convert(err))
				return
			}
			for _, r := range page.GetResponses() {
				if !yield(r, nil) {
					return
				}
			}
			if token = page.GetNextPageToken(); token == "" {
				return
			}
		}
	}
}

// EmitEvent emits an event (data is the OnCall event_data, converted with structpb.NewStruct)
// and yields its DeliveryStatus stream until every matched webhook is final. The event is sent
// when the loop starts. The first status is always DELIVERY_STATE_ACCEPTED: the event is durable,
// with its EventId and MatchedDeliveries (0 when no webhook matched; the stream then ends). Then
// one DELIVERY_STATE_QUEUED (or SKIPPED) per delivery, then one status per attempt. Leaving the
// loop early closes the stream, not the deliveries. It stops after the first error.
func (c *Client) EmitEvent(ctx context.Context, eventType string, data map[string]any, idempotencyKey string) iter.Seq2[*webhooksv1.DeliveryStatus, error] {
	return func(yield func(*webhooksv1.DeliveryStatus, error) bool) {
		req := &webhooksv1.EmitEventRequest{EventType: eventType, IdempotencyKey: idempotencyKey}
		if data != nil {
			s, err := structpb.NewStruct(data)
			if err != nil {
				yield(nil, fmt.Errorf("webhookd: event data: %w", err))
				return
			}
			req.Data = s
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Service.EmitEvent(ctx, req)
		if err != nil {
			yield(nil, convert(err))
			return
		}
		for {
			st, err := stream.Recv()
			if err != nil {
				if !isEOF(err) {
					yield(nil, convert(err))
				}
				return
			}
			if !yield(st, nil) {
				return
			}
		}
	}
}

// Event is one event of an [Client.EmitEvents] batch.
type Event struct {
	Type           string         // trigger type, e.g. "alert group created"
	Data           map[string]any // OnCall event_data, converted with structpb.NewStruct (nil = {})
	IdempotencyKey string         // optional: a repeat within 24 h returns the first event
}

// EmitEvents emits a batch of events (at most 1,000) in one call and returns once all are
// durable, with one EmittedEvent per event, in order: its event id, whether the idempotency key
// named an earlier event (Duplicate) and the initial state of each delivery
// (DELIVERY_STATE_QUEUED, or SKIPPED); no statuses follow. An invalid event fails the whole
// batch with an *Error of codes.InvalidArgument, its field violations named "events[i].field",
// and nothing is emitted.
func (c *Client) EmitEvents(ctx context.Context, events []Event) ([]*webhooksv1.EmittedEvent, error) {
	req := &webhooksv1.EmitEventsRequest{Events: make([]*webhooksv1.EmitEventRequest, len(events))}
	for i, e := range events {
		ev := &webhooksv1.EmitEventRequest{EventType: e.Type, IdempotencyKey: e.IdempotencyKey}
		if e.Data != nil {
			s, err := structpb.NewStruct(e.Data)
			if err != nil {
				return nil, fmt.Errorf("webhookd: events[%d] data: %w", i, err)
			}
			ev.Data = s
		}
		req.Events[i] = ev
	}
	out, err := c.Service.EmitEvents(ctx, req)
	if err != nil {
		return nil, convert(err)
	}
	return out.GetResults(), nil
}
