package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// phaseReport renders the Go phases' JSON results of one run (-dir) as Markdown on stdout
// (bench/run puts the machine description and the Rust tools' part before it).
func phaseReport(args []string) {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", "", "results directory")
	fs.Parse(args)
	load := func(name string) map[string]any {
		b, err := os.ReadFile(filepath.Join(*dir, name+".json"))
		if err != nil {
			return nil
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	get := func(m map[string]any, path ...string) float64 {
		var cur any = m
		for _, p := range path {
			mm, ok := cur.(map[string]any)
			if !ok {
				return -1
			}
			cur = mm[p]
		}
		f, ok := cur.(float64)
		if !ok {
			return -1
		}
		return f
	}
	rss := func(phase string) string {
		b, err := os.ReadFile(filepath.Join(*dir, "rss_"+phase+".txt"))
		if err != nil {
			return "n/a"
		}
		return strings.TrimSpace(string(b))
	}
	num := func(f float64, unit string) string {
		if f < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f%s", f, unit)
	}
	ms := func(f float64) string {
		if f < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f ms", f)
	}
	var b strings.Builder
	ceil := load("ceiling")
	c := get(ceil, "rps")
	fmt.Fprintf(&b, "\n| # | figure | result | ratio to receiver ceiling | peak RSS (VmHWM) |\n|---|---|---|---|---|\n")
	if ceil != nil {
		fmt.Fprintf(&b, "| 1 | receiver ceiling (Go client -> receiver, %v conns) | %s | 100%% | - |\n", get(ceil, "concurrency"), num(c, " req/s"))
	}
	ratio := func(f float64) string {
		if f < 0 || c <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f%%", 100*f/c)
	}
	em := load("emit")
	if em != nil {
		fmt.Fprintf(&b, "| 2a | emit via gRPC EmitEvent (64 streams, to first QUEUED) | %s, p50 %s, p99 %s | %s | %s |\n",
			num(get(em, "grpc", "events_per_s"), " events/s"), ms(get(em, "grpc", "accept_latency", "P50ms")), ms(get(em, "grpc", "accept_latency", "P99ms")),
			ratio(get(em, "grpc", "events_per_s")), rss("emit"))
		if _, ok := em["grpc_batch"].(map[string]any); ok {
			fmt.Fprintf(&b, "| 2c | emit via gRPC EmitEvents (64 callers x %s events, to the answer) | %s, p50 %s, p99 %s per call | %s | %s |\n",
				num(get(em, "grpc_batch", "batch"), ""), num(get(em, "grpc_batch", "events_per_s"), " events/s"), ms(get(em, "grpc_batch", "accept_latency", "P50ms")),
				ms(get(em, "grpc_batch", "accept_latency", "P99ms")), ratio(get(em, "grpc_batch", "events_per_s")), rss("emit"))
		}
		if rest, ok := em["rest"].(map[string]any); ok && rest["skipped"] != nil {
			fmt.Fprintf(&b, "| 2b | emit via POST /api/v1/events/ | skipped: %v | - | - |\n", rest["skipped"])
		} else {
			fmt.Fprintf(&b, "| 2b | emit via POST /api/v1/events/ (64 conns, to 202) | %s, p50 %s, p99 %s | %s | %s |\n",
				num(get(em, "rest", "events_per_s"), " events/s"), ms(get(em, "rest", "accept_latency", "P50ms")), ms(get(em, "rest", "accept_latency", "P99ms")),
				ratio(get(em, "rest", "events_per_s")), rss("emit"))
		}
	}
	for _, n := range []string{"1", "10", "100"} {
		e := load("e2e" + n)
		if e == nil {
			continue
		}
		fmt.Fprintf(&b, "| 3 | end-to-end, %s webhook(s) per event (emitted in batches of %s) | %s delivered = %s (emitted %s, backlog at end %s) | %s (deliveries) | %s |\n",
			n, num(get(e, "batch"), ""), num(get(e, "events_per_s"), " events/s"), num(get(e, "deliveries_per_s"), " deliveries/s"),
			num(get(e, "emitted_per_s"), " ev/s"), num(get(e, "backlog_at_end"), ""), ratio(get(e, "deliveries_per_s")), rss("e2e"+n))
	}
	lt := load("latency")
	if lt != nil {
		fmt.Fprintf(&b, "| 4 | emit->arrival at %s (achieved %s), 1 webhook | p50 %s, p99 %s, p999 %s, max %s (missing %s) | - | %s |\n",
			num(get(lt, "target_rate"), " ev/s"), num(get(lt, "achieved_rate"), " ev/s"), ms(get(lt, "latency", "P50ms")), ms(get(lt, "latency", "P99ms")),
			ms(get(lt, "latency", "P999ms")), ms(get(lt, "latency", "Maxms")), num(get(lt, "missing"), ""), rss("latency"))
	}
	cr := load("crud")
	if cr != nil {
		fmt.Fprintf(&b, "| 5a | GetWebhook (gRPC, 64 concurrent) | %s, p99 %s | %s | %s |\n", num(get(cr, "get", "rps"), " req/s"), ms(get(cr, "get", "latency", "P99ms")), ratio(get(cr, "get", "rps")), rss("crud"))
		fmt.Fprintf(&b, "| 5b | ListWebhooks page 50 of 100 (gRPC, 64 concurrent) | %s, p99 %s | %s | %s |\n", num(get(cr, "list", "rps"), " req/s"), ms(get(cr, "list", "latency", "P99ms")), ratio(get(cr, "list", "rps")), rss("crud"))
	}
	nb := load("neighbours")
	if nb != nil {
		fmt.Fprintf(&b, "| 6a | healthy endpoint while %s ev/s of another account go to a slow (1 s) + a dead endpoint: throughput (batches of %s) | %s delivered (emitted %s) | %s | %s |\n",
			num(get(nb, "neighbour_achieved_rate"), ""), num(get(nb, "throughput", "batch"), ""), num(get(nb, "throughput", "events_per_s"), " events/s"),
			num(get(nb, "throughput", "emitted_per_s"), " ev/s"), ratio(get(nb, "throughput", "deliveries_per_s")), rss("neighbours"))
		fmt.Fprintf(&b, "| 6b | the same: healthy emit->arrival at %s (achieved %s) | p50 %s, p99 %s, p999 %s (missing %s) | - | %s |\n",
			num(get(nb, "latency", "target_rate"), " ev/s"), num(get(nb, "latency", "achieved_rate"), " ev/s"), ms(get(nb, "latency", "latency", "P50ms")), ms(get(nb, "latency", "latency", "P99ms")),
			ms(get(nb, "latency", "latency", "P999ms")), num(get(nb, "latency", "missing"), ""), rss("neighbours"))
	}
	if runs, ok := nb["runs"].([]any); ok && len(runs) > 1 {
		var each []string
		for i, r := range runs {
			rm, _ := r.(map[string]any)
			cm, _ := load("neighbours_control")["runs"].([]any)
			var c map[string]any
			if i < len(cm) {
				c, _ = cm[i].(map[string]any)
			}
			each = append(each, fmt.Sprintf("run %d: %s vs control %s events/s, p99 %s vs %s", i+1,
				num(get(rm, "throughput", "events_per_s"), ""), num(get(c, "throughput", "events_per_s"), ""),
				ms(get(rm, "latency", "latency", "P99ms")), ms(get(c, "latency", "latency", "P99ms"))))
		}
		fmt.Fprintf(&b, "| 6* | phase 6 figures are medians of %d alternating runs | %s | - | - |\n", len(runs), strings.Join(each, "; "))
	}
	ctl := load("neighbours_control")
	if ctl != nil {
		fmt.Fprintf(&b, "| 6c | control: the same, the neighbours' two endpoints healthy (%s ev/s): throughput | %s delivered (emitted %s) | %s | %s |\n",
			num(get(ctl, "neighbour_achieved_rate"), ""), num(get(ctl, "throughput", "events_per_s"), " events/s"),
			num(get(ctl, "throughput", "emitted_per_s"), " ev/s"), ratio(get(ctl, "throughput", "deliveries_per_s")), rss("neighbours_control"))
		fmt.Fprintf(&b, "| 6d | control: healthy emit->arrival at %s (achieved %s) | p50 %s, p99 %s, p999 %s (missing %s) | - | %s |\n",
			num(get(ctl, "latency", "target_rate"), " ev/s"), num(get(ctl, "latency", "achieved_rate"), " ev/s"), ms(get(ctl, "latency", "latency", "P50ms")), ms(get(ctl, "latency", "latency", "P99ms")),
			ms(get(ctl, "latency", "latency", "P999ms")), num(get(ctl, "latency", "missing"), ""), rss("neighbours_control"))
	}
	if bl := load("backlog"); bl != nil {
		fmt.Fprintf(&b, "| 7 | backlog: %s deliveries (%s events x %s webhooks) queued to a dead endpoint in %.1f s | peak RSS %s while queueing and holding it; restart ready in %s s, peak RSS %s 5 s after the restart | - | %s |\n",
			num(get(bl, "queued"), ""), num(get(bl, "events"), ""), num(get(bl, "webhooks"), ""), get(bl, "seconds"), rss("backlog"), rss("backlog_restart_s"), rss("backlog_restarted"), rss("backlog"))
	}

	// targets
	pass := func(ok bool, known bool) string {
		if !known {
			return "n/a"
		}
		if ok {
			return "**met**"
		}
		return "**MISSED**"
	}
	e1 := get(load("e2e1"), "deliveries_per_s")
	p99 := get(lt, "latency", "P99ms")
	nbT := get(nb, "throughput", "events_per_s")
	e1ev := get(load("e2e1"), "events_per_s")
	nbP99 := get(nb, "latency", "latency", "P99ms")
	drop := -1.0
	if e1ev > 0 && nbT >= 0 {
		drop = 100 * (1 - nbT/e1ev)
	}
	latRise := -1.0
	if p99 > 0 && nbP99 >= 0 {
		latRise = 100 * (nbP99/p99 - 1)
	}
	fmt.Fprintf(&b, "\n| target (issue 7) | measured | verdict |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| delivered events/s (1 webhook) >= 40%% of receiver ceiling | %s of %s = %s | %s |\n", num(e1, "/s"), num(c, "/s"), ratio(e1), pass(c > 0 && e1 >= 0.4*c, c > 0 && e1 >= 0))
	for _, n := range []string{"10", "100"} {
		d := get(load("e2e"+n), "deliveries_per_s")
		fmt.Fprintf(&b, "| deliveries/s (%s webhooks/event) >= 40%% of receiver ceiling | %s = %s | %s |\n", n, num(d, "/s"), ratio(d), pass(c > 0 && d >= 0.4*c, c > 0 && d >= 0))
	}
	ach := get(lt, "achieved_rate")
	fmt.Fprintf(&b, "| p99 emit->arrival < 10 ms at 1,000 events/s | %s (at %s, missing %s) | %s |\n", ms(p99), num(ach, " ev/s"), num(get(lt, "missing"), ""),
		pass(p99 < 10 && ach >= 950 && get(lt, "missing") == 0, p99 >= 0))
	fmt.Fprintf(&b, "| healthy throughput drop <= 10%% beside slow + dead | %s vs %s alone: drop %.1f%% | %s |\n", num(nbT, " ev/s"), num(e1ev, " ev/s"), drop, pass(drop <= 10, drop > -1e9 && nbT >= 0 && e1ev > 0))
	fmt.Fprintf(&b, "| healthy p99 latency rise <= 10%% beside slow + dead | %s vs %s alone: %+.1f%% | %s |\n", ms(nbP99), ms(p99), latRise, pass(latRise <= 10 && get(nb, "latency", "missing") == 0, p99 > 0 && nbP99 >= 0))
	if ctl != nil && nb != nil {
		ctlT, ctlP99 := get(ctl, "throughput", "events_per_s"), get(ctl, "latency", "latency", "P99ms")
		fmt.Fprintf(&b, "| (fairness) slow + dead neighbours vs the same traffic to healthy ones: healthy throughput within 10%% | %s vs %s: %+.1f%% | %s |\n",
			num(nbT, " ev/s"), num(ctlT, " ev/s"), 100*(nbT/ctlT-1), pass(nbT >= 0.9*ctlT, ctlT > 0 && nbT >= 0))
		fmt.Fprintf(&b, "| (fairness) the same: healthy p99 within 10%% | %s vs %s: %+.1f%% | %s |\n",
			ms(nbP99), ms(ctlP99), 100*(nbP99/ctlP99-1), pass(nbP99 <= 1.1*ctlP99, ctlP99 > 0 && nbP99 >= 0))
	}
	if bl := load("backlog"); bl != nil {
		var secs float64
		_, err := fmt.Sscan(rss("backlog_restart_s"), &secs)
		fmt.Fprintf(&b, "| restart with a backlog of %s deliveries ready in < 2 s (10,000,000 in issue 14) | %s s | %s |\n",
			num(get(bl, "queued"), ""), rss("backlog_restart_s"), pass(secs < 2, err == nil))
		var mb float64
		_, err = fmt.Sscanf(rss("backlog"), "%f MB", &mb)
		fmt.Fprintf(&b, "| peak RSS <= 300 MB with that backlog | %s | %s |\n", rss("backlog"), pass(mb <= 300, err == nil))
	} else {
		fmt.Fprintf(&b, "| memory bounded + restart < 5 s with 1,000,000 backlog | not run (use `bench/run --backlog 1000000`) | n/a |\n")
	}
	fmt.Print(b.String())
}
