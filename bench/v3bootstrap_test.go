package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// The methods of BenchmarkV3Bootstrap, in the order of its report.
const (
	v3Agent       = "a"  // agent on a v3 token, then etcd 3.7 from the env file
	v3AgentNoWait = "a0" // the same with --peer-wait 0
	v3Etcd36      = "e6" // etcd 3.6's own --discovery-token
	v3Etcd37      = "e7" // etcd 3.7's own --discovery-token
)

var (
	v3Methods = []string{v3Agent, v3AgentNoWait, v3Etcd36, v3Etcd37}
	v3Sizes   = []int{3, 5, 7}
	v3Own     = []string{v3Etcd36, v3Etcd37}
	// The events of a member's log shown in the report, in order (see
	// parseLog).
	v3Phases = []string{"up", "registered", "env", "released", "exec", "member", "ready"}
)

// v3Timeout is the -timeout the command in the report names.
const v3Timeout = "30m"

// v3Sample is the outcome of one round of BenchmarkV3Bootstrap.
type v3Sample struct {
	outcome
	// calls are the registry's gRPC calls of the round, by method (Range,
	// Txn, Watch, ...): grpc_server_started_total after minus before.
	calls map[string]float64
	// On the agent's hosts, the longest gap over the members between the
	// agent writing the env file and etcd's first line (the ordered start
	// and etcd's exec).
	handover    time.Duration
	hasHandover bool
}

// fillToDecided is how long after the last registration was written the
// last member knew the member list, if both were logged.
func (s v3Sample) fillToDecided() (time.Duration, bool) {
	reg, ok1 := s.last["registered"]
	dec, ok2 := s.last["env"]
	return dec - reg, ok1 && ok2
}

func (s v3Sample) callsPerMember() float64 {
	var sum float64
	for _, v := range s.calls {
		sum += v
	}
	return sum / float64(s.n)
}

// v3Bench is what every round of BenchmarkV3Bootstrap shares.
type v3Bench struct {
	b        *testing.B
	agentBin string
	etcd     map[string]string // etcd binary by method
	registry string            // the registry's client URL
	seed     int64
}

// BenchmarkV3Bootstrap: bootstrap from a v3 discovery token (the keys
// under /_etcd/registry/<token>/ that etcd 3.6+ reads with
// --discovery-token), for
//
//	a   the agent (--discovery-token, default output static), then etcd
//	    3.7 from the env file it wrote, as systemd runs them
//	a0  the same with --peer-wait 0
//	e6  etcd 3.6's own --discovery-token
//	e7  etcd 3.7's own --discovery-token
//
// at N = 3, 5 and 7, interleaved round by round, every host on its own
// 127.x.y.z address. A round ends when every member's /health says true;
// it counts once every member reports one cluster of N started members.
// The registry is one etcd 3.7 that serves nothing but the rounds, one at
// a time; the gRPC calls of a round are read from its own Prometheus
// metrics (grpc_server_started_total by grpc_method) before and after
// the round, once every call it started was handled. The results are
// reported on the sub-benchmarks N=3, N=5 and N=7 and as its section of
// BENCHMARKS.md.
func BenchmarkV3Bootstrap(b *testing.B) {
	rounds := benchRounds(b, 10)
	etcd36, etcd37 := testenv.BuildEtcd(b, testenv.Etcd36), testenv.BuildEtcd(b, testenv.Etcd37)
	be := &v3Bench{
		b:        b,
		agentBin: testenv.AgentBinary(b),
		etcd:     map[string]string{v3Agent: etcd37, v3AgentNoWait: etcd37, v3Etcd36: etcd36, v3Etcd37: etcd37},
		seed:     time.Now().UnixNano(),
	}
	be.registry = testenv.StartEtcd(b, testenv.EtcdConfig{Bin: etcd37, Name: "registry"}).ClientURL
	info := runInfo(b, "BenchmarkV3Bootstrap", v3Timeout, []string{etcd36, "--version"}, []string{etcd37, "--version"}) // the load average at the start

	start := time.Now()
	fmt.Printf("v3 bootstrap benchmark: %d rounds x methods %v x N %v, registry %s\n", rounds, v3Methods, v3Sizes, be.registry)
	results, failures := runRounds(start, rounds, v3Sizes, v3Methods, be.round, func(s v3Sample) string {
		return fmt.Sprintf("%.3fs/%.1fcalls", s.secs, s.callsPerMember())
	})

	writeSection(b, "BenchmarkV3Bootstrap", info+v3Report(results, rounds, failures))
	reportRounds(b, v3Sizes, func(n int) map[string]float64 { return v3Metrics(results, n) }, failures)
}

// round makes a token of size n, launches n fresh hosts with method m at
// once, waits until every member is healthy, checks that they form one
// cluster, and stops them; the registry's gRPC calls in between are the
// round's.
func (be *v3Bench) round(m string, n, round int) v3Sample {
	b := be.b
	s := v3Sample{outcome: outcome{method: m, n: n, round: round}}
	hosts := testenv.Hosts(b, fmt.Sprintf("v%d-%s-n%d-h", round, m, n), n)
	defer func() {
		for _, h := range hosts {
			_ = os.RemoveAll(h.Dir)
		}
	}()
	token := fmt.Sprintf("bench-%d-r%d-%s-n%d", be.seed, round, m, n)
	if _, err := newToken(be.registry, true, token, n); err != nil {
		b.Fatalf("create token %s: %v", token, err)
	}
	before, err := settledCalls(be.registry)
	if err != nil {
		b.Fatalf("registry metrics before the round: %v", err)
	}

	procs := make([]*testenv.Process, n)
	t0 := time.Now()
	for i, h := range hosts {
		switch m {
		case v3Agent, v3AgentNoWait:
			args := v3AgentArgs(h, token, be.registry, "--timeout", "60s")
			if m == v3AgentNoWait {
				args = append(args, "--peer-wait", "0")
			}
			procs[i] = testenv.StartHostArgs(b, be.agentBin, be.etcd[m], h, args...)
		default:
			procs[i] = testenv.Start(b, "own-"+h.Name, be.etcd[m], append(etcdArgs(h),
				"--discovery-token", token, "--discovery-endpoints", be.registry,
			), nil)
		}
	}

	s.secs, s.failed = awaitCluster(hosts, procs, t0)
	stopAll(procs)

	after, err := settledCalls(be.registry)
	if err != nil {
		b.Fatalf("registry metrics after the round: %v", err)
	}
	s.calls = map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			s.calls[k] = d
		}
	}
	for _, ev := range s.readLogs(b, "v3-", t0, procs) {
		if m == v3Agent || m == v3AgentNoWait {
			if g, ok := ev.gap("env", "exec"); ok && g > s.handover {
				s.handover, s.hasHandover = g, true
			}
		}
	}
	return s
}

// v3AgentArgs are testenv.AgentArgs for a v3 token: the agent's bootstrap
// of host h on token in the etcd at endpoint.
func v3AgentArgs(h testenv.Host, token, endpoint string, extra ...string) []string {
	return append([]string{"bootstrap", "--name", h.Name,
		"--discovery-token", token, "--discovery-endpoints", endpoint,
		"--advertise-address", h.Addr.String(), "--data-dir", h.DataDir(),
		"--env-file", h.EnvFile(), "--state-dir", h.StateDir()}, extra...)
}

// grpcMetric is one sample of a grpc_server_*_total counter.
var grpcMetric = regexp.MustCompile(`^grpc_server_(started|handled)_total\{([^}]*)\} (\S+)$`)

// grpcLabel finds one label of a metric line.
var grpcLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// grpcCounts parses the registry's Prometheus metrics: calls started by
// gRPC method ("Range", "Watch", ...), and the sums of started and handled
// calls over every method and code.
func grpcCounts(metrics io.Reader) (started map[string]float64, startedSum, handledSum float64, err error) {
	started = map[string]float64{}
	sc := bufio.NewScanner(metrics)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := grpcMetric.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("metric line %q: %w", sc.Text(), err)
		}
		if m[1] == "handled" {
			handledSum += v
			continue
		}
		startedSum += v
		for _, l := range grpcLabel.FindAllStringSubmatch(m[2], -1) {
			if l[1] == "grpc_method" && v != 0 {
				started[l[2]] += v
			}
		}
	}
	return started, startedSum, handledSum, sc.Err()
}

// settledCalls reads the registry's calls by method once every call it
// started was handled (at most 10 s: a stream that outlives its client
// ends when the registry notices the connection is gone).
func settledCalls(clientURL string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		started, s, h, err := readGRPCCounts(ctx, clientURL)
		if err == nil && s == h {
			return started, nil
		}
		if err == nil {
			err = fmt.Errorf("%v calls started, %v handled", s, h)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the registry's calls did not settle: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readGRPCCounts(ctx context.Context, clientURL string) (map[string]float64, float64, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/metrics", nil)
	if err != nil {
		return nil, 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, 0, fmt.Errorf("GET %s/metrics: %s", clientURL, resp.Status)
	}
	return grpcCounts(resp.Body)
}

func v3CallsPerMember(ss []v3Sample) []float64 {
	var xs []float64
	for _, s := range ss {
		xs = append(xs, s.callsPerMember())
	}
	return xs
}

// v3Metrics are the numbers reported for size n, by unit.
func v3Metrics(results map[string][]v3Sample, n int) map[string]float64 {
	out := map[string]float64{}
	for _, m := range v3Methods {
		ss := results[key(m, n)]
		if len(ss) == 0 {
			continue
		}
		out[m+"-median-s"] = median(secsOf(ss))
		out["calls/member-"+m] = median(v3CallsPerMember(ss))
	}
	for _, own := range v3Own {
		if out[own+"-median-s"] > 0 && out[v3Agent+"-median-s"] > 0 {
			out["a/"+own] = out[v3Agent+"-median-s"] / out[own+"-median-s"]
			out["calls-a/"+own] = out["calls/member-a"] / out["calls/member-"+own]
		}
	}
	return out
}

// v3Report renders the results as the markdown of the benchmark's section.
func v3Report(results map[string][]v3Sample, rounds int, failures []v3Sample) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }

	p("Each round makes a fresh v3 token of size N (`/_etcd/registry/<token>/_config/size`, written before the round), launches N fresh hosts on their own 127.x.y.z addresses at once, and ends when every member's `/health` says true; it counts once every member reports one cluster of N started members. "+
		"The registry is one etcd 3.7.3 that serves only the round under way; its gRPC calls are read from its `/metrics` (`grpc_server_started_total` by `grpc_method`) before and after each round, once every call started was handled. "+
		"Rounds per method and N: %d, interleaved (the order of the methods rotates), after one warm-up round per method at N = %d (not counted).\n\n", rounds, v3Sizes[0])
	table(&sb, "ll", []string{"id", "method"}, [][]string{
		{v3Agent, "`etcd-discovery-agent bootstrap --discovery-token T --discovery-endpoints R` (default flags, output static), then etcd 3.7.3 from the env file it wrote, as systemd's ExecStartPre and ExecStart (`testenv.StartHostArgs`)"},
		{v3AgentNoWait, "the same with `--peer-wait 0` (no ordered start)"},
		{v3Etcd36, "etcd 3.6.16's own v3 discovery: `etcd --discovery-token T --discovery-endpoints R`"},
		{v3Etcd37, "etcd 3.7.3's own v3 discovery, the same flags"},
	})

	p("Seconds from launching the N processes until every member's `/health` says true, and the registry's gRPC calls per member (token creation not counted):\n\n")
	timesTable(&sb, results, v3Sizes, v3Methods, "calls/member", func(_ string, ss []v3Sample) []float64 { return v3CallsPerMember(ss) })

	p("The agent against etcd's own: ratios of the median times with 90%% bootstrap confidence intervals, the Hodges-Lehmann shift (median of all pairwise differences, seconds), and the ratio of the median calls per member:\n\n")
	head := []string{"N"}
	for _, own := range v3Own {
		head = append(head, "a/"+own, "shift a-"+own, "calls a/"+own)
	}
	head = append(head, "a0/"+v3Etcd37)
	var rows [][]string
	for _, n := range v3Sizes {
		row := []string{strconv.Itoa(n)}
		a := results[key(v3Agent, n)]
		for _, own := range v3Own {
			o := results[key(own, n)]
			if len(a) == 0 || len(o) == 0 {
				row = append(row, "-", "-", "-")
				continue
			}
			lo, hi := ratioCI(secsOf(a), secsOf(o))
			row = append(row, fmt.Sprintf("%.2f (%.2f-%.2f)", median(secsOf(a))/median(secsOf(o)), lo, hi),
				fmt.Sprintf("%+.3f", shift(secsOf(a), secsOf(o))),
				fmt.Sprintf("%.2f", median(v3CallsPerMember(a))/median(v3CallsPerMember(o))))
		}
		if a0, o := results[key(v3AgentNoWait, n)], results[key(v3Etcd37, n)]; len(a0) > 0 && len(o) > 0 {
			lo, hi := ratioCI(secsOf(a0), secsOf(o))
			row = append(row, fmt.Sprintf("%.2f (%.2f-%.2f)", median(secsOf(a0))/median(secsOf(o)), lo, hi))
		} else {
			row = append(row, "-")
		}
		rows = append(rows, row)
	}
	table(&sb, "l"+strings.Repeat("l", len(head)-1), head, rows)

	p("Where the time goes, from the members' logs: the median over rounds of the moment (seconds after the launch) the last member reached each event: " +
		"up = the process that talks to the registry logged its first line (the agent; etcd for e6 and e7), registered = its registration was written, " +
		"decided = the member list was known (the agent wrote its env file; etcd's `discovery joined cluster successfully`), released = the agent returned after the ordered start, " +
		"exec = etcd started (`Running:`), member = `starting local member`, ready = `ready to serve client requests`; " +
		"fill→dec is the median over rounds of the time from the last registration to the last member knowing the member list (how long the news of a full token took), env→exec the median of the longest per-member gap between the agent writing the env file and its etcd's first line (ordered start, then sh, setpriv and etcd's exec):\n\n")
	head = []string{"N", "m"}
	for _, ph := range v3Phases {
		if ph == "env" {
			ph = "decided"
		}
		head = append(head, ph)
	}
	head = append(head, "healthy", "fill→dec", "env→exec")
	rows = nil
	for _, n := range v3Sizes {
		for _, m := range v3Methods {
			ss := results[key(m, n)]
			if len(ss) == 0 {
				continue
			}
			row := []string{strconv.Itoa(n), m}
			for _, ph := range v3Phases {
				if xs := phaseSecs(ss, ph); len(xs) > 0 {
					row = append(row, f3(median(xs)))
				} else {
					row = append(row, "-")
				}
			}
			var fills, handovers []float64
			for _, s := range ss {
				if d, ok := s.fillToDecided(); ok {
					fills = append(fills, d.Seconds())
				}
				if s.hasHandover {
					handovers = append(handovers, s.handover.Seconds())
				}
			}
			fill, handover := "-", "-"
			if len(fills) > 0 {
				fill = f3(median(fills))
			}
			if len(handovers) > 0 {
				handover = f3(median(handovers))
			}
			rows = append(rows, append(row, f3(median(secsOf(ss))), fill, handover))
		}
	}
	table(&sb, "ll"+strings.Repeat("r", len(v3Phases)+3), head, rows)

	p("The registry's gRPC calls by method, mean per member over the counted rounds (a Watch is one stream, however many events it carries):\n\n")
	countsTable(&sb, results, v3Sizes, v3Methods, func(s v3Sample) map[string]float64 { return s.calls })

	roundsList(&sb, results, v3Sizes, v3Methods, failures)
	return sb.String()
}

func TestGRPCCounts(t *testing.T) {
	metrics := `# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 12
grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0
grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 2
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 12
grpc_server_handled_total{grpc_code="Canceled",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 1
grpc_server_msg_received_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 12
`
	started, s, h, err := grpcCounts(strings.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]float64{"Range": 12, "Watch": 2}; !maps.Equal(started, want) {
		t.Errorf("started %v, want %v", started, want)
	}
	if s != 14 || h != 13 {
		t.Errorf("started %v, handled %v; want 14 and 13", s, h)
	}
}
