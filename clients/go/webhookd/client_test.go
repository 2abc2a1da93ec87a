package webhookd_test

// Tests against a real webhookd, given by WEBHOOKD_GRPC_ADDR, WEBHOOKD_HTTP_ADDR and
// WEBHOOKD_ADMIN_TOKEN (scripts/test-clients sets them); skipped without them. Each test uses
// its own account.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/webhookd/webhookd/clients/go/webhookd"
	webhooksv1 "github.com/webhookd/webhookd/clients/go/webhooksv1"
)

const trigger = "alert group created"

var event = map[string]any{"alert_group": map[string]any{"id": "AG1", "title": "Disk full"}}

type server struct{ grpcAddr, httpAddr, admin string }

func testServer(t *testing.T) server {
	t.Helper()
	s := server{os.Getenv("WEBHOOKD_GRPC_ADDR"), os.Getenv("WEBHOOKD_HTTP_ADDR"), os.Getenv("WEBHOOKD_ADMIN_TOKEN")}
	if s.grpcAddr == "" || s.httpAddr == "" || s.admin == "" {
		t.Skip("no webhookd server (WEBHOOKD_GRPC_ADDR, WEBHOOKD_HTTP_ADDR, WEBHOOKD_ADMIN_TOKEN unset)")
	}
	return s
}

// newClient returns a client of a fresh account, with a token from the admin REST API.
func newClient(t *testing.T, scopes ...string) *webhookd.Client {
	t.Helper()
	s := testServer(t)
	if len(scopes) == 0 {
		scopes = []string{"webhooks:read", "webhooks:write"}
	}
	var b [6]byte
	rand.Read(b[:])
	account := "go-" + hex.EncodeToString(b[:])
	body, _ := json.Marshal(map[string]any{"account_id": account, "scopes": scopes})
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.httpAddr+"/admin/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create token: %d %s", resp.StatusCode, raw)
	}
	var created struct {
		Token     string `json:"token"`
		AccountID string `json:"account_id"`
	}
	if err := json.Unmarshal(raw, &created); err != nil || created.Token == "" || created.AccountID != account {
		t.Fatalf("create token: %s (%v)", raw, err)
	}
	c, err := webhookd.New(s.grpcAddr, created.Token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// receiver is a webhook target on 127.0.0.1 that answers 200 and records requests.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.Header, body})
		r.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) hookURL() string { return r.URL + "/hook" }

func (r *receiver) waitFor(t *testing.T, n int) []recorded {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := append([]recorded(nil), r.reqs...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d requests, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func collect[T any](t *testing.T, seq iter.Seq2[T, error]) []T {
	t.Helper()
	var out []T
	for x, err := range seq {
		if err != nil {
			t.Fatalf("after %d items: %v", len(out), err)
		}
		out = append(out, x)
	}
	return out
}

func firstErr[T any](seq iter.Seq2[T, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

func wantCode(t *testing.T, err error, code codes.Code) *webhookd.Error {
	t.Helper()
	var werr *webhookd.Error
	if !errors.As(err, &werr) {
		t.Fatalf("error %v (%T), want *webhookd.Error %v", err, err, code)
	}
	if werr.Code != code {
		t.Fatalf("code %v (%v), want %v", werr.Code, werr, code)
	}
	return werr
}

func TestCRUD(t *testing.T) {
	c, r := newClient(t), newReceiver(t)
	hook, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "crud", Url: r.hookURL(), TriggerType: trigger})
	if err != nil {
		t.Fatal(err)
	}
	if hook.GetId() == "" || hook.GetName() != "crud" || !hook.GetIsWebhookEnabled() || !hook.GetForwardAll() || hook.GetHttpMethod() != "POST" {
		t.Fatalf("created %v", hook)
	}
	got, err := c.GetWebhook(ctx(t), hook.GetId())
	if err != nil || !proto.Equal(got, hook) {
		t.Fatalf("get: %v %v", got, err)
	}
	updated, err := c.UpdateWebhook(ctx(t), &webhooksv1.Webhook{Id: hook.GetId(), IsWebhookEnabled: proto.Bool(false), Description: "paused"},
		"is_webhook_enabled", "description")
	if err != nil {
		t.Fatal(err)
	}
	if updated.GetIsWebhookEnabled() || updated.GetDescription() != "paused" || updated.GetUrl() != r.hookURL() {
		t.Fatalf("updated %v", updated)
	}
	if list := collect(t, c.ListWebhooks(ctx(t), 0)); len(list) != 1 || list[0].GetId() != hook.GetId() {
		t.Fatalf("list %v", list)
	}
	if err := c.DeleteWebhook(ctx(t), hook.GetId()); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetWebhook(ctx(t), hook.GetId())
	wantCode(t, err, codes.NotFound)
	if list := collect(t, c.ListWebhooks(ctx(t), 0)); len(list) != 0 {
		t.Fatalf("list after delete %v", list)
	}
}

func TestListWebhooksPages(t *testing.T) {
	c, r := newClient(t), newReceiver(t)
	var ids []string
	for i := range 5 {
		h, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: fmt.Sprintf("page-%d", i), Url: r.hookURL(), TriggerType: trigger})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.GetId())
	}
	var got []string
	for _, h := range collect(t, c.ListWebhooks(ctx(t), 2)) {
		got = append(got, h.GetId())
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("ids %v, want %v", got, ids)
	}
	first, err := c.Service.ListWebhooks(ctx(t), &webhooksv1.ListWebhooksRequest{PageSize: 2})
	if err != nil || len(first.GetWebhooks()) != 2 || first.GetNextPageToken() == "" || first.GetTotalSize() != 5 {
		t.Fatalf("first page %v %v", first, err)
	}
}

func TestEmitEvent(t *testing.T) {
	c, r := newClient(t), newReceiver(t)
	hook, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "emit", Url: r.hookURL(), TriggerType: trigger})
	if err != nil {
		t.Fatal(err)
	}
	statuses := collect(t, c.EmitEvent(ctx(t), trigger, event, ""))
	if len(statuses) < 3 {
		t.Fatalf("statuses %v", statuses)
	}
	accepted := statuses[0]
	if accepted.GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_ACCEPTED || accepted.GetEventId() == "" || accepted.GetMatchedDeliveries() != 1 {
		t.Fatalf("first status %v", accepted)
	}
	statuses = statuses[1:]
	if s := statuses[0]; s.GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_QUEUED || s.GetWebhookId() != hook.GetId() || s.GetEventId() != accepted.GetEventId() {
		t.Fatalf("second status %v", s)
	}
	last := statuses[len(statuses)-1]
	if last.GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_SUCCEEDED || last.GetStatusCode() != 200 || last.GetAttempt() != 1 || last.GetWebhookId() != hook.GetId() {
		t.Fatalf("last status %v", last)
	}
	for _, s := range statuses {
		if s.GetDeliveryId() != last.GetDeliveryId() || s.GetEventId() != last.GetEventId() {
			t.Fatalf("ids differ across statuses: %v", statuses)
		}
	}
	req := r.waitFor(t, 1)[0]
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil || req.Method != http.MethodPost || req.Path != "/hook" {
		t.Fatalf("request %s %s %s (%v)", req.Method, req.Path, req.Body, err)
	}
	if ag, _ := body["alert_group"].(map[string]any); ag["id"] != "AG1" || ag["title"] != "Disk full" {
		t.Fatalf("body %s", req.Body)
	}
	responses := collect(t, c.ListResponses(ctx(t), hook.GetId(), 0))
	if len(responses) != 1 || responses[0].GetStatusCode() != 200 || responses[0].GetDeliveryId() != last.GetDeliveryId() {
		t.Fatalf("responses %v", responses)
	}
}

func TestEmitEventWithoutMatch(t *testing.T) {
	c := newClient(t)
	got := collect(t, c.EmitEvent(ctx(t), "nobody listens to this", event, ""))
	if len(got) != 1 || got[0].GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_ACCEPTED || got[0].GetEventId() == "" || got[0].GetMatchedDeliveries() != 0 {
		t.Fatalf("statuses %v", got)
	}
}

func TestEmitEvents(t *testing.T) {
	c, r := newClient(t), newReceiver(t)
	hook, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "batch", Url: r.hookURL(), TriggerType: trigger})
	if err != nil {
		t.Fatal(err)
	}
	events := []webhookd.Event{
		{Type: trigger, Data: map[string]any{"alert_group": map[string]any{"id": "AG0"}}},
		{Type: trigger, Data: map[string]any{"alert_group": map[string]any{"id": "AG1"}}, IdempotencyKey: "batch-k-1"},
		{Type: trigger, Data: map[string]any{"alert_group": map[string]any{"id": "AG2"}}, IdempotencyKey: "batch-k-2"},
	}
	results, err := c.EmitEvents(ctx(t), events)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3: %v", len(results), results)
	}
	seen := map[string]bool{}
	for i, res := range results {
		if res.GetEventId() == "" || seen[res.GetEventId()] || res.GetDuplicate() || len(res.GetDeliveries()) != 1 {
			t.Fatalf("result %d: %v", i, res)
		}
		seen[res.GetEventId()] = true
		d := res.GetDeliveries()[0]
		if d.GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_QUEUED || d.GetWebhookId() != hook.GetId() ||
			d.GetEventId() != res.GetEventId() || d.GetDeliveryId() == "" || d.GetAttempt() != 0 {
			t.Fatalf("result %d delivery: %v", i, d)
		}
	}
	// In request order: the delivery of result i (webhook-id header) carries event i.
	sent := map[string]any{}
	for _, req := range r.waitFor(t, 3) {
		var body map[string]map[string]any
		if err := json.Unmarshal(req.Body, &body); err != nil {
			t.Fatalf("body %s: %v", req.Body, err)
		}
		sent[req.Header.Get("webhook-id")] = body["alert_group"]["id"]
	}
	for i, res := range results {
		if got, want := sent[res.GetDeliveries()[0].GetDeliveryId()], fmt.Sprintf("AG%d", i); got != want {
			t.Errorf("result %d delivered %v, want %s", i, got, want)
		}
	}
	again, err := c.EmitEvents(ctx(t), events[1:])
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range again {
		if !res.GetDuplicate() || res.GetEventId() != results[i+1].GetEventId() {
			t.Fatalf("repeat %d: %v, want a duplicate of %s", i, res, results[i+1].GetEventId())
		}
	}
}

func TestEmitEventsInvalidEventFailsTheBatch(t *testing.T) {
	c, r := newClient(t), newReceiver(t)
	if _, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "batch-bad", Url: r.hookURL(), TriggerType: trigger}); err != nil {
		t.Fatal(err)
	}
	results, err := c.EmitEvents(ctx(t), []webhookd.Event{{Type: trigger, Data: event}, {Type: "", Data: event}, {Type: trigger, Data: event}})
	werr := wantCode(t, err, codes.InvalidArgument)
	if v, ok := werr.Violation("events[1].event_type"); !ok || v.Description == "" {
		t.Fatalf("no violation for events[1].event_type: %+v", werr.FieldViolations)
	}
	if results != nil {
		t.Fatalf("results %v with an error", results)
	}
	// Nothing was emitted: the next event is the only one delivered.
	st := collect(t, c.EmitEvent(ctx(t), trigger, event, ""))
	if len(st) == 0 || st[len(st)-1].GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_SUCCEEDED {
		t.Fatalf("statuses %v", st)
	}
	if got := r.waitFor(t, 1); len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
}

func TestListResponsesPages(t *testing.T) {
	c, r := newClient(t), newReceiver(t)
	hook, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "pages", Url: r.hookURL(), TriggerType: trigger})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		st := collect(t, c.EmitEvent(ctx(t), trigger, map[string]any{"alert_group": map[string]any{"id": fmt.Sprintf("AG%d", i)}}, ""))
		if len(st) == 0 || st[len(st)-1].GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_SUCCEEDED {
			t.Fatalf("statuses %v", st)
		}
	}
	responses := collect(t, c.ListResponses(ctx(t), hook.GetId(), 2))
	if len(responses) != 3 {
		t.Fatalf("%d responses, want 3", len(responses))
	}
	for i, resp := range responses {
		if resp.GetStatusCode() != 200 {
			t.Errorf("response %d: status %d", i, resp.GetStatusCode())
		}
		if i > 0 && resp.GetTimestamp().AsTime().After(responses[i-1].GetTimestamp().AsTime()) {
			t.Errorf("responses not newest first")
		}
	}
	var data map[string]map[string]any
	if err := json.Unmarshal([]byte(responses[0].GetEventData()), &data); err != nil || data["alert_group"]["id"] != "AG2" {
		t.Errorf("newest event_data %s (%v)", responses[0].GetEventData(), err)
	}
}

func TestMissingURLIsInvalidArgument(t *testing.T) {
	c := newClient(t)
	_, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "no-url", TriggerType: trigger})
	werr := wantCode(t, err, codes.InvalidArgument)
	if _, ok := werr.Violation("url"); !ok {
		t.Fatalf("no violation for url: %+v", werr.FieldViolations)
	}
}

func TestOtherAccountIsNotFound(t *testing.T) {
	mine, theirs, r := newClient(t), newClient(t), newReceiver(t)
	hook, err := theirs.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "theirs", Url: r.hookURL(), TriggerType: trigger})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mine.GetWebhook(ctx(t), hook.GetId())
	wantCode(t, err, codes.NotFound)
	_, err = mine.UpdateWebhook(ctx(t), &webhooksv1.Webhook{Id: hook.GetId(), Name: "stolen"}, "name")
	wantCode(t, err, codes.NotFound)
	wantCode(t, mine.DeleteWebhook(ctx(t), hook.GetId()), codes.NotFound)
	wantCode(t, firstErr(mine.ListResponses(ctx(t), hook.GetId(), 0)), codes.NotFound)
	if list := collect(t, mine.ListWebhooks(ctx(t), 0)); len(list) != 0 {
		t.Fatalf("other account sees %v", list)
	}
}

func TestBadTokenIsUnauthenticated(t *testing.T) {
	s := testServer(t)
	c, err := webhookd.New(s.grpcAddr, "not-a-token")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantCode(t, firstErr(c.ListWebhooks(ctx(t), 0)), codes.Unauthenticated)
}

// watch opens a live tail of the webhook's deliveries after cursor ("" = from now) and waits
// for the server's answer, so changes made after it returns are in the tail.
func watch(t *testing.T, c *webhookd.Client, webhookID, cursor string) (webhooksv1.WebhookService_WatchDeliveriesClient, context.CancelFunc) {
	t.Helper()
	tctx, cancel := context.WithCancel(ctx(t))
	tail, err := c.Service.WatchDeliveries(tctx, &webhooksv1.WatchDeliveriesRequest{WebhookId: webhookID, Cursor: cursor})
	if err == nil {
		_, err = tail.Header()
	}
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return tail, cancel
}

func TestWatchDeliveriesResumesFromTheLastCursorAndHealthCountsTheAttempt(t *testing.T) {
	c, r := newClient(t), newReceiver(t)
	hook, err := c.CreateWebhook(ctx(t), &webhooksv1.Webhook{Name: "tail", Url: r.hookURL(), TriggerType: trigger})
	if err != nil {
		t.Fatal(err)
	}
	tail, stop := watch(t, c, hook.GetId(), "")
	collect(t, c.EmitEvent(ctx(t), trigger, event, ""))
	queued, err := tail.Recv()
	if err != nil {
		t.Fatal(err)
	}
	succeeded, err := tail.Recv()
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if queued.GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_QUEUED || succeeded.GetState() != webhooksv1.DeliveryState_DELIVERY_STATE_SUCCEEDED ||
		queued.GetDeliveryId() != succeeded.GetDeliveryId() || queued.GetCursor() == succeeded.GetCursor() {
		t.Fatalf("tail %v, %v", queued, succeeded)
	}

	// Reconnecting with the cursor of QUEUED brings what came after it, nothing before.
	resumed, stop := watch(t, c, hook.GetId(), queued.GetCursor())
	again, err := resumed.Recv()
	stop()
	if err != nil || !proto.Equal(again, succeeded) {
		t.Fatalf("resumed with %v (%v), want %v", again, err, succeeded)
	}

	health, err := c.Service.GetWebhookHealth(ctx(t), &webhooksv1.GetWebhookHealthRequest{WebhookId: hook.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if health.GetBreakerState() != webhooksv1.BreakerState_BREAKER_STATE_CLOSED || health.GetLastSuccessAt() == nil || health.GetFailingSince() != nil {
		t.Fatalf("health %v", health)
	}
	day := health.GetLastDay()
	if day.GetSucceeded() != 1 || day.GetFailed() != 0 || len(health.GetHourly()) != 24 || !proto.Equal(health.GetHourly()[23], health.GetLastHour()) {
		t.Fatalf("health counts %v", health)
	}
}

func TestWatchDeliveriesAndHealthRefuseBadInput(t *testing.T) {
	c := newClient(t)
	tail, err := c.Service.WatchDeliveries(ctx(t), &webhooksv1.WatchDeliveriesRequest{Cursor: "nope"})
	if err == nil {
		_, err = tail.Recv()
	}
	werr := wantCode(t, webhookd.FromStatus(status.Convert(err)), codes.InvalidArgument)
	if _, ok := werr.Violation("cursor"); !ok || len(werr.FieldViolations) != 1 {
		t.Fatalf("violations %v", werr.FieldViolations)
	}
	_, err = c.Service.GetWebhookHealth(ctx(t), &webhooksv1.GetWebhookHealthRequest{WebhookId: "W0000000000000"})
	wantCode(t, webhookd.FromStatus(status.Convert(err)), codes.NotFound)
}
