package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/dnsupdate"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// SRV bootstrap methods.
const (
	srvAgent     = "s" // the agent's SRV mode on records published beforehand
	srvAgentPubl = "p" // the agent's SRV mode, each agent publishing its own records
	srvEtcd      = "e" // etcd's own --discovery-srv on records published beforehand
)

// BenchmarkSRVBootstrap: time from launching N hosts to a healthy cluster
// when the cluster is found by DNS SRV records, for
//
//	s  the agent's SRV mode (--discovery-srv, static env file) on records
//	   published beforehand, as an operator would
//	p  the same, each host's agent publishing its own records first
//	e  etcd's own --discovery-srv on records published beforehand
//
// all with etcd 3.7.3 (3.4's own SRV discovery takes no http records), each
// host in its own network namespace resolving through the test's BIND. A
// round counts once every member is healthy and all report one cluster of
// N started members. It counts the DNS queries BIND answered per member:
// in the timed rounds (everything, mostly etcd resolving its peers' names
// while it runs), and, for s and p, in rounds of the agents alone (the
// agent's own queries). Each round is a sub-benchmark (its network and
// processes go when it ends); the results are reported on the
// sub-benchmarks N=3, N=5 and N=7 and as its section of BENCHMARKS.md.
func BenchmarkSRVBootstrap(b *testing.B) {
	if os.Geteuid() != 0 {
		testenv.SkipUnlessCI(b, "needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.SkipUnlessCI(b, "needs iproute2's ip for network namespaces: %v", err)
	}
	rounds := benchRounds(b, 5)
	etcd := testenv.BuildEtcd(b, "v3.7.3")
	agentBin := testenv.AgentBinary(b)
	methods := []string{srvAgent, srvAgentPubl, srvEtcd}
	sizes := []int{3, 5, 7}
	type result struct{ times, queries, own map[string][]float64 }
	results := map[int]result{}
	var failures []string
	for _, n := range sizes {
		res := result{times: map[string][]float64{}, queries: map[string][]float64{}, own: map[string][]float64{}}
		results[n] = res
		for r := 0; r < rounds; r++ {
			for _, m := range methods {
				name := fmt.Sprintf("round/N=%d/%s/%d", n, m, r)
				why := "failed, see the benchmark's log"
				if !b.Run(name, func(b *testing.B) {
					d, q, err := srvRound(b, agentBin, etcd, n, m)
					if err != nil {
						why = err.Error()
						b.Errorf("round not counted: %v", err)
						return
					}
					res.times[m] = append(res.times[m], d)
					res.queries[m] = append(res.queries[m], q)
				}) {
					failures = append(failures, name+": "+why)
				}
				if m == srvEtcd {
					continue
				}
				b.Run(fmt.Sprintf("agent-only/N=%d/%s/%d", n, m, r), func(b *testing.B) {
					res.own[m] = append(res.own[m], agentOnlyRound(b, agentBin, n, m))
				})
			}
		}
	}

	var sb strings.Builder
	sb.WriteString(runInfo(b, "BenchmarkSRVBootstrap", srvTimeout, []string{etcd, "--version"}, []string{testenv.NamedBinary(b), "-v"}))
	fmt.Fprintf(&sb, "Each host in its own network namespace (`testenv.NewNetwork`), resolving through BIND on the router; etcd 3.7.3, built from the module proxy, in every method. "+
		"Rounds per method and N: %d, interleaved; a round counts once every member answers `/health` and all report one cluster of N started members. "+
		"Queries are counted from BIND's query log: all = every query of the timed round (mostly etcd resolving its peers' names), own = rounds of the agents alone, until each has written its env file.\n\n", rounds)
	table(&sb, "ll", []string{"id", "method"}, [][]string{
		{srvAgent, "the agent's SRV mode (`--discovery-srv DOMAIN --size N`, static env file), records published beforehand"},
		{srvAgentPubl, "the same, each agent publishing its own records first (`--publish-server`)"},
		{srvEtcd, "etcd's own `--discovery-srv`, records published beforehand"}})
	fmt.Fprintf(&sb, "Median seconds from launch until every member is healthy (counted rounds in brackets), and DNS queries per member (median):\n\n")
	var rows [][]string
	for _, n := range sizes {
		res := results[n]
		med := func(m string) string {
			return fmt.Sprintf("%.3f (%d)", median(res.times[m]), len(res.times[m]))
		}
		ms, mp, me := median(res.times[srvAgent]), median(res.times[srvAgentPubl]), median(res.times[srvEtcd])
		rows = append(rows, []string{strconv.Itoa(n), med(srvAgent), med(srvAgentPubl), med(srvEtcd), ratio(me, ms), ratio(me, mp),
			fmt.Sprintf("%.1f / %.1f / %.1f", median(res.queries[srvAgent]), median(res.queries[srvAgentPubl]), median(res.queries[srvEtcd])),
			fmt.Sprintf("%.1f / %.1f", median(res.own[srvAgent]), median(res.own[srvAgentPubl]))})
	}
	table(&sb, "lrrrrrrr", []string{"N", "s", "p", "e", "e/s", "e/p", "queries, all: s / p / e", "own: s / p"}, rows)
	sb.WriteString("Every counted round, seconds:\n\n```\n")
	for _, n := range sizes {
		for _, m := range methods {
			fmt.Fprintf(&sb, "N=%d %s %s\n", n, m, secs(results[n].times[m]))
		}
	}
	sb.WriteString("```\n")
	if len(failures) > 0 {
		sb.WriteString("\nFailed rounds, not counted above:\n\n")
		for _, f := range failures {
			fmt.Fprintf(&sb, "- %s\n", f)
		}
	}
	writeSection(b, "BenchmarkSRVBootstrap", sb.String())

	// Metrics of a benchmark that has sub-benchmarks are not printed: they
	// go on one more sub-benchmark per N.
	for _, n := range sizes {
		res := results[n]
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ms, mp, me := median(res.times[srvAgent]), median(res.times[srvAgentPubl]), median(res.times[srvEtcd])
			b.ReportMetric(ms, "agent-median-s")
			b.ReportMetric(mp, "agent-publishing-median-s")
			b.ReportMetric(me, "etcd-median-s")
			if ms > 0 {
				b.ReportMetric(me/ms, "etcd/agent")
			}
			b.ReportMetric(median(res.own[srvAgent]), "agent-own-queries/member")
			b.ReportMetric(median(res.own[srvAgentPubl]), "agent-publishing-own-queries/member")
			b.ReportMetric(median(res.queries[srvEtcd]), "etcd-queries/member")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// ratio is x/y with two decimals, or "-" when y is 0 (no rounds).
func ratio(x, y float64) string {
	if y == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x/y)
}

// srvTimeout is the -timeout the command in the report names.
const srvTimeout = "60m"

// secs formats round times for the report.
func secs(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// srvNetwork builds a network of n hosts with a BIND for example.test. and,
// unless the hosts' agents publish them, every host's records.
func srvNetwork(b *testing.B, n int, m string) (*testenv.DNSServer, []testenv.NetHost) {
	net := testenv.NewNetwork(b)
	named := net.Named(b, "example.test.")
	key, err := dnsupdate.ReadKeyFile(named.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	u := &dnsupdate.Updater{Server: named.Addr, Zone: "example.test.", Key: key}
	var hosts []testenv.NetHost
	for i := 1; i <= n; i++ {
		h := net.AddHost(b, fmt.Sprintf("infra%d", i))
		hosts = append(hosts, h)
		if m == srvAgentPubl {
			continue
		}
		if err := u.Publish(context.Background(), dnsupdate.Host{Domain: "example.test.", Name: h.Name, Addr: h.Addr, PeerPort: 2380, ClientPort: 2379, Scheme: "http", TTL: 60}); err != nil {
			b.Fatal(err)
		}
	}
	return named, hosts
}

// srvAgentArgs are the agent's arguments for host h in SRV mode.
func srvAgentArgs(named *testenv.DNSServer, h testenv.NetHost, n int, m string) []string {
	args := []string{"bootstrap", "--name", h.Name,
		"--advertise-address", h.Addr.String(), "--data-dir", h.DataDir(), "--env-file", h.EnvFile(),
		"--state-dir", h.StateDir(), "--discovery-srv", "example.test", "--size", strconv.Itoa(n), "--timeout", "60s"}
	if m == srvAgentPubl {
		args = append(args, "--publish-server", named.Addr, "--publish-zone", "example.test", "--tsig-key-file", named.KeyFile)
	}
	return args
}

// queryCount is how many queries named has logged so far.
func queryCount(named *testenv.DNSServer) int {
	return strings.Count(named.Proc.Output(), "query: ")
}

// srvRound launches n hosts with method m and returns the seconds until all
// are healthy and the DNS queries per member, or an error if they do not
// form one cluster of n started members.
func srvRound(b *testing.B, agentBin, etcd string, n int, m string) (float64, float64, error) {
	named, hosts := srvNetwork(b, n, m)
	before := queryCount(named)
	start := time.Now()
	procs := make([]*testenv.Process, n)
	for i, h := range hosts {
		switch m {
		case srvAgent, srvAgentPubl:
			procs[i] = testenv.StartNetHost(b, agentBin, etcd, h, srvAgentArgs(named, h, n, m)...)
		case srvEtcd:
			peer, client := "http://"+h.Addr.String()+":2380", h.ClientURL()
			procs[i] = h.Start(b, "etcd-"+h.Name, etcd, []string{
				"--name", h.Name, "--data-dir", filepath.Join(h.Dir, "etcd"),
				"--discovery-srv", "example.test", "--initial-cluster-token", "etcd-cluster",
				"--initial-advertise-peer-urls", peer, "--listen-peer-urls", peer,
				"--advertise-client-urls", client, "--listen-client-urls", client,
			}, nil)
		}
	}
	var urls []string
	for i, h := range hosts {
		testenv.WaitHealthy(b, procs[i], 60*time.Second, h.ClientURL())
		urls = append(urls, h.ClientURL())
	}
	d := time.Since(start).Seconds()
	q := float64(queryCount(named)-before) / float64(n)
	err := checkOneCluster(urls, n)
	for _, p := range procs {
		p.Signal(os.Kill)
	}
	return d, q, err
}

// agentOnlyRound launches the n hosts' agents alone (method s or p), waits
// until each has written its env file and returns the DNS queries per
// member they made.
func agentOnlyRound(b *testing.B, agentBin string, n int, m string) float64 {
	named, hosts := srvNetwork(b, n, m)
	before := queryCount(named)
	procs := make([]*testenv.Process, n)
	for i, h := range hosts {
		procs[i] = h.Start(b, "agent-"+h.Name, agentBin, srvAgentArgs(named, h, n, m), nil)
	}
	for i, p := range procs {
		if code := p.Wait(b, 60*time.Second); code != 0 {
			b.Fatalf("agent of %s: exit %d:\n%s", hosts[i].Name, code, p.Output())
		}
	}
	return float64(queryCount(named)-before) / float64(n)
}
