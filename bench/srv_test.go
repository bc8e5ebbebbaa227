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
// host in its own network namespace resolving through the test's BIND. It
// counts the DNS queries BIND answered per member: in the timed rounds
// (everything, mostly etcd resolving its peers' names while it runs), and,
// for s and p, in rounds of the agents alone (the agent's own queries).
func BenchmarkSRVBootstrap(b *testing.B) {
	if _, err := exec.LookPath("ip"); err != nil || os.Geteuid() != 0 {
		b.Skip("needs root and iproute2 for network namespaces")
	}
	etcd := testenv.BuildEtcd(b, "v3.7.3")
	agentBin := testenv.AgentBinary(b)
	rounds := 5
	if s := os.Getenv("BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	methods := []string{srvAgent, srvAgentPubl, srvEtcd}
	for _, n := range []int{3, 5, 7} {
		times := map[string][]float64{}
		queries := map[string][]float64{}
		own := map[string][]float64{}
		for r := 0; r < rounds; r++ {
			for _, m := range methods {
				b.Run(fmt.Sprintf("N=%d/%s/%d", n, m, r), func(b *testing.B) {
					d, q := srvRound(b, agentBin, etcd, n, m)
					times[m] = append(times[m], d)
					queries[m] = append(queries[m], q)
				})
				if m == srvEtcd {
					continue
				}
				b.Run(fmt.Sprintf("N=%d/%s-agent-only/%d", n, m, r), func(b *testing.B) {
					own[m] = append(own[m], agentOnlyRound(b, agentBin, n, m))
				})
			}
		}
		ms, mp, me := median(times[srvAgent]), median(times[srvAgentPubl]), median(times[srvEtcd])
		b.Logf("N=%d, %d rounds, median launch to healthy: agent SRV mode %.3f s, agent publishing + SRV mode %.3f s, etcd --discovery-srv %.3f s; e/s %.2f, e/p %.2f",
			n, rounds, ms, mp, me, me/ms, me/mp)
		b.Logf("N=%d rounds, seconds: s %s; p %s; e %s", n, secs(times[srvAgent]), secs(times[srvAgentPubl]), secs(times[srvEtcd]))
		b.Logf("N=%d DNS queries per member, all in the round: s %.1f, p %.1f, e %.1f; the agent's own: s %.1f, p %.1f",
			n, median(queries[srvAgent]), median(queries[srvAgentPubl]), median(queries[srvEtcd]), median(own[srvAgent]), median(own[srvAgentPubl]))
		b.ReportMetric(ms, fmt.Sprintf("N%d-agent-median-s", n))
		b.ReportMetric(mp, fmt.Sprintf("N%d-agent-publishing-median-s", n))
		b.ReportMetric(me, fmt.Sprintf("N%d-etcd-median-s", n))
		b.ReportMetric(me/ms, fmt.Sprintf("N%d-etcd/agent", n))
		b.ReportMetric(median(own[srvAgent]), fmt.Sprintf("N%d-agent-own-queries/member", n))
		b.ReportMetric(median(own[srvAgentPubl]), fmt.Sprintf("N%d-agent-publishing-own-queries/member", n))
		b.ReportMetric(median(queries[srvEtcd]), fmt.Sprintf("N%d-etcd-queries/member", n))
	}
}

// secs formats round times for the log.
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
// are healthy and the DNS queries per member.
func srvRound(b *testing.B, agentBin, etcd string, n int, m string) (float64, float64) {
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
	for i, h := range hosts {
		testenv.WaitHealthy(b, procs[i], 60*time.Second, h.ClientURL())
	}
	d := time.Since(start).Seconds()
	q := float64(queryCount(named)-before) / float64(n)
	for _, p := range procs {
		p.Signal(os.Kill)
	}
	return d, q
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
