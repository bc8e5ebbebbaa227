package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv3"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// The methods compared, in the order of the report.
const (
	methodAgent       = "a"  // agent bootstrap, then etcd from the env file
	methodAgentNoWait = "a0" // the same with --peer-wait 0
	methodDiscovery   = "b"  // etcd's own v2 discovery
	methodStatic      = "c"  // precomputed static --initial-cluster
)

var (
	methods = []string{methodAgent, methodAgentNoWait, methodDiscovery, methodStatic}
	sizes   = []int{3, 5, 7}

	methodNames = map[string]string{
		methodAgent:       "`etcd-discovery-agent bootstrap` (default flags), then `exec etcd` from the env file it wrote, as systemd's ExecStartPre and ExecStart (`testenv.StartHost`)",
		methodAgentNoWait: "the same with `--peer-wait 0` (no ordered start)",
		methodDiscovery:   "etcd's own v2 discovery: `etcd --discovery URL --discovery-fallback exit`",
		methodStatic:      "`etcd --initial-cluster` naming every member, `--initial-cluster-state new`, a cluster token per round",
	}
)

const (
	defaultRounds = 30
	// roundDeadline bounds one round from launch to all members healthy.
	roundDeadline = 90 * time.Second
	// bootstrapTimeout is the -timeout the command in the report names.
	bootstrapTimeout = "30m"
)

// bench is what every round shares.
type bench struct {
	b         *testing.B
	etcd      string
	agentBin  string
	registry  string
	proxy     *countingProxy
	roundSeed int64
}

// outcome is what every round of a bootstrap benchmark records of one
// method at one size, whatever else it measures.
type outcome struct {
	method string
	n      int
	round  int

	secs   float64
	failed string // why the round failed; empty if it did not

	// From the logs, relative to the launch: the last member to reach each
	// event (absent events are not in the map).
	last map[string]time.Duration
}

// sample is the outcome of one round of BenchmarkBootstrap.
type sample struct {
	outcome

	// For methods that use the registry: the requests under the round's
	// token, and how many of each kind.
	reqs  int
	kinds map[string]int

	// For the agent: how long each non-lead member waited for the lead.
	leadWaits []time.Duration
	// The longest gap, over the members, between etcd printing its
	// configuration and "starting member": the static-bootstrap probe of
	// the other members' peer URLs (plus WAL creation).
	probeGap time.Duration
}

// BenchmarkBootstrap measures cluster bootstrap time and registry requests
// per member for the agent, etcd's own discovery and a static
// --initial-cluster, at N = 3, 5 and 7, interleaved round by round. The
// whole comparison is one run of the benchmark function; its results are
// reported on the sub-benchmarks N=3, N=5 and N=7 and as its section of
// BENCHMARKS.md (see writeSection).
func BenchmarkBootstrap(b *testing.B) {
	rounds := benchRounds(b, defaultRounds)
	be := &bench{
		b:         b,
		etcd:      testenv.EtcdBinary(b),
		agentBin:  testenv.AgentBinary(b),
		roundSeed: time.Now().UnixNano(),
	}
	be.registry, _ = testenv.Registry(b)
	be.proxy = newCountingProxy(b, be.registry)
	info := runInfo(b, "BenchmarkBootstrap", bootstrapTimeout, []string{be.etcd, "--version"}) // the load average at the start

	start := time.Now()
	fmt.Printf("bootstrap benchmark: %d rounds x methods %v x N %v, etcd %s, registry %s behind counting proxy %s\n",
		rounds, methods, sizes, be.etcd, be.registry, be.proxy.URL)

	results, failures := runRounds(start, rounds, sizes, methods, be.round, func(s sample) string { return fmt.Sprintf("%.3fs", s.secs) })

	fmt.Printf("total %s\n", time.Since(start).Round(time.Second))
	writeSection(b, "BenchmarkBootstrap", info+
		"Each round launches N fresh hosts on their own 127.x.y.z addresses at once, with a fresh token, and ends when every member answers `/health` and all report one cluster. "+
		"The registry is one etcd with `--enable-v2`; the members reach it through a counting reverse proxy.\n\n"+
		report(results, rounds, failures))
	reportRounds(b, sizes, func(n int) map[string]float64 { return metrics(results, n) }, failures)
}

// runRounds runs the rounds of a bootstrap benchmark that started at
// start: one warm-up round per method (page cache, first exec of each
// binary) at the smallest size, not counted, then rounds rounds of every
// size, the order of the methods rotating from round to round. It prints
// a line per round and size, where show tells of a counted round, and
// returns the counted samples by key(method, n) and the failed ones.
func runRounds[S roundSample](start time.Time, rounds int, sizes []int, methods []string, round func(m string, n, r int) S, show func(S) string) (map[string][]S, []S) {
	for _, m := range methods {
		o := round(m, sizes[0], 0).result()
		fmt.Printf("warm-up  %-2s N=%d %6.3fs %s\n", m, o.n, o.secs, o.failed)
	}
	results := map[string][]S{}
	var failures []S
	for r := 1; r <= rounds; r++ {
		for _, n := range sizes {
			var line []string
			for i := range methods {
				m := methods[(i+r)%len(methods)] // rotate the order each round
				s := round(m, n, r)
				if s.result().failed != "" {
					failures = append(failures, s)
					line = append(line, m+"=FAILED")
					continue
				}
				results[key(m, n)] = append(results[key(m, n)], s)
				line = append(line, m+"="+show(s))
			}
			fmt.Printf("round %d/%d N=%d  %s  (elapsed %s)\n", r, rounds, n, strings.Join(line, " "), time.Since(start).Round(time.Second))
		}
	}
	return results, failures
}

// reportRounds reports the metrics of each size n on a sub-benchmark N=n
// (a benchmark with sub-benchmarks prints no metrics of its own) and fails
// the benchmark once for every failed round.
func reportRounds[S roundSample](b *testing.B, sizes []int, metrics func(n int) map[string]float64, failures []S) {
	b.Helper()
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for unit, v := range metrics(n) {
				b.ReportMetric(v, unit)
			}
			b.ReportMetric(0, "ns/op")
		})
	}
	for _, f := range failures {
		o := f.result()
		b.Errorf("round %d of %s at N=%d failed: %s", o.round, o.method, o.n, o.failed)
	}
}

func key(method string, n int) string { return fmt.Sprintf("%s/%d", method, n) }

// round launches n fresh hosts with method m at once and waits until every
// member answers /health with {"health":"true"}; then it stops them all and
// removes their data.
func (be *bench) round(m string, n, round int) sample {
	b := be.b
	s := sample{outcome: outcome{method: m, n: n, round: round}}
	hosts := testenv.Hosts(b, fmt.Sprintf("r%d-%s-n%d-h", round, m, n), n)
	defer func() {
		for _, h := range hosts {
			_ = os.RemoveAll(h.Dir)
		}
	}()

	var discovery, tokenDir string
	if m != methodStatic {
		// The token is made straight on the registry, so its creation is
		// not counted; members reach the registry only through the proxy.
		direct, err := newToken(be.registry, false, "", n)
		if err != nil {
			b.Fatalf("token new: %v", err)
		}
		u, err := url.Parse(direct)
		if err != nil {
			b.Fatal(err)
		}
		tokenDir = u.Path
		discovery = be.proxy.URL + tokenDir
	}

	var cluster []string
	for _, h := range hosts {
		cluster = append(cluster, h.Name+"="+h.PeerURL())
	}
	clusterToken := fmt.Sprintf("bench-static-%d-%d-%d", be.roundSeed, round, n)

	procs := make([]*testenv.Process, n)
	t0 := time.Now()
	for i, h := range hosts {
		switch m {
		case methodAgent:
			procs[i] = testenv.StartHost(b, be.agentBin, h, discovery)
		case methodAgentNoWait:
			procs[i] = testenv.StartHost(b, be.agentBin, h, discovery, "--peer-wait", "0")
		case methodDiscovery:
			procs[i] = testenv.Start(b, "native-"+h.Name, be.etcd, append(etcdArgs(h),
				"--discovery", discovery,
				"--discovery-fallback", "exit",
			), nil)
		case methodStatic:
			procs[i] = testenv.Start(b, "static-"+h.Name, be.etcd, append(etcdArgs(h),
				"--initial-cluster", strings.Join(cluster, ","),
				"--initial-cluster-state", "new",
				"--initial-cluster-token", clusterToken,
			), nil)
		}
	}

	s.secs, s.failed = awaitCluster(hosts, procs, t0)
	stopAll(procs)

	if tokenDir != "" {
		reqs := be.proxy.requestsUnder(tokenDir)
		s.reqs = len(reqs)
		s.kinds = map[string]int{}
		for _, r := range reqs {
			s.kinds[r.kind(tokenDir)]++
		}
	}
	for _, ev := range s.readLogs(b, "", t0, procs) {
		s.leadWaits = append(s.leadWaits, ev.leadWaits...)
		if g, ok := ev.gap("configured", "member"); ok && g > s.probeGap {
			s.probeGap = g
		}
	}
	return s
}

// readLogs reads the logs of the round's processes, launched at t0: it
// sets o.last and returns each process's events. It keeps the logs in
// $BENCH_KEEP_LOGS/<prefix>r<round>-n<n>-<method> when that is set, and
// shows the end of each if the round failed.
func (o *outcome) readLogs(b *testing.B, prefix string, t0 time.Time, procs []*testenv.Process) []logEvents {
	o.last = map[string]time.Duration{}
	var evs []logEvents
	for _, p := range procs {
		ev := parseLog(p.Output(), t0)
		for name, d := range ev.at {
			if d > o.last[name] {
				o.last[name] = d
			}
		}
		evs = append(evs, ev)
	}
	if dir := os.Getenv("BENCH_KEEP_LOGS"); dir != "" {
		keepLogs(b, filepath.Join(dir, fmt.Sprintf("%sr%02d-n%d-%s", prefix, o.round, o.n, o.method)), t0, procs)
	}
	if o.failed != "" {
		for _, p := range procs {
			b.Logf("round %d %s N=%d failed; %s log:\n%s", o.round, o.method, o.n, p.Name, tail(p.Output(), 25))
		}
	}
	return evs
}

// awaitCluster waits, at most roundDeadline, until every member of a round
// launched at t0 answers /health, and returns the seconds from t0 until
// the last did and why the round failed (empty if it did not): a member
// that did not answer, or members that are not one cluster of them all
// (checkOneCluster).
func awaitCluster(hosts []testenv.Host, procs []*testenv.Process, t0 time.Time) (secs float64, failed string) {
	ctx, cancel := context.WithTimeout(context.Background(), roundDeadline)
	healthy := make([]time.Time, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			errs[i] = testenv.PollHealthy(ctx, h.ClientURL(), procs[i].Done())
			healthy[i] = time.Now()
		})
	}
	wg.Wait()
	cancel()
	var end time.Time
	for i, err := range errs {
		if err != nil {
			failed = fmt.Sprintf("%s: %v", hosts[i].Name, err)
			break
		}
		if healthy[i].After(end) {
			end = healthy[i]
		}
	}
	if failed == "" {
		var urls []string
		for _, h := range hosts {
			urls = append(urls, h.ClientURL())
		}
		if err := checkOneCluster(urls, len(hosts)); err != nil {
			failed = err.Error()
		}
	}
	return end.Sub(t0).Seconds(), failed
}

// newToken makes a token of size n straight on the registry at endpoint,
// as the agent's "token new" does (agent.CreateToken): a v2 token under
// /discovery, or a v3 token; an empty name is a random one. It returns the
// token as the agent takes it: a v2 token's discovery URL, a v3 token's
// name.
func newToken(endpoint string, v3 bool, name string, n int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v3reg *etcdv3.Registry
	defer func() {
		if v3reg != nil {
			_ = v3reg.Close()
		}
	}()
	open := func(token string) (agent.TokenCreator, error) {
		if !v3 {
			return etcdv2.New(token, agent.Access{})
		}
		reg, err := etcdv3.NewRegistry([]string{endpoint}, token, agent.Access{})
		v3reg = reg
		return reg, err
	}
	spec := agent.TokenSpec{Endpoints: []string{endpoint}, V3: v3, Prefix: "/discovery", Token: name, Size: n}
	return agent.CreateToken(ctx, spec, open, slog.New(slog.DiscardHandler))
}

// etcdArgs are the flags of a member on host h that do not depend on how
// the cluster is bootstrapped (the agent writes the same into its env file).
func etcdArgs(h testenv.Host) []string {
	return []string{
		"--name", h.Name,
		"--data-dir", h.DataDir(),
		"--initial-advertise-peer-urls", h.PeerURL(), "--listen-peer-urls", h.PeerURL(),
		"--advertise-client-urls", h.ClientURL(), "--listen-client-urls", h.ClientURL(),
	}
}

// checkOneCluster asks every member for the ID of its cluster and its
// member list, for up to 10 s until all answer alike, and returns an error
// unless every member reports the same cluster and the same n started
// members (a member that was added but has not started has no name yet).
func checkOneCluster(clientURLs []string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := oneCluster(ctx, clientURLs, n)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not one cluster of %d started members: %w", n, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func oneCluster(ctx context.Context, clientURLs []string, n int) error {
	var first string
	for _, u := range clientURLs {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cluster, ms, err := testenv.MemberList(ctx, u)
		cancel()
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range ms {
			if m.Name == "" || len(m.ClientURLs) == 0 {
				return fmt.Errorf("%s reports member %s as not started", u, strconv.FormatUint(m.ID, 16))
			}
			ids = append(ids, strconv.FormatUint(m.ID, 16))
		}
		slices.Sort(ids)
		view := fmt.Sprintf("cluster %s, members %s", strconv.FormatUint(cluster, 16), strings.Join(ids, ","))
		if len(ms) != n {
			return fmt.Errorf("%s reports %s: %d members", u, view, len(ms))
		}
		if first == "" {
			first = view
		} else if view != first {
			return fmt.Errorf("%s reports %s, another member %s", u, view, first)
		}
	}
	return nil
}

// stopAll kills the processes and waits until they are gone. SIGKILL
// comes first: on SIGTERM, an etcd leader whose followers stop at the same
// time tries to hand over leadership for 7 s before it exits, and the data
// of a round is thrown away anyway.
func stopAll(procs []*testenv.Process) {
	var wg sync.WaitGroup
	for _, p := range procs {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Signal(syscall.SIGKILL)
			p.Stop()
		}()
	}
	wg.Wait()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// keepLogs copies the logs of a round's processes into dir, with the launch
// time in launch.txt, for a closer look at where a round's time went.
func keepLogs(b *testing.B, dir string, t0 time.Time, procs []*testenv.Process) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "launch.txt"), []byte(t0.Format(time.RFC3339Nano)+"\n"), 0o644)
	for _, p := range procs {
		_ = os.WriteFile(filepath.Join(dir, p.Name+".log"), []byte(p.Output()), 0o644)
	}
}
