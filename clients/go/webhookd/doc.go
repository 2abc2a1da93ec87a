// Package webhookd is a small client of webhookd's gRPC API (package webhooks.v1).
//
// It wraps the generated [webhooksv1] package: it sends the account token on every call,
// turns paged lists and the EmitEvent stream into iterators, emits batches of events with
// [Client.EmitEvents] (one call, one result per event), and returns errors as *[Error],
// which carries the gRPC code and the google.rpc.BadRequest field violations.
//
//	c, err := webhookd.New("127.0.0.1:50051", token)
//	if err != nil { ... }
//	defer c.Close()
//	hook, err := c.CreateWebhook(ctx, &webhooksv1.Webhook{
//		Name: "ops", Url: "https://example.com/hook", TriggerType: "alert group created",
//	})
//	for st, err := range c.EmitEvent(ctx, "alert group created", map[string]any{"alert_group": map[string]any{"id": "AG1"}}, "") {
//		if err != nil { ... }
//		fmt.Println(st.GetWebhookId(), st.GetState(), st.GetStatusCode())
//	}
//
// The generated client stays available as [Client.Service] for calls the wrapper does not cover.
package webhookd
