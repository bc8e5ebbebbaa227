package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// logEvents are the moments of one member's bootstrap, read from its log.
type logEvents struct {
	abs       map[string]time.Time
	at        map[string]time.Duration // relative to the launch
	leadWaits []time.Duration
}

// gap is the time from event from to event to, if both were seen.
func (e logEvents) gap(from, to string) (time.Duration, bool) {
	a, ok1 := e.abs[from]
	b, ok2 := e.abs[to]
	return b.Sub(a), ok1 && ok2
}

// The events, in the order they happen, and the log lines that mark them.
// Agent lines are log/slog text; etcd 3.4 lines are capnslog.
var (
	phaseOrder = []string{"env", "released", "exec", "configured", "member", "ready"}

	agentEvents = map[string]string{
		"starting":               "up",
		"registered":             "registered",
		"wrote environment file": "env",
		"lead member serves":     "released",
		"lead member did not answer in time; starting anyway":  "released",
		"this member has the lowest peer URL and starts first": "released",
	}
	etcdEvents = map[string]string{
		"etcdmain: etcd Version:":                  "exec",
		"embed: advertise client URLs":             "configured",
		"etcdserver: starting member":              "member",
		"embed: ready to serve client requests":    "ready",
		"etcdmain: ready to serve client requests": "ready",
	}

	// etcd 3.5+ logs JSON lines (zap); "up" is marked only if the agent
	// did not start first.
	zapEvents = map[string][]string{
		"Running: ":                             {"up", "exec"},
		"register member itself successfully":   {"registered"},
		"discovery joined cluster successfully": {"env"},
		"starting local member":                 {"member"},
		"ready to serve client requests":        {"ready"},
	}

	slogLine   = regexp.MustCompile(`^time=(\S+) level=\S+ msg=("(?:[^"\\]|\\.)*"|\S+)`)
	slogWaited = regexp.MustCompile(` waited=(\S+)`)
	capnsLine  = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) [A-Z] \| (.*)$`)
)

// parseLog reads the events of one member's combined agent and etcd log;
// the first occurrence of each event counts.
func parseLog(log string, t0 time.Time) logEvents {
	ev := logEvents{abs: map[string]time.Time{}, at: map[string]time.Duration{}}
	mark := func(name string, t time.Time) {
		if _, seen := ev.abs[name]; !seen {
			ev.abs[name] = t
			ev.at[name] = t.Sub(t0)
		}
	}
	for line := range strings.Lines(log) {
		line = strings.TrimRight(line, "\r\n")
		if m := slogLine.FindStringSubmatch(line); m != nil {
			t, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				continue
			}
			msg := m[2]
			if u, err := strconv.Unquote(msg); err == nil {
				msg = u
			}
			name, ok := agentEvents[msg]
			if !ok {
				continue
			}
			mark(name, t)
			if w := slogWaited.FindStringSubmatch(line); w != nil && msg != "this member has the lowest peer URL and starts first" {
				if d, err := time.ParseDuration(w[1]); err == nil {
					ev.leadWaits = append(ev.leadWaits, d)
				}
			}
			continue
		}
		if strings.HasPrefix(line, "{") {
			var z struct{ Ts, Msg string }
			if json.Unmarshal([]byte(line), &z) != nil {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, z.Ts)
			if err != nil {
				continue
			}
			for _, name := range zapEvents[z.Msg] {
				mark(name, t)
			}
			continue
		}
		if m := capnsLine.FindStringSubmatch(line); m != nil {
			t, err := time.ParseInLocation("2006-01-02 15:04:05.000000", m[1], time.Local)
			if err != nil {
				continue
			}
			for prefix, name := range etcdEvents {
				if strings.HasPrefix(m[2], prefix) {
					mark(name, t)
				}
			}
		}
	}
	return ev
}

// f3 is x with three decimals, as the reports give seconds.
func f3(x float64) string { return fmt.Sprintf("%.3f", x) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// roundSample is a sample of either token benchmark (sample, v3Sample).
type roundSample interface{ result() outcome }

func (o outcome) result() outcome { return o }

func secsOf[S roundSample](ss []S) []float64 {
	var xs []float64
	for _, s := range ss {
		xs = append(xs, s.result().secs)
	}
	return xs
}

// phaseSecs are, per round, the seconds after the launch at which the last
// member reached event ph (rounds where no member logged it are left out).
func phaseSecs[S roundSample](ss []S, ph string) []float64 {
	var xs []float64
	for _, s := range ss {
		if d, ok := s.result().last[ph]; ok {
			xs = append(xs, d.Seconds())
		}
	}
	return xs
}

// ratioCI is a 90% bootstrap confidence interval of median(x)/median(y),
// resampling both independently (fixed seed, so a report is reproducible
// from its samples).
func ratioCI(x, y []float64) (lo, hi float64) {
	if len(x) == 0 || len(y) == 0 {
		return 0, 0
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const iters = 4000
	ratios := make([]float64, iters)
	rx, ry := make([]float64, len(x)), make([]float64, len(y))
	for i := range ratios {
		for j := range rx {
			rx[j] = x[rng.IntN(len(x))]
		}
		for j := range ry {
			ry[j] = y[rng.IntN(len(y))]
		}
		ratios[i] = median(rx) / median(ry)
	}
	slices.Sort(ratios)
	return ratios[iters*5/100], ratios[iters*95/100]
}

// shift is the Hodges-Lehmann estimate of how much x is later than y: the
// median of all differences x[i]-y[j].
func shift(x, y []float64) float64 {
	var d []float64
	for _, a := range x {
		for _, b := range y {
			d = append(d, a-b)
		}
	}
	return median(d)
}

func reqsPerMember(ss []sample) []float64 {
	var xs []float64
	for _, s := range ss {
		xs = append(xs, float64(s.reqs)/float64(s.n))
	}
	return xs
}

func usesRegistry(m string) bool { return m != methodStatic }

// metrics are the numbers reported for size n, by unit.
func metrics(results map[string][]sample, n int) map[string]float64 {
	out := map[string]float64{}
	med := map[string]float64{}
	for _, m := range methods {
		ss := results[key(m, n)]
		if len(ss) == 0 {
			continue
		}
		xs := secsOf(ss)
		med[m] = median(xs)
		out[m+"-median-s"] = med[m]
		out[m+"-min-s"] = slices.Min(xs)
		out[m+"-max-s"] = slices.Max(xs)
		if usesRegistry(m) {
			out["reqs/member-"+m] = median(reqsPerMember(ss))
		}
		if st := phaseSecs(ss, "member"); len(st) > 0 {
			out[m+"-started-s"] = median(st)
		}
	}
	for _, r := range [][2]string{{methodAgent, methodDiscovery}, {methodAgent, methodStatic}, {methodAgentNoWait, methodDiscovery}, {methodAgentNoWait, methodStatic}} {
		if med[r[0]] > 0 && med[r[1]] > 0 {
			out[r[0]+"/"+r[1]] = med[r[0]] / med[r[1]]
		}
	}
	if x, y := secsOf(results[key(methodAgent, n)]), secsOf(results[key(methodDiscovery, n)]); len(x) > 0 && len(y) > 0 {
		out["a-b-shift-s"] = shift(x, y)
		out["reqs/member-a/b"] = median(reqsPerMember(results[key(methodAgent, n)])) / median(reqsPerMember(results[key(methodDiscovery, n)]))
	}
	return out
}

// report renders the results of BenchmarkBootstrap as the markdown of its
// section of BENCHMARKS.md.
func report(results map[string][]sample, rounds int, failures []sample) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }

	p("Rounds per method and N: %d, after one warm-up round per method at N = %d (not counted); a round that fails, or ends in more than one cluster, is not counted either.\n\n", rounds, sizes[0])
	var rows [][]string
	for id, name := range methodNames {
		rows = append(rows, []string{id, name})
	}
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	table(&sb, "ll", []string{"id", "method"}, rows)

	p("Seconds from launching the N processes until every member's `/health` says true; registry requests per member, token creation not counted:\n\n")
	timesTable(&sb, results, sizes, methods, "reqs/member", func(m string, ss []sample) []float64 {
		if !usesRegistry(m) {
			return nil
		}
		return reqsPerMember(ss)
	})

	p("Registry requests per member, the agent (a) against etcd's own discovery (b): medians over the rounds, their ratio and difference:\n\n")
	rows = nil
	for _, n := range sizes {
		ra, rb := reqsPerMember(results[key(methodAgent, n)]), reqsPerMember(results[key(methodDiscovery, n)])
		if len(ra) == 0 || len(rb) == 0 {
			continue
		}
		rows = append(rows, []string{strconv.Itoa(n), fmt.Sprintf("%.2f", median(ra)), fmt.Sprintf("%.2f", median(rb)),
			fmt.Sprintf("%.2f", median(ra)/median(rb)), fmt.Sprintf("%+.2f", median(ra)-median(rb))})
	}
	table(&sb, "lrrrr", []string{"N", "a", "b", "a/b", "a-b"}, rows)

	p("Ratios of the medians with 90%% bootstrap confidence intervals, and the Hodges-Lehmann shift (median of all pairwise differences of round times, seconds):\n\n")
	ratios := [][2]string{{methodAgent, methodDiscovery}, {methodAgent, methodStatic}, {methodAgentNoWait, methodDiscovery}, {methodAgentNoWait, methodStatic}}
	shifts := [][2]string{{methodAgent, methodDiscovery}, {methodAgent, methodStatic}, {methodAgentNoWait, methodAgent}}
	head := []string{"N"}
	for _, r := range ratios {
		head = append(head, r[0]+"/"+r[1])
	}
	for _, r := range shifts {
		head = append(head, "shift "+r[0]+"-"+r[1])
	}
	rows = nil
	for _, n := range sizes {
		row := []string{strconv.Itoa(n)}
		for _, r := range ratios {
			x, y := secsOf(results[key(r[0], n)]), secsOf(results[key(r[1], n)])
			if len(x) == 0 || len(y) == 0 {
				row = append(row, "-")
				continue
			}
			lo, hi := ratioCI(x, y)
			row = append(row, fmt.Sprintf("%.2f (%.2f-%.2f)", median(x)/median(y), lo, hi))
		}
		for _, r := range shifts {
			x, y := secsOf(results[key(r[0], n)]), secsOf(results[key(r[1], n)])
			if len(x) == 0 || len(y) == 0 {
				row = append(row, "-")
				continue
			}
			row = append(row, fmt.Sprintf("%+.3f", shift(x, y)))
		}
		rows = append(rows, row)
	}
	table(&sb, "lllllrrr", head, rows)

	p("Where the time goes, from the members' logs: the median over rounds of the moment (seconds after the launch) the last member reached each event: env = the agent wrote the env file, released = the agent returned after the ordered start, exec = etcd started, member = etcd's `starting member` (after its static-bootstrap probe of the peers, or its own discovery for b), ready = `ready to serve client requests`; cfg→memb is the median of the longest per-member gap between etcd's configuration dump and `starting member`:\n\n")
	head = []string{"N", "m"}
	for _, ph := range phaseOrder {
		if ph != "configured" {
			head = append(head, ph)
		}
	}
	head = append(head, "healthy", "cfg→memb")
	rows = nil
	for _, n := range sizes {
		for _, m := range methods {
			ss := results[key(m, n)]
			if len(ss) == 0 {
				continue
			}
			row := []string{strconv.Itoa(n), m}
			for _, ph := range phaseOrder {
				if ph == "configured" {
					continue
				}
				if xs := phaseSecs(ss, ph); len(xs) > 0 {
					row = append(row, f3(median(xs)))
				} else {
					row = append(row, "-")
				}
			}
			var gaps []float64
			for _, s := range ss {
				gaps = append(gaps, s.probeGap.Seconds())
			}
			rows = append(rows, append(row, f3(median(secsOf(ss))), f3(median(gaps))))
		}
	}
	table(&sb, "llrrrrrrr", head, rows)

	p("Registry requests by kind, mean per member over the counted rounds:\n\n")
	viaRegistry := slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return !usesRegistry(m) })
	countsTable(&sb, results, sizes, viaRegistry, func(s sample) map[string]int { return s.kinds })

	p("Ordered start (a): how long the members other than the lead waited for it (seconds):\n\n")
	rows = nil
	for _, n := range sizes {
		var ws []float64
		for _, s := range results[key(methodAgent, n)] {
			for _, w := range s.leadWaits {
				ws = append(ws, w.Seconds())
			}
		}
		if len(ws) > 0 {
			rows = append(rows, []string{strconv.Itoa(n), strconv.Itoa(len(ws)), f3(median(ws)), f3(slices.Min(ws)), f3(slices.Max(ws))})
		}
	}
	table(&sb, "lrrrr", []string{"N", "waits", "median", "min", "max"}, rows)

	roundsList(&sb, results, sizes, methods, failures)
	return sb.String()
}

// roundsList writes the seconds of every counted round by N and method,
// then the rounds that failed.
func roundsList[S roundSample](sb *strings.Builder, results map[string][]S, sizes []int, methods []string, failures []S) {
	sb.WriteString("Every counted round, seconds:\n\n```\n")
	for _, n := range sizes {
		for _, m := range methods {
			fmt.Fprintf(sb, "N=%d %-2s %s\n", n, m, secs(secsOf(results[key(m, n)])))
		}
	}
	sb.WriteString("```\n")
	if len(failures) > 0 {
		sb.WriteString("\nFailed rounds, not counted above:\n\n")
		for _, f := range failures {
			o := f.result()
			fmt.Fprintf(sb, "- round %d, %s, N=%d: %s\n", o.round, o.method, o.n, o.failed)
		}
	}
}

// timesTable renders a row per N and method: its counted rounds, the
// median, min and max of their seconds, and the median (min-max) of what
// perMember gives of them (what is named; "-" where it gives nothing).
func timesTable[S roundSample](sb *strings.Builder, results map[string][]S, sizes []int, methods []string, what string, perMember func(m string, ss []S) []float64) {
	var rows [][]string
	for _, n := range sizes {
		for _, m := range methods {
			ss := results[key(m, n)]
			row := []string{strconv.Itoa(n), m, strconv.Itoa(len(ss)), "-", "-", "-", "-"}
			if len(ss) > 0 {
				xs := secsOf(ss)
				row[3], row[4], row[5] = f3(median(xs)), f3(slices.Min(xs)), f3(slices.Max(xs))
				if ps := perMember(m, ss); len(ps) > 0 {
					row[6] = fmt.Sprintf("%.2f (%.2f-%.2f)", median(ps), slices.Min(ps), slices.Max(ps))
				}
			}
			rows = append(rows, row)
		}
	}
	table(sb, "llrrrrl", []string{"N", "method", "rounds", "median", "min", "max", what + ": median (min-max)"}, rows)
}

// countsTable renders counts by kind (registry requests, gRPC calls), the
// mean per member over the counted rounds: a row per N and method that has
// rounds, a column per kind that any round counted.
func countsTable[S roundSample, V int | float64](sb *strings.Builder, results map[string][]S, sizes []int, methods []string, counts func(S) map[string]V) {
	kinds := map[string]bool{}
	for _, ss := range results {
		for _, s := range ss {
			for k := range counts(s) {
				kinds[k] = true
			}
		}
	}
	kindList := slices.Sorted(maps.Keys(kinds))
	var rows [][]string
	for _, n := range sizes {
		for _, m := range methods {
			ss := results[key(m, n)]
			if len(ss) == 0 {
				continue
			}
			total := map[string]float64{}
			members := 0
			for _, s := range ss {
				members += s.result().n
				for k, v := range counts(s) {
					total[k] += float64(v)
				}
			}
			row := []string{strconv.Itoa(n), m}
			for _, k := range kindList {
				row = append(row, fmt.Sprintf("%.2f", total[k]/float64(members)))
			}
			rows = append(rows, row)
		}
	}
	table(sb, "ll"+strings.Repeat("r", len(kindList)), append([]string{"N", "m"}, kindList...), rows)
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestShift(t *testing.T) {
	if got := shift([]float64{1.1, 1.2, 1.3}, []float64{1.0, 1.1, 1.2}); got < 0.0999 || got > 0.1001 {
		t.Errorf("shift = %v, want 0.1", got)
	}
}

func TestParseLog(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 20, 30, 6, 0, time.UTC)
	log := `time=2026-11-23T20:30:06.100Z level=INFO msg="wrote environment file" name=h2 path=/x
time=2026-11-23T20:30:06.400Z level=INFO msg="lead member serves" name=h2 lead=http://127.0.0.2:2380 waited=300ms
[WARNING] Deprecated '--logger=capnslog' flag is set; use '--logger=zap' flag instead
` + time.Date(2026, 11, 23, 20, 30, 6, 500000000, time.UTC).Local().Format("2006-01-02 15:04:05.000000") + ` I | etcdmain: etcd Version: 3.4.23
` + time.Date(2026, 11, 23, 20, 30, 6, 510000000, time.UTC).Local().Format("2006-01-02 15:04:05.000000") + ` I | embed: advertise client URLs = http://127.0.0.2:2379
` + time.Date(2026, 11, 23, 20, 30, 6, 600000000, time.UTC).Local().Format("2006-01-02 15:04:05.000000") + ` I | etcdserver: starting member 1 in cluster 2
`
	ev := parseLog(log, t0)
	want := map[string]time.Duration{"env": 100 * time.Millisecond, "released": 400 * time.Millisecond, "exec": 500 * time.Millisecond, "configured": 510 * time.Millisecond, "member": 600 * time.Millisecond}
	if !maps.Equal(ev.at, want) {
		t.Errorf("events %v, want %v", ev.at, want)
	}
	if len(ev.leadWaits) != 1 || ev.leadWaits[0] != 300*time.Millisecond {
		t.Errorf("lead waits %v, want [300ms]", ev.leadWaits)
	}
	if g, ok := ev.gap("configured", "member"); !ok || g != 90*time.Millisecond {
		t.Errorf("gap %v %v, want 90ms", g, ok)
	}
}

func TestParseLogZap(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 20, 30, 6, 0, time.UTC)
	log := `time=2026-11-23T20:30:06.010Z level=INFO msg=starting name=h1
time=2026-11-23T20:30:06.050Z level=INFO msg=registered name=h1 key=k value="h1=http://127.0.0.2:2380" created=9
{"level":"info","ts":"2026-11-23T20:30:06.200000Z","caller":"etcdmain/etcd.go:63","msg":"Running: ","args":["etcd"]}
{"level":"info","ts":"2026-11-23T20:30:06.210000Z","caller":"etcdserver/bootstrap.go:515","msg":"starting local member","local-member-id":"1"}
not json {"msg":"ready to serve client requests"}
{"level":"info","ts":"2026-11-23T20:30:06.400000Z","caller":"embed/serve.go:139","msg":"ready to serve client requests"}
`
	want := map[string]time.Duration{"up": 10 * time.Millisecond, "registered": 50 * time.Millisecond, "exec": 200 * time.Millisecond, "member": 210 * time.Millisecond, "ready": 400 * time.Millisecond}
	if ev := parseLog(log, t0); !maps.Equal(ev.at, want) {
		t.Errorf("events %v, want %v", ev.at, want)
	}
	own := `{"level":"info","ts":"2026-11-23T20:30:06.020000Z","msg":"Running: "}
{"level":"info","ts":"2026-11-23T20:30:06.030000Z","msg":"register member itself successfully"}
{"level":"info","ts":"2026-11-23T20:30:06.090000Z","msg":"discovery joined cluster successfully"}
`
	want = map[string]time.Duration{"up": 20 * time.Millisecond, "exec": 20 * time.Millisecond, "registered": 30 * time.Millisecond, "env": 90 * time.Millisecond}
	if ev := parseLog(own, t0); !maps.Equal(ev.at, want) {
		t.Errorf("events of etcd's own discovery %v, want %v", ev.at, want)
	}
}
