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

// BenchmarkSRVBootstrap: time from launching N hosts to a healthy cluster
// when the cluster is found by DNS SRV records (published beforehand, as
// the hosts' agents or an operator would), for
//
//	s  the agent's SRV mode (--discovery-srv, static env file), then etcd
//	e  etcd's own --discovery-srv
//
// both with etcd 3.7.3 (3.4's own SRV discovery takes no http records),
// each host in its own network namespace resolving through the test's BIND;
// and the DNS queries BIND answered per member (its query log).
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
	for _, n := range []int{3, 5} {
		times := map[string][]float64{}
		queries := map[string][]float64{}
		for r := 0; r < rounds; r++ {
			for _, m := range []string{"s", "e"} {
				b.Run(fmt.Sprintf("N=%d/%s/%d", n, m, r), func(b *testing.B) {
					d, q := srvRound(b, agentBin, etcd, n, m)
					times[m] = append(times[m], d)
					queries[m] = append(queries[m], q)
				})
			}
		}
		ms, me := median(times["s"]), median(times["e"])
		b.Logf("N=%d, %d rounds: agent SRV mode %.3f s, etcd --discovery-srv %.3f s (median), ratio e/s %.2f; DNS queries per member %.1f vs %.1f",
			n, rounds, ms, me, me/ms, median(queries["s"]), median(queries["e"]))
		b.ReportMetric(ms, fmt.Sprintf("N%d-agent-median-s", n))
		b.ReportMetric(me, fmt.Sprintf("N%d-etcd-median-s", n))
		b.ReportMetric(me/ms, fmt.Sprintf("N%d-etcd/agent", n))
		b.ReportMetric(median(queries["s"]), fmt.Sprintf("N%d-queries/member-agent", n))
		b.ReportMetric(median(queries["e"]), fmt.Sprintf("N%d-queries/member-etcd", n))
	}
}

// srvRound builds a network of n hosts, publishes their records, launches
// them with method m and returns the seconds until all are healthy and the
// DNS queries per member.
func srvRound(b *testing.B, agentBin, etcd string, n int, m string) (float64, float64) {
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
		if err := u.Publish(context.Background(), dnsupdate.Host{Domain: "example.test.", Name: h.Name, Addr: h.Addr, PeerPort: 2380, ClientPort: 2379, Scheme: "http", TTL: 60}); err != nil {
			b.Fatal(err)
		}
	}
	before := strings.Count(named.Proc.Output(), "query: ")
	start := time.Now()
	procs := make([]*testenv.Process, n)
	for i, h := range hosts {
		switch m {
		case "s":
			procs[i] = testenv.StartNetHost(b, agentBin, etcd, h, "bootstrap", "--name", h.Name,
				"--advertise-address", h.Addr.String(), "--data-dir", h.DataDir(), "--env-file", h.EnvFile(),
				"--state-dir", h.StateDir(), "--discovery-srv", "example.test", "--size", strconv.Itoa(n), "--timeout", "60s")
		case "e":
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
	q := float64(strings.Count(named.Proc.Output(), "query: ")-before) / float64(n)
	for _, p := range procs {
		p.Signal(os.Kill)
	}
	return d, q
}
