package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/dnsupdate"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// dnsHosts are three hosts' records under example.test.
func dnsHosts(round int) []dnsupdate.Host {
	hs := make([]dnsupdate.Host, 3)
	for i := range hs {
		hs[i] = dnsupdate.Host{
			Domain: "example.test.", Name: fmt.Sprintf("r%dh%d", round, i+1),
			Addr:     netip.AddrFrom4([4]byte{10, byte(round >> 8), byte(round), byte(i + 1)}),
			PeerPort: 2380, ClientPort: 2379, Scheme: "http", TTL: 60,
		}
	}
	return hs
}

// nsupdateScript adds three hosts' records in one nsupdate run with one
// "send" (one UPDATE message) per host, as the agent sends one per host.
func nsupdateScript(server string, hs []dnsupdate.Host) string {
	host, port, _ := net.SplitHostPort(server)
	var b strings.Builder
	fmt.Fprintf(&b, "server %s %s\n", host, port)
	for _, h := range hs {
		b.WriteString("zone example.test.\n")
		for _, rr := range h.RRs() {
			fmt.Fprintf(&b, "update add %s\n", rr.String())
		}
		b.WriteString("send\n")
	}
	return b.String()
}

// BenchmarkPublish: three hosts' records (peer SRV, client SRV, A each)
// until visible at the server, the agent's updates (its dnsupdate package,
// in process) vs one nsupdate run doing the same (which includes starting
// nsupdate and reading the key), interleaved round by round; reports the
// medians and their ratio.
func BenchmarkPublish(b *testing.B) {
	rounds := benchRounds(b, 30)
	named := testenv.Named(b, "example.test.")
	key, err := dnsupdate.ReadKeyFile(named.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	u := &dnsupdate.Updater{Server: named.Addr, Zone: "example.test.", Key: key}
	nsupdate, err := exec.LookPath("nsupdate")
	if err != nil {
		testenv.SkipUnlessCI(b, "no nsupdate (apt-get install bind9-dnsutils)")
	}
	var agentT, nsT []float64
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		hs := dnsHosts(2 * r)
		start := time.Now()
		for _, h := range hs {
			if err := u.Publish(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
		waitVisible(b, named, hs)
		agentT = append(agentT, time.Since(start).Seconds())

		hs = dnsHosts(2*r + 1)
		start = time.Now()
		cmd := exec.CommandContext(ctx, nsupdate, "-v", "-k", named.KeyFile)
		cmd.Stdin = strings.NewReader(nsupdateScript(named.Addr, hs))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("nsupdate: %v\n%s", err, out)
		}
		waitVisible(b, named, hs)
		nsT = append(nsT, time.Since(start).Seconds())

		// Not timed: empty the RRsets again (BIND 9.18 refuses more than
		// max-records-per-type, 100 by default, records in one RRset).
		for _, h := range append(dnsHosts(2*r), hs...) {
			if err := u.Withdraw(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
	}
	ma, mn := median(agentT), median(nsT)
	b.ReportMetric(ma*1000, "agent-median-ms")
	b.ReportMetric(mn*1000, "nsupdate-median-ms")
	b.ReportMetric(ma/mn, "agent/nsupdate")
	var sb strings.Builder
	sb.WriteString(runInfo(b, "BenchmarkPublish", dnsTimeout, []string{testenv.NamedBinary(b), "-v"}))
	fmt.Fprintf(&sb, "Three hosts' records (peer SRV, client SRV and A each), one UPDATE per host, until every host's A record answers, on BIND on loopback (`testenv.Named`); "+
		"the agent's `dnsupdate` (in process) and one `nsupdate -v` run with three sends (including its start and reading the key), interleaved; rounds: %d each:\n\n", rounds)
	table(&sb, "lrrr", []string{"publisher", "median ms", "min ms", "max ms"}, [][]string{
		msRow("agent (`dnsupdate`)", agentT), msRow("`nsupdate`", nsT)})
	fmt.Fprintf(&sb, "Ratio of the medians, agent/nsupdate: %.3f.\n", ma/mn)
	writeSection(b, "BenchmarkPublish", sb.String())
}

// dnsTimeout is the -timeout the commands in the DNS reports name.
const dnsTimeout = "10m"

// msRow is a table row: what, then the median, min and max of xs (seconds)
// in milliseconds.
func msRow(what string, xs []float64) []string {
	return []string{what, fmt.Sprintf("%.2f", median(xs)*1000), fmt.Sprintf("%.2f", slices.Min(xs)*1000), fmt.Sprintf("%.2f", slices.Max(xs)*1000)}
}

// usRow is msRow in microseconds.
func usRow(what string, xs []float64) []string {
	return []string{what, fmt.Sprintf("%.0f", median(xs)*1e6), fmt.Sprintf("%.0f", slices.Min(xs)*1e6), fmt.Sprintf("%.0f", slices.Max(xs)*1e6)}
}

// waitVisible polls the server until every host's A record answers.
func waitVisible(b *testing.B, named *testenv.DNSServer, hs []dnsupdate.Host) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, h := range hs {
		for len(named.Records(b, h.Target(), dns.TypeA)) == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("%s not visible after 10 s", h.Target())
			}
		}
	}
}

// BenchmarkSRVLookup: one SRV lookup with its targets' addresses, the
// agent's resolver vs Go's net.Resolver (pure Go, dialing the same named),
// interleaved; reports medians and their ratio. The resolver is timed
// twice: asking like net.Resolver (LookupSRV, then LookupHost per target)
// and as the agent asks (Peers: the addresses from the SRV answer's
// additional section, one query).
func BenchmarkSRVLookup(b *testing.B) {
	rounds := benchRounds(b, 200)
	named := testenv.Named(b, "example.test.")
	key, err := dnsupdate.ReadKeyFile(named.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	u := &dnsupdate.Updater{Server: named.Addr, Zone: "example.test.", Key: key}
	for _, h := range dnsHosts(0) {
		if err := u.Publish(context.Background(), h); err != nil {
			b.Fatal(err)
		}
	}
	ours := &resolver.Resolver{Servers: []string{named.Addr}}
	goRes := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, named.Addr)
	}}
	ctx := context.Background()
	var oursT, peersT, goT []float64
	for r := 0; r < rounds; r++ {
		start := time.Now()
		srvs, err := ours.LookupSRV(ctx, "etcd-server", "tcp", "example.test.")
		if err != nil || len(srvs) != 3 {
			b.Fatalf("resolver: %v %v", srvs, err)
		}
		for _, s := range srvs {
			if _, err := ours.LookupHost(ctx, s.Target); err != nil {
				b.Fatal(err)
			}
		}
		oursT = append(oursT, time.Since(start).Seconds())

		start = time.Now()
		peers, err := ours.Peers(ctx, "example.test.", "", "http")
		if err != nil || len(peers) != 3 || peers[0].Err != nil {
			b.Fatalf("resolver.Peers: %v %v", peers, err)
		}
		peersT = append(peersT, time.Since(start).Seconds())

		start = time.Now()
		_, gsrvs, err := goRes.LookupSRV(ctx, "etcd-server", "tcp", "example.test.")
		if err != nil || len(gsrvs) != 3 {
			b.Fatalf("net.Resolver: %v %v", gsrvs, err)
		}
		for _, s := range gsrvs {
			if _, err := goRes.LookupNetIP(ctx, "ip", s.Target); err != nil {
				b.Fatal(err)
			}
		}
		goT = append(goT, time.Since(start).Seconds())
	}
	mo, mp, mg := median(oursT), median(peersT), median(goT)
	b.ReportMetric(mo*1e6, "resolver-median-us")
	b.ReportMetric(mp*1e6, "resolver-peers-median-us")
	b.ReportMetric(mg*1e6, "net.Resolver-median-us")
	b.ReportMetric(mo/mg, "resolver/net.Resolver")
	b.ReportMetric(mp/mg, "peers/net.Resolver")
	var sb strings.Builder
	sb.WriteString(runInfo(b, "BenchmarkSRVLookup", dnsTimeout, []string{testenv.NamedBinary(b), "-v"}))
	fmt.Fprintf(&sb, "One SRV lookup (three targets) and the targets' addresses, from BIND on loopback (`testenv.Named`), interleaved; rounds: %d each:\n\n", rounds)
	table(&sb, "lrrr", []string{"client", "median µs", "min µs", "max µs"}, [][]string{
		usRow("`resolver`, asked like net.Resolver: LookupSRV, then LookupHost per target", oursT),
		usRow("`resolver.Peers`: one SRV query, addresses from its additional section", peersT),
		usRow("Go's `net.Resolver` (pure Go, same server): LookupSRV, then LookupNetIP per target", goT)})
	fmt.Fprintf(&sb, "Ratios of the medians to net.Resolver's: resolver %.3f, resolver.Peers %.3f.\n", mo/mg, mp/mg)
	writeSection(b, "BenchmarkSRVLookup", sb.String())
}
