// Command loadgen drives the webhookd benchmark phases. Every phase prints a human summary on
// stderr and writes one JSON object (its figures) to -out. `loadgen report` turns the JSON
// files of a run into the BENCHMARKS.md section.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/webhookd/webhookd/clients/go/webhookd"
	pb "github.com/webhookd/webhookd/clients/go/webhooksv1"
)

type common struct {
	grpcAddr, httpAddr, admin, recv, out, account string
	conc, conns, batch                            int
	dur                                           time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.grpcAddr, "grpc", "", "webhookd gRPC address")
	fs.StringVar(&c.httpAddr, "http", "", "webhookd HTTP address")
	fs.StringVar(&c.admin, "admin", os.Getenv("WEBHOOKD_ADMIN_TOKEN"), "admin token")
	fs.StringVar(&c.recv, "recv", "", "receiver base URL, e.g. http://127.0.0.1:9000")
	fs.StringVar(&c.out, "out", "", "write the phase's JSON result here")
	fs.StringVar(&c.account, "account", "bench", "account id")
	fs.IntVar(&c.conc, "c", 64, "concurrent requests / streams")
	fs.IntVar(&c.conns, "conns", 4, "gRPC connections")
	fs.IntVar(&c.batch, "batch", 50, "events per EmitEvents call in the throughput and backlog phases (1 = one EmitEvent stream per event)")
	fs.DurationVar(&c.dur, "d", 5*time.Second, "phase duration")
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", a...)
	os.Exit(1)
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

func writeOut(path string, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	if path == "" {
		fmt.Println(string(b))
		return
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		die("%v", err)
	}
}

var httpClient = &http.Client{Transport: &http.Transport{
	MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute,
}, Timeout: 30 * time.Second}

// token creates an account token over the admin REST API.
func (c *common) token() string {
	body, _ := json.Marshal(map[string]any{"account_id": c.account, "scopes": []string{"webhooks:read", "webhooks:write"}})
	req, _ := http.NewRequest("POST", "http://"+c.httpAddr+"/admin/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		die("create token: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		die("create token: %d %s", resp.StatusCode, b)
	}
	var out struct{ Token string }
	json.Unmarshal(b, &out)
	return out.Token
}

func (c *common) clients(token string) []*webhookd.Client {
	var cs []*webhookd.Client
	for range max(c.conns, 1) {
		cl, err := webhookd.New(c.grpcAddr, token)
		if err != nil {
			die("%v", err)
		}
		cs = append(cs, cl)
	}
	return cs
}

func createWebhooks(cl *webhookd.Client, prefix string, urls []string) []string {
	var ids []string
	for i, u := range urls {
		w, err := cl.CreateWebhook(context.Background(), &pb.Webhook{Name: fmt.Sprintf("%s-%d", prefix, i), Url: u})
		if err != nil {
			die("create webhook %s: %v", u, err)
		}
		ids = append(ids, w.Id)
	}
	return ids
}

// ---------- statistics ----------

type lat struct {
	N                           int
	P50ms, P99ms, P999ms, Maxms float64
}

func latencies(ns []int64) lat {
	if len(ns) == 0 {
		return lat{}
	}
	slices.Sort(ns)
	q := func(p float64) float64 {
		i := int(p * float64(len(ns)-1))
		return float64(ns[i]) / 1e6
	}
	return lat{N: len(ns), P50ms: q(0.50), P99ms: q(0.99), P999ms: q(0.999), Maxms: float64(ns[len(ns)-1]) / 1e6}
}

func (l lat) String() string {
	return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, max %.2f ms (n=%d)", l.P50ms, l.P99ms, l.P999ms, l.Maxms, l.N)
}

// ---------- receiver access ----------

func recvStats(recv string) map[string]int64 {
	resp, err := httpClient.Get(recv + "/_stats")
	if err != nil {
		die("receiver stats: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func recvArrivals(recv, sink string) map[string]int64 {
	resp, err := httpClient.Get(recv + "/_arrivals?sink=" + sink)
	if err != nil {
		die("receiver arrivals: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// ---------- emitting ----------

var seq atomic.Int64

func eventData() map[string]any {
	n := seq.Add(1)
	return map[string]any{
		"alert_group":   map[string]any{"id": fmt.Sprintf("AG%08d", n), "title": "bench alert", "state": "firing"},
		"alert_payload": map[string]any{"severity": "critical", "message": "disk full on db-1"},
		"integration":   map[string]any{"id": "CBENCH", "type": "webhook", "name": "bench"},
	}
}

// emitGRPC emits one event and returns its id once the first message (QUEUED) arrived,
// then closes the stream (delivery goes on).
func emitGRPC(cl *webhookd.Client) (string, error) {
	data, err := structpb.NewStruct(eventData())
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := cl.Service.EmitEvent(ctx, &pb.EmitEventRequest{EventType: "alert group created", Data: data})
	if err != nil {
		return "", err
	}
	msg, err := stream.Recv()
	if err == io.EOF {
		return "", nil // nothing matched
	}
	if err != nil {
		return "", err
	}
	return msg.EventId, nil
}

// emitBatchGRPC emits n events with one EmitEvents call (returns when all are durable).
func emitBatchGRPC(cl *webhookd.Client, n int) error {
	events := make([]*pb.EmitEventRequest, n)
	for i := range events {
		data, err := structpb.NewStruct(eventData())
		if err != nil {
			return err
		}
		events[i] = &pb.EmitEventRequest{EventType: "alert group created", Data: data}
	}
	resp, err := cl.Service.EmitEvents(context.Background(), &pb.EmitEventsRequest{Events: events})
	if err != nil {
		return err
	}
	if len(resp.Results) != n {
		return fmt.Errorf("EmitEvents: %d results for %d events", len(resp.Results), n)
	}
	return nil
}

// emitEvents emits `batch` events: one EmitEvents call, or one EmitEvent stream when batch is 1.
func emitEvents(cl *webhookd.Client, batch int) error {
	if batch <= 1 {
		_, err := emitGRPC(cl)
		return err
	}
	return emitBatchGRPC(cl, batch)
}

var errNoREST = errors.New("POST /api/v1/events/ not available (404/405)")

func emitREST(httpAddr, token string) (string, error) {
	d := eventData()
	d["event"] = map[string]any{"type": "alert group created"}
	body, _ := json.Marshal(d)
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/api/v1/events/", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 404 || resp.StatusCode == 405 {
		return "", errNoREST
	}
	if resp.StatusCode != 202 && resp.StatusCode != 200 && resp.StatusCode != 201 {
		return "", fmt.Errorf("POST /api/v1/events/: %d %s", resp.StatusCode, b)
	}
	var out struct{ ID string }
	json.Unmarshal(b, &out)
	return out.ID, nil
}

// closedLoop runs fn from `conc` goroutines for `dur` (pausing while gate() is false) and
// returns the successes, their latencies and the first errors.
func closedLoop(conc int, dur time.Duration, gate func() bool, fn func(worker int) error) (ok int64, lats []int64, errs int64, firstErr error) {
	deadline := time.Now().Add(dur)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []int64
			for time.Now().Before(deadline) {
				if gate != nil && !gate() {
					time.Sleep(2 * time.Millisecond)
					continue
				}
				t := time.Now()
				err := fn(w)
				if err != nil {
					mu.Lock()
					errs++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					if errors.Is(err, errNoREST) {
						return
					}
					continue
				}
				local = append(local, int64(time.Since(t)))
			}
			mu.Lock()
			ok += int64(len(local))
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return
}

// ---------- phases ----------

func phaseCeiling(args []string) {
	fs := flag.NewFlagSet("ceiling", flag.ExitOnError)
	var c common
	c.register(fs)
	fs.Parse(args)
	body := []byte(`{"event":{"type":"alert group created"},"alert_group":{"id":"AG00000001","title":"bench alert","state":"firing"},"alert_payload":{"severity":"critical","message":"disk full on db-1"},"integration":{"id":"CBENCH","type":"webhook","name":"bench"}}`)
	url := c.recv + "/ok/ceiling"
	start := time.Now()
	ok, lats, errs, firstErr := closedLoop(c.conc, c.dur, nil, func(int) error {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Webhookd-Event-Id", fmt.Sprintf("C%d", seq.Add(1)))
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	})
	el := time.Since(start).Seconds()
	l := latencies(lats)
	res := map[string]any{"rps": float64(ok) / el, "requests": ok, "errors": errs, "latency": l, "concurrency": c.conc}
	logf("receiver ceiling: %.0f req/s (%d conns, %.1fs), %s, errors %d %v", float64(ok)/el, c.conc, el, l, errs, firstErr)
	writeOut(c.out, res)
}

func phaseEmit(args []string) {
	fs := flag.NewFlagSet("emit", flag.ExitOnError)
	var c common
	c.register(fs)
	fs.Parse(args)
	token := c.token()
	cls := c.clients(token)
	createWebhooks(cls[0], "emit", []string{c.recv + "/ok/emit"})
	res := map[string]any{}
	start := time.Now()
	ok, lats, errs, firstErr := closedLoop(c.conc, c.dur, nil, func(w int) error {
		_, err := emitGRPC(cls[w%len(cls)])
		return err
	})
	el := time.Since(start).Seconds()
	l := latencies(lats)
	res["grpc"] = map[string]any{"events_per_s": float64(ok) / el, "events": ok, "errors": errs, "accept_latency": l}
	logf("emit gRPC: %.0f events/s accepted (%d streams), time to QUEUED %s, errors %d %v", float64(ok)/el, c.conc, l, errs, firstErr)
	batch := max(c.batch, 2)
	start = time.Now()
	ok, lats, errs, firstErr = closedLoop(c.conc, c.dur, nil, func(w int) error {
		return emitBatchGRPC(cls[w%len(cls)], batch)
	})
	el = time.Since(start).Seconds()
	l = latencies(lats)
	res["grpc_batch"] = map[string]any{"events_per_s": float64(ok*int64(batch)) / el, "events": ok * int64(batch), "batch": batch, "errors": errs, "accept_latency": l}
	logf("emit gRPC EmitEvents: %.0f events/s accepted (%d callers x %d events), time to answer %s, errors %d %v", float64(ok*int64(batch))/el, c.conc, batch, l, errs, firstErr)
	if _, err := emitREST(c.httpAddr, token); errors.Is(err, errNoREST) {
		logf("emit REST: skipped (%v)", err)
		res["rest"] = map[string]any{"skipped": err.Error()}
	} else {
		start = time.Now()
		ok, lats, errs, firstErr = closedLoop(c.conc, c.dur, nil, func(int) error {
			_, err := emitREST(c.httpAddr, token)
			return err
		})
		el = time.Since(start).Seconds()
		l = latencies(lats)
		res["rest"] = map[string]any{"events_per_s": float64(ok) / el, "events": ok, "errors": errs, "accept_latency": l}
		logf("emit REST: %.0f events/s accepted (%d conns), time to 202 %s, errors %d %v", float64(ok)/el, c.conc, l, errs, firstErr)
	}
	writeOut(c.out, res)
}

// throughput emits at full speed (capped backlog) and measures the deliveries/s that reach
// the sink between warmup and the end of the phase.
func throughput(c *common, cls []*webhookd.Client, sink string, perEvent int, maxBacklog int64, warmup time.Duration) map[string]any {
	var emitted atomic.Int64
	var arrived atomic.Int64
	base := recvStats(c.recv)[sink]
	stop := make(chan struct{})
	type sample struct {
		t time.Time
		n int64
	}
	var samples []sample
	var smu sync.Mutex
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := recvStats(c.recv)[sink] - base
				arrived.Store(n)
				smu.Lock()
				samples = append(samples, sample{time.Now(), n})
				smu.Unlock()
			}
		}
	}()
	gate := func() bool { return emitted.Load()*int64(perEvent)-arrived.Load() < maxBacklog }
	// About c.batch deliveries per call: with 100 webhooks per event, one event is plenty.
	batch := max(c.batch/perEvent, 1)
	start := time.Now()
	calls, lats, errs, firstErr := closedLoop(c.conc, c.dur, gate, func(w int) error {
		err := emitEvents(cls[w%len(cls)], batch)
		if err == nil {
			emitted.Add(int64(batch))
		}
		return err
	})
	ok := calls * int64(batch)
	el := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	smu.Lock()
	defer smu.Unlock()
	// deliveries/s over [warmup, end]
	var a, b sample
	for _, s := range samples {
		if a.t.IsZero() && s.t.Sub(start) >= warmup {
			a = s
		}
		if s.t.Sub(start) <= el {
			b = s
		}
	}
	win := b.t.Sub(a.t).Seconds()
	dps := 0.0
	if win > 0 {
		dps = float64(b.n-a.n) / win
	}
	if firstErr != nil {
		logf("  emit errors: %d, first: %v", errs, firstErr)
	}
	return map[string]any{
		"deliveries_per_s": dps, "events_per_s": dps / float64(perEvent), "webhooks": perEvent,
		"emitted_events": ok, "emitted_per_s": float64(ok) / el.Seconds(), "emit_errors": errs,
		"window_s": win, "arrived": b.n, "backlog_at_end": ok*int64(perEvent) - b.n,
		"accept_latency": latencies(lats), "batch": batch,
	}
}

// openLoop emits at a fixed rate for dur and returns the emit->arrival latencies of sink.
func openLoop(c *common, cls []*webhookd.Client, sink string, rate int, drain time.Duration) map[string]any {
	type sent struct {
		id string
		t  int64
	}
	var mu sync.Mutex
	var sents []sent
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	inflight := make(chan struct{}, 4096)
	interval := time.Second / time.Duration(rate)
	total := int(c.dur.Seconds() * float64(rate))
	start := time.Now()
	dropped := 0
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		select {
		case inflight <- struct{}{}:
		default:
			dropped++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			t := time.Now().UnixNano()
			id, err := emitGRPC(cls[i%len(cls)])
			if err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			mu.Lock()
			sents = append(sents, sent{id, t})
			mu.Unlock()
		}()
	}
	wg.Wait()
	achieved := float64(len(sents)) / time.Since(start).Seconds()
	deadline := time.Now().Add(drain)
	var arr map[string]int64
	for {
		arr = recvArrivals(c.recv, sink)
		missing := 0
		for _, s := range sents {
			if _, ok := arr[s.id]; !ok {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ls []int64
	missing := 0
	for _, s := range sents {
		if a, ok := arr[s.id]; ok {
			ls = append(ls, a-s.t)
		} else {
			missing++
		}
	}
	l := latencies(ls)
	fe, _ := firstErr.Load().(string)
	return map[string]any{"target_rate": rate, "achieved_rate": achieved, "emitted": len(sents), "missing": missing,
		"not_sent_client_saturated": dropped, "emit_errors": errs.Load(), "first_error": fe, "latency": l}
}

func phaseE2E(args []string) {
	fs := flag.NewFlagSet("e2e", flag.ExitOnError)
	var c common
	c.register(fs)
	n := fs.Int("webhooks", 1, "webhooks matching each event")
	backlog := fs.Int64("max-backlog", 20000, "pause emitting while this many deliveries are outstanding")
	warm := fs.Duration("warmup", 2*time.Second, "ignore arrivals before this")
	fs.Parse(args)
	c.account = fmt.Sprintf("bench-e2e-%d", *n)
	cls := c.clients(c.token())
	sink := fmt.Sprintf("e2e%d", *n)
	urls := make([]string, *n)
	for i := range urls {
		urls[i] = c.recv + "/ok/" + sink
	}
	createWebhooks(cls[0], sink, urls)
	r := throughput(&c, cls, sink, *n, *backlog, *warm)
	logf("end-to-end, %d webhook(s)/event: %.0f events/s delivered = %.0f deliveries/s (emitted %.0f ev/s, backlog at end %v)",
		*n, r["events_per_s"], r["deliveries_per_s"], r["emitted_per_s"], r["backlog_at_end"])
	writeOut(c.out, r)
}

func phaseLatency(args []string) {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	var c common
	c.register(fs)
	rate := fs.Int("rate", 1000, "events/s")
	fs.Parse(args)
	c.account = "bench-latency"
	cls := c.clients(c.token())
	createWebhooks(cls[0], "lat", []string{c.recv + "/ok/lat"})
	r := openLoop(&c, cls, "lat", *rate, 10*time.Second)
	logf("emit->arrival at %d ev/s (achieved %.0f): %s, missing %v", *rate, r["achieved_rate"], r["latency"], r["missing"])
	writeOut(c.out, r)
}

func phaseCRUD(args []string) {
	fs := flag.NewFlagSet("crud", flag.ExitOnError)
	var c common
	c.register(fs)
	n := fs.Int("webhooks", 100, "webhooks in the account")
	fs.Parse(args)
	c.account = "bench-crud"
	cls := c.clients(c.token())
	urls := make([]string, *n)
	for i := range urls {
		urls[i] = c.recv + "/ok/crud"
	}
	ids := createWebhooks(cls[0], "crud", urls)
	res := map[string]any{"webhooks": *n}
	start := time.Now()
	ok, lats, errs, firstErr := closedLoop(c.conc, c.dur, nil, func(w int) error {
		_, err := cls[w%len(cls)].Service.GetWebhook(context.Background(), &pb.GetWebhookRequest{Id: ids[int(seq.Add(1))%len(ids)]})
		return err
	})
	el := time.Since(start).Seconds()
	res["get"] = map[string]any{"rps": float64(ok) / el, "errors": errs, "latency": latencies(lats)}
	logf("GetWebhook: %.0f req/s (%d concurrent), %s, errors %d %v", float64(ok)/el, c.conc, latencies(lats), errs, firstErr)
	start = time.Now()
	ok, lats, errs, firstErr = closedLoop(c.conc, c.dur, nil, func(w int) error {
		_, err := cls[w%len(cls)].Service.ListWebhooks(context.Background(), &pb.ListWebhooksRequest{PageSize: 50})
		return err
	})
	el = time.Since(start).Seconds()
	res["list"] = map[string]any{"rps": float64(ok) / el, "errors": errs, "latency": latencies(lats), "page_size": 50}
	logf("ListWebhooks (page 50 of %d): %.0f req/s (%d concurrent), %s, errors %d %v", *n, float64(ok)/el, c.conc, latencies(lats), errs, firstErr)
	writeOut(c.out, res)
}

// phaseNeighbours measures a healthy endpoint (its own account and events, as phases 3 and 4)
// while another account's events go, at a steady rate, to a slow (1 s) and a dead endpoint:
// what a bad endpoint costs everybody else.
func phaseNeighbours(args []string) {
	fs := flag.NewFlagSet("neighbours", flag.ExitOnError)
	var c common
	c.register(fs)
	dead := fs.String("dead", "http://127.0.0.1:9/dead", "URL nobody listens on")
	rate := fs.Int("rate", 1000, "events/s of the latency part")
	latDur := fs.Duration("latency-d", 10*time.Second, "duration of the latency part")
	backlog := fs.Int64("max-backlog", 20000, "pause emitting while this many healthy deliveries are outstanding")
	badRate := fs.Int("neighbour-rate", 200, "events/s sent meanwhile to the slow and the dead endpoint (each event to both)")
	control := fs.Bool("control", false, "the neighbours' two endpoints are healthy too (the same traffic without the failures)")
	sinkName := fs.String("sink", "", "receiver sink of the healthy endpoint (default nb, nbctl with -control); one per run")
	fs.Parse(args)

	c.account = "bench-neighbours-bad"
	bad := c.clients(c.token())
	neighbours := []string{c.recv + "/slow/nbslow", *dead}
	if *control {
		neighbours = []string{c.recv + "/ok/nbctlneighbour1", c.recv + "/ok/nbctlneighbour2"}
	}
	createWebhooks(bad[0], "bad", neighbours)
	logf("neighbours: %d ev/s to %v, beside a healthy endpoint", *badRate, neighbours)
	var badEmitted atomic.Int64
	var badErr atomic.Value
	stopBad := make(chan struct{})
	badDone := make(chan struct{})
	badStart := time.Now()
	go func() {
		defer close(badDone)
		const ticks = 20 // per second
		per := max(*badRate/ticks, 1)
		t := time.NewTicker(time.Second / ticks)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopBad:
				return
			case <-t.C:
				if err := emitBatchGRPC(bad[i%len(bad)], per); err != nil {
					badErr.CompareAndSwap(nil, err.Error())
					continue
				}
				badEmitted.Add(int64(per))
			}
		}
	}()
	time.Sleep(2 * time.Second) // the slow endpoint's queue and the dead one's breaker are up

	// Sinks of their own: the receiver keeps counting across phases, and event ids restart
	// with every fresh data dir.
	sink := *sinkName
	if sink == "" && *control {
		sink = "nbctl"
	} else if sink == "" {
		sink = "nb"
	}
	c.account = "bench-neighbours"
	cls := c.clients(c.token())
	createWebhooks(cls[0], sink, []string{c.recv + "/ok/" + sink})
	tp := throughput(&c, cls, sink, 1, *backlog, 2*time.Second)
	logf("  healthy throughput: %.0f events/s delivered (emitted %.0f ev/s)", tp["events_per_s"], tp["emitted_per_s"])
	// As in phase 4, the latency part starts without a healthy backlog still being delivered.
	drainUntil := time.Now().Add(60 * time.Second)
	for recvStats(c.recv)[sink] < tp["emitted_events"].(int64) && time.Now().Before(drainUntil) {
		time.Sleep(100 * time.Millisecond)
	}
	c.account = "bench-neighbours-lat"
	cls2 := c.clients(c.token())
	createWebhooks(cls2[0], sink+"l", []string{c.recv + "/ok/" + sink + "lat"})
	c.dur = *latDur
	lr := openLoop(&c, cls2, sink+"lat", *rate, 10*time.Second)
	logf("  healthy emit->arrival at %d ev/s (achieved %.0f): %s, missing %v", *rate, lr["achieved_rate"], lr["latency"], lr["missing"])
	close(stopBad)
	<-badDone
	achieved := float64(badEmitted.Load()) / time.Since(badStart).Seconds()
	be, _ := badErr.Load().(string)
	logf("  neighbour events: %d (%.0f ev/s) %s", badEmitted.Load(), achieved, be)
	st := recvStats(c.recv)
	writeOut(c.out, map[string]any{"throughput": tp, "latency": lr, "slow_arrivals": st["nbslow"], "control": *control,
		"neighbour_rate": *badRate, "neighbour_achieved_rate": achieved, "neighbour_events": badEmitted.Load(), "neighbour_error": be})
}

// backlog queues n deliveries to a dead endpoint: events in EmitEvents batches, each
// matching `webhooks` webhooks of that endpoint (n/webhooks events, the fastest honest way to
// queue many deliveries).
func phaseBacklog(args []string) {
	fs := flag.NewFlagSet("backlog", flag.ExitOnError)
	var c common
	c.register(fs)
	n := fs.Int64("n", 1000000, "deliveries to queue")
	webhooks := fs.Int64("webhooks", 1, "dead webhooks each event matches (deliveries per event)")
	dead := fs.String("dead", "http://127.0.0.1:9/dead", "URL nobody listens on")
	fs.Parse(args)
	c.account = "bench-backlog"
	cls := c.clients(c.token())
	per := max(*webhooks, 1)
	urls := make([]string, per)
	for i := range urls {
		urls[i] = *dead
	}
	createWebhooks(cls[0], "backlog", urls)
	events := (*n + per - 1) / per
	var done atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range c.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := int64(max(c.batch, 1))
			for {
				end := done.Add(batch)
				if end-batch >= events {
					return
				}
				if err := emitEvents(cls[w%len(cls)], int(min(batch, events-(end-batch)))); err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fe, _ := firstErr.Load().(string)
	*n = events * per
	logf("backlog: queued %d deliveries in %.1fs (%.0f/s) %s", *n, el, float64(*n)/el, fe)
	writeOut(c.out, map[string]any{"queued": *n, "events": events, "webhooks": per, "seconds": el, "first_error": fe})
}

func main() {
	if len(os.Args) < 2 {
		die("usage: loadgen ceiling|emit|e2e|latency|crud|neighbours|backlog|median|report [flags]")
	}
	phases := map[string]func([]string){
		"median":  phaseMedian,
		"ceiling": phaseCeiling, "emit": phaseEmit, "e2e": phaseE2E, "latency": phaseLatency,
		"crud": phaseCRUD, "neighbours": phaseNeighbours, "backlog": phaseBacklog,
		"report": phaseReport,
	}
	f, ok := phases[os.Args[1]]
	if !ok {
		die("unknown phase %q", os.Args[1])
	}
	f(os.Args[2:])
}

// phaseMedian merges the JSON results of repeated runs: every number becomes the median of the
// runs' numbers at the same place; "runs" keeps each run's result.
func phaseMedian(args []string) {
	fs := flag.NewFlagSet("median", flag.ExitOnError)
	out := fs.String("out", "", "merged result")
	fs.Parse(args)
	var runs []any
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			die("%v", err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			die("%s: %v", path, err)
		}
		runs = append(runs, v)
	}
	if len(runs) == 0 {
		die("median: no results")
	}
	merged, _ := medianOf(runs).(map[string]any)
	merged["runs"] = runs
	writeOut(*out, merged)
}

func medianOf(values []any) any {
	switch first := values[0].(type) {
	case float64:
		var fs []float64
		for _, v := range values {
			if f, ok := v.(float64); ok {
				fs = append(fs, f)
			}
		}
		slices.Sort(fs)
		return fs[len(fs)/2]
	case map[string]any:
		m := map[string]any{}
		for k := range first {
			var vs []any
			for _, v := range values {
				if mv, ok := v.(map[string]any); ok {
					if x, ok := mv[k]; ok {
						vs = append(vs, x)
					}
				}
			}
			m[k] = medianOf(vs)
		}
		return m
	default:
		return first
	}
}
