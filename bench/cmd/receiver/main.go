// Command receiver is the bench's webhook endpoint: a net/http server (HTTP/1.1 keep-alive)
// that answers 200 at once (or after -slow-delay on /slow/...), counts arrivals per sink and
// records the first arrival time of every event id.
//
// Paths:  POST /ok/<sink>    answer 200 at once
//
//	POST /slow/<sink>  sleep -slow-delay, then 200
//	GET  /_stats       {"<sink>": count, ...}
//	GET  /_arrivals?sink=S  {"<event id>": unix-nanos of the first arrival, ...}
//
// The event id comes from the X-Webhookd-Event-Id header, or else the JSON body's
// "event_id" / "id" / "event.id" field.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type sink struct {
	count atomic.Int64
	mu    sync.Mutex
	first map[string]int64
}

type receiver struct {
	mu        sync.RWMutex
	sinks     map[string]*sink
	slowDelay time.Duration
}

func (r *receiver) sink(name string) *sink {
	r.mu.RLock()
	s := r.sinks[name]
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s = r.sinks[name]; s == nil {
		s = &sink{first: make(map[string]int64, 1<<16)}
		r.sinks[name] = s
	}
	return s
}

func eventID(req *http.Request, body []byte) string {
	if id := req.Header.Get("X-Webhookd-Event-Id"); id != "" {
		return id
	}
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, k := range []string{"event_id", "id"} {
		if s, ok := v[k].(string); ok {
			return s
		}
	}
	if ev, ok := v["event"].(map[string]any); ok {
		if s, ok := ev["id"].(string); ok {
			return s
		}
	}
	return ""
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now().UnixNano()
	parts := strings.SplitN(strings.TrimPrefix(req.URL.Path, "/"), "/", 3)
	switch {
	case parts[0] == "_stats":
		r.mu.RLock()
		out := make(map[string]int64, len(r.sinks))
		for k, s := range r.sinks {
			out[k] = s.count.Load()
		}
		r.mu.RUnlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
		return
	case parts[0] == "_arrivals":
		s := r.sink(req.URL.Query().Get("sink"))
		s.mu.Lock()
		b, _ := json.Marshal(s.first)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	case (parts[0] == "ok" || parts[0] == "slow") && len(parts) >= 2:
	default:
		http.NotFound(w, req)
		return
	}
	var body []byte
	if req.Header.Get("X-Webhookd-Event-Id") == "" {
		body, _ = io.ReadAll(io.LimitReader(req.Body, 1<<20))
	} else {
		io.Copy(io.Discard, req.Body)
	}
	s := r.sink(parts[1])
	if id := eventID(req, body); id != "" {
		s.mu.Lock()
		if _, seen := s.first[id]; !seen {
			s.first[id] = now
		}
		s.mu.Unlock()
	}
	if parts[0] == "slow" {
		time.Sleep(r.slowDelay)
	}
	s.count.Add(1)
	w.WriteHeader(http.StatusOK)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	addrFile := flag.String("addr-file", "", "write the bound address here")
	slow := flag.Duration("slow-delay", time.Second, "delay of /slow/ responses")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Fprintln(os.Stderr, "receiver listening on", ln.Addr())
	srv := &http.Server{
		Handler:     &receiver{sinks: map[string]*sink{}, slowDelay: *slow},
		IdleTimeout: 120 * time.Second,
	}
	log.Fatal(srv.Serve(ln))
}
