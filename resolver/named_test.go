package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// zone starts named for example.test. with the hosts the tests resolve,
// inserted with nsupdate, and returns it with a Resolver asking it.
func zone(t *testing.T, records ...string) (*testenv.DNSServer, *Resolver) {
	t.Helper()
	return zoneOn(t, testenv.Named, records...)
}

// zoneOn is zone on another server than BIND (testenv.Knot, ...).
func zoneOn(t *testing.T, start func(testing.TB, string) *testenv.DNSServer, records ...string) (*testenv.DNSServer, *Resolver) {
	t.Helper()
	n := start(t, "example.test.")
	n.MustUpdate(t, append([]string{
		"update add infra1.example.test. 60 A 127.0.0.21",
		"update add infra2.example.test. 60 A 127.0.0.22",
		"update add infra3.example.test. 60 A 127.0.0.23",
		"update add dual.example.test. 60 A 127.0.0.24",
		"update add dual.example.test. 60 AAAA fd00::24",
		"update add v6only.example.test. 60 AAAA fd00::25",
	}, records...)...)
	return n, &Resolver{Servers: []string{n.Addr}, Timeout: time.Second}
}

func srvAdd(owner string, prio, weight, port int, target string) string {
	return fmt.Sprintf("update add %s.example.test. 60 SRV %d %d %d %s.example.test.", owner, prio, weight, port, target)
}

func wantErrContaining(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error; want one containing %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q lacks %q", what, err, p)
		}
	}
}

func TestLookupSRVAgainstNamed(t *testing.T) {
	n, r := zone(t,
		srvAdd("_etcd-server._tcp", 0, 70, 2380, "infra3"),
		srvAdd("_etcd-server._tcp", 1, 0, 2390, "dual"),
		srvAdd("_etcd-server._tcp", 0, 10, 2381, "infra1"),
		srvAdd("_etcd-server._tcp", 0, 20, 2382, "infra2"),
	)
	var asked []int
	r.Rand = scriptedRand(t, []int{0, 25}, &asked)
	got, err := r.LookupSRV(context.Background(), "etcd-server", "tcp", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, srv := range got {
		s = append(s, fmt.Sprintf("%d/%d %s:%d", srv.Priority, srv.Weight, srv.Target, srv.Port))
	}
	want := []string{
		"0/10 infra1.example.test.:2381", // draw 0 of 100
		"0/70 infra3.example.test.:2380", // draw 25 of 90
		"0/20 infra2.example.test.:2382",
		"1/0 dual.example.test.:2390",
	}
	if !slices.Equal(s, want) {
		t.Errorf("LookupSRV =\n%s\nwant\n%s", strings.Join(s, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(asked, []int{100, 90}) {
		t.Errorf("Rand asked for %v; want [100 90]", asked)
	}

	_, err = r.LookupSRV(context.Background(), "etcd-server-ssl", "tcp", "example.test")
	wantErrContaining(t, "missing name", err, "lookup _etcd-server-ssl._tcp.example.test. SRV on "+n.Addr+": NXDOMAIN")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	_, err = r.LookupSRV(context.Background(), "", "", "infra1.example.test")
	wantErrContaining(t, "name without SRV", err, "lookup infra1.example.test. SRV on "+n.Addr+": NOERROR, no SRV records")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	_, err = r.LookupSRV(context.Background(), "etcd-server", "tcp", "elsewhere.invalid")
	wantErrContaining(t, "name outside the zone", err, "lookup _etcd-server._tcp.elsewhere.invalid. SRV on "+n.Addr+": REFUSED")
	if IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = true for REFUSED", err)
	}

	n.MustUpdate(t, "update add _gone._tcp.example.test. 60 SRV 0 0 0 .")
	_, err = r.LookupSRV(context.Background(), "gone", "tcp", "example.test")
	if !errors.Is(err, ErrServiceUnavailable) || !IsNotFound(err) || !strings.Contains(err.Error(), n.Addr) {
		t.Errorf("SRV with target \".\": err = %v; want ErrServiceUnavailable naming the server", err)
	}
}

func TestLookupHostAgainstNamed(t *testing.T) {
	n, r := zone(t, srvAdd("_etcd-server._tcp", 0, 0, 2380, "infra1"))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"infra1.example.test.", []string{"127.0.0.21"}},
		{"infra1.example.test", []string{"127.0.0.21"}},
		{"dual.example.test.", []string{"127.0.0.24", "fd00::24"}},
		{"v6only.example.test.", []string{"fd00::25"}},
		{"127.0.0.5", []string{"127.0.0.5"}},
		{"::ffff:127.0.0.5", []string{"127.0.0.5"}},
	} {
		addrs, err := r.LookupHost(ctx, tc.name)
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("LookupHost(%q) = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	_, err := r.LookupHost(ctx, "nohost.example.test")
	wantErrContaining(t, "missing host", err, "lookup nohost.example.test. A on "+n.Addr+": NXDOMAIN")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	_, err = r.LookupHost(ctx, "_etcd-server._tcp.example.test")
	wantErrContaining(t, "name without addresses", err, "lookup _etcd-server._tcp.example.test. A/AAAA on "+n.Addr+": NOERROR, no A/AAAA records")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
}

// Cluster derives what etcd 3.5+ derives, case by case; each case has its
// own --discovery-srv-name so one zone holds them all.
// Cluster derives etcd's initial cluster from real answers; the same
// whether the answers carry the targets' addresses (BIND's additional
// section) or not (a proxy strips it, so every target is looked up).
func TestClusterAgainstNamed(t *testing.T) {
	n, direct := zone(t,
		srvAdd("_etcd-server-a._tcp", 0, 0, 2380, "infra1"),
		srvAdd("_etcd-server-a._tcp", 1, 0, 2380, "infra2"),
		srvAdd("_etcd-server-a._tcp", 2, 0, 2380, "infra3"),

		srvAdd("_etcd-server-ssl-b._tcp", 0, 0, 2380, "infra1"),
		srvAdd("_etcd-server-ssl-b._tcp", 1, 0, 2380, "infra2"),
		srvAdd("_etcd-server-b._tcp", 0, 0, 2380, "infra3"),

		srvAdd("_etcd-server-c._tcp", 0, 0, 2380, "infra1"),
		srvAdd("_etcd-server-c._tcp", 1, 0, 2381, "infra1"),

		srvAdd("_etcd-server-d._tcp", 0, 0, 2380, "ghost"),
		srvAdd("_etcd-server-d._tcp", 1, 0, 2380, "infra1"),
		srvAdd("_etcd-server-d._tcp", 2, 0, 2380, "infra2"),

		srvAdd("_etcd-server-e._tcp", 0, 0, 2380, "v6only"),
		srvAdd("_etcd-server-e._tcp", 1, 0, 2380, "infra1"),

		srvAdd("_etcd-server-f._tcp", 0, 0, 2380, "dual"),

		srvAdd("_etcd-server-ssl-g._tcp", 0, 0, 2380, "ghost"),
	)
	for _, tc := range []struct {
		name      string
		srvName   string
		advertise []string
		self      string
		want      string
		wantErr   []string
		noSelf    bool
	}{
		{
			name: "http records, self in the middle", srvName: "a",
			advertise: []string{"http://127.0.0.22:2380"}, self: "infra2",
			want: "0=http://infra1.example.test:2380,infra2=http://infra2.example.test:2380,1=http://infra3.example.test:2380",
		},
		{
			name: "advertised by host name", srvName: "a",
			advertise: []string{"http://infra3.example.test:2380"}, self: "infra3",
			want: "0=http://infra1.example.test:2380,1=http://infra2.example.test:2380,infra3=http://infra3.example.test:2380",
		},
		{
			name: "several advertised URLs, one matches", srvName: "a",
			advertise: []string{"http://127.0.0.99:2380", "http://127.0.0.21:2380"}, self: "infra1",
			want: "infra1=http://infra1.example.test:2380,0=http://infra2.example.test:2380,1=http://infra3.example.test:2380",
		},
		{
			// Placeholders restart at "0" for http: etcd would merge the
			// two "0" entries into one member (spec 5.3).
			name: "https first, placeholder counters per service", srvName: "b",
			advertise: []string{"https://127.0.0.22:2380"}, self: "infra2",
			want: "0=https://infra1.example.test:2380,infra2=https://infra2.example.test:2380,0=http://infra3.example.test:2380",
		},
		{
			name: "the port tells members on one host apart", srvName: "c",
			advertise: []string{"http://127.0.0.21:2381"}, self: "m2",
			want: "0=http://infra1.example.test:2380,m2=http://infra1.example.test:2381",
		},
		{
			name: "an unresolvable target is skipped and not counted", srvName: "d",
			advertise: []string{"http://127.0.0.22:2380"}, self: "infra2",
			want: "0=http://infra1.example.test:2380,infra2=http://infra2.example.test:2380",
		},
		{
			name: "IPv6-only target", srvName: "e",
			advertise: []string{"http://[fd00::25]:2380"}, self: "v6",
			want: "v6=http://v6only.example.test:2380,0=http://infra1.example.test:2380",
		},
		{
			name: "dual-stack target compares by its IPv4 address", srvName: "f",
			advertise: []string{"http://127.0.0.24:2380"}, self: "dual",
			want: "dual=http://dual.example.test:2380",
		},
		{
			name: "dual-stack target, advertised IPv6: not found (as in etcd)", srvName: "f",
			advertise: []string{"http://[fd00::24]:2380"}, self: "dual", noSelf: true,
			wantErr: []string{`cannot find local etcd member "dual" in SRV records of example.test`, "[fd00::24]:2380", "http://dual.example.test:2380 (127.0.0.24:2380)"},
		},
		{
			name: "self missing", srvName: "a",
			advertise: []string{"http://127.0.0.99:2380"}, self: "infra9", noSelf: true,
			wantErr: []string{
				`cannot find local etcd member "infra9" in SRV records of example.test`,
				"advertised peer URLs resolve to 127.0.0.99:2380",
				"http://infra1.example.test:2380 (127.0.0.21:2380)",
				"http://infra3.example.test:2380 (127.0.0.23:2380)",
			},
		},
		{
			name: "self found with another scheme", srvName: "a",
			advertise: []string{"https://127.0.0.22:2380"}, self: "infra2", noSelf: true,
			wantErr: []string{"http://infra2.example.test:2380 (127.0.0.22:2380, skipped: scheme differs from advertised https://127.0.0.22:2380)"},
		},
		{
			name: "self's target does not resolve", srvName: "d",
			advertise: []string{"http://127.0.0.30:2380"}, self: "ghost", noSelf: true,
			wantErr: []string{"http://ghost.example.test:2380 (skipped: lookup ghost.example.test. A on 127.0.0.1:"},
		},
		{
			name: "no records at all", srvName: "none",
			advertise: []string{"http://127.0.0.21:2380"}, self: "infra1",
			wantErr: []string{"_etcd-server-ssl-none._tcp.example.test. SRV on 127.0.0.1:", ": NXDOMAIN; lookup _etcd-server-none._tcp.example.test. SRV on 127.0.0.1:"},
		},
		{
			name: "the only record does not resolve", srvName: "g",
			advertise: []string{"https://127.0.0.21:2380"}, self: "infra1",
			wantErr: []string{"no usable record: https://ghost.example.test:2380 (skipped: lookup ghost.example.test. A on", "NXDOMAIN", "_etcd-server-g._tcp.example.test. SRV"},
		},
		{
			name: "advertised URL does not resolve", srvName: "a",
			advertise: []string{"http://nohost.example.test:2380"}, self: "x",
			wantErr: []string{"resolve advertised peer URL http://nohost.example.test:2380: lookup nohost.example.test. A on"},
		},
		{
			name: "advertised URL without port", srvName: "a",
			advertise: []string{"http://127.0.0.21"}, self: "infra1",
			wantErr: []string{`advertised peer URL "http://127.0.0.21": want scheme://host:port`},
		},
	} {
		for _, via := range []struct {
			name string
			r    *Resolver
		}{
			{"additional section", direct},
			{"lookups", &Resolver{Servers: []string{testenv.StartDNSProxy(t, n.Addr, true).Addr}, Timeout: time.Second}},
		} {
			t.Run(tc.name+"/"+via.name, func(t *testing.T) {
				got, err := via.r.Cluster(context.Background(), "example.test", tc.srvName, tc.advertise, tc.self)
				if tc.wantErr == nil {
					if err != nil || got != tc.want {
						t.Errorf("Cluster = %q, %v;\nwant %q", got, err, tc.want)
					}
					return
				}
				wantErrContaining(t, "Cluster", err, tc.wantErr...)
				if errors.Is(err, ErrNoSelf) != tc.noSelf {
					t.Errorf("errors.Is(err, ErrNoSelf) = %v; want %v", !tc.noSelf, tc.noSelf)
				}
			})
		}
	}
}

// BIND, Knot and PowerDNS add the targets' addresses to SRV answers, so
// Peers asks one query per scheme; without them (stripped), it also asks A
// and AAAA per target; the peers are the same.
func TestPeersQueries(t *testing.T) {
	for _, start := range testenv.DNSServers() {
		n, _ := zoneOn(t, start,
			srvAdd("_etcd-server._tcp", 0, 0, 2380, "infra1"),
			srvAdd("_etcd-server._tcp", 1, 0, 2380, "infra2"),
			srvAdd("_etcd-server._tcp", 2, 0, 2380, "dual"),
		)
		t.Run(n.Kind, func(t *testing.T) { testPeersQueries(t, n) })
	}
}

func testPeersQueries(t *testing.T, n *testenv.DNSServer) {
	want := []string{
		"http infra1.example.test.:2380 127.0.0.21:2380 [127.0.0.21]",
		"http infra2.example.test.:2380 127.0.0.22:2380 [127.0.0.22]",
		"http dual.example.test.:2380 127.0.0.24:2380 [127.0.0.24 fd00::24]",
	}
	for _, tc := range []struct {
		name    string
		strip   bool
		schemes []string
		queries int
	}{
		{"http only, addresses in the answer", false, []string{"http"}, 1},
		{"both schemes, addresses in the answer", false, nil, 2},
		{"http only, addresses looked up", true, []string{"http"}, 1 + 2*3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.StartDNSProxy(t, n.Addr, tc.strip)
			r := &Resolver{Servers: []string{p.Addr}, Timeout: time.Second}
			peers, err := r.Peers(context.Background(), "example.test", "", tc.schemes...)
			if err != nil && len(tc.schemes) == 1 {
				t.Fatal(err)
			}
			var got []string
			for _, p := range peers {
				got = append(got, fmt.Sprintf("%s %s:%d %s %v", p.Scheme, p.Target, p.Port, p.Addr, p.Addrs))
			}
			if !slices.Equal(got, want) {
				t.Errorf("Peers =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if q := p.Queries(); len(q) != tc.queries {
				t.Errorf("%d queries; want %d: %v", len(q), tc.queries, q)
			}
		})
	}
}

func TestClientURLsAgainstNamed(t *testing.T) {
	n, r := zone(t,
		srvAdd("_etcd-client-ssl._tcp", 0, 0, 2379, "infra1"),
		srvAdd("_etcd-client._tcp", 0, 0, 2379, "infra2"),
		srvAdd("_etcd-client._tcp", 1, 0, 2379, "infra3"),
		srvAdd("_etcd-client-h._tcp", 0, 0, 12379, "infra2"),
	)
	ctx := context.Background()
	for _, tc := range []struct {
		srvName string
		schemes []string
		want    []string
	}{
		{"", nil, []string{"https://infra1.example.test.:2379", "http://infra2.example.test.:2379", "http://infra3.example.test.:2379"}},
		{"", []string{"http"}, []string{"http://infra2.example.test.:2379", "http://infra3.example.test.:2379"}},
		{"h", nil, []string{"http://infra2.example.test.:12379"}},
	} {
		got, err := r.ClientURLs(ctx, "example.test", tc.srvName, tc.schemes...)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ClientURLs(%q, %v) = %v, %v; want %v", tc.srvName, tc.schemes, got, err, tc.want)
		}
	}
	_, err := r.ClientURLs(ctx, "example.test", "h", "https")
	wantErrContaining(t, "https only", err, "lookup _etcd-client-ssl-h._tcp.example.test. SRV on "+n.Addr+": NXDOMAIN")
	_, err = r.ClientURLs(ctx, "example.test", "none")
	wantErrContaining(t, "no records", err, "_etcd-client-ssl-none._tcp.example.test. SRV on", "_etcd-client-none._tcp.example.test. SRV on")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	if _, err := r.ClientURLs(ctx, "example.test", "", "ftp"); err == nil {
		t.Error("scheme ftp accepted")
	}
}

// An SRV answer larger than the EDNS0 buffer comes back truncated over UDP;
// the resolver asks again over TCP and gets every record.
func TestTCPFallback(t *testing.T) {
	const records = 60 // about 40 bytes each: well over 1232 bytes
	var add []string
	for i := range records {
		add = append(add, fmt.Sprintf("update add _etcd-server-big._tcp.example.test. 60 SRV 0 0 %d member%02d.example.test.", 2380+i, i))
	}
	n, r := zone(t, add...)

	// What the resolver sends over UDP does come back truncated.
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	resp, _, err := c.Exchange(newQuery("_etcd-server-big._tcp.example.test", dns.TypeSRV), n.Addr)
	if resp == nil || !resp.Truncated {
		t.Fatalf("UDP answer not truncated (err %v): %v", err, resp)
	}

	got, err := r.LookupSRV(context.Background(), "etcd-server-big", "tcp", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != records {
		t.Fatalf("LookupSRV returned %d records; want %d", len(got), records)
	}
	ports := map[uint16]bool{}
	for _, s := range got {
		ports[s.Port] = true
	}
	if len(ports) != records {
		t.Errorf("%d distinct records; want %d", len(ports), records)
	}
}

// silentServer is a UDP socket that never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// closedPort is a UDP port nobody listens on a moment later.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// rcodeServer is an in-process UDP server that answers every query with
// rcode.
func rcodeServer(t *testing.T, rcode int) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("in-process DNS server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// Servers that fail are skipped for the next one; a definite answer
// (NXDOMAIN) is final; every wait is bounded by Timeout or ctx; errors name
// the server.
func TestServers(t *testing.T) {
	n, _ := zone(t, srvAdd("_etcd-server._tcp", 0, 0, 2380, "infra1"))
	ctx := context.Background()
	lookup := func(ctx context.Context, timeout time.Duration, servers ...string) ([]*net.SRV, error, time.Duration) {
		r := &Resolver{Servers: servers, Timeout: timeout}
		start := time.Now()
		srvs, err := r.LookupSRV(ctx, "etcd-server", "tcp", "example.test")
		return srvs, err, time.Since(start)
	}

	t.Run("silent server", func(t *testing.T) {
		silent := silentServer(t)
		_, err, took := lookup(ctx, 300*time.Millisecond, silent)
		wantErrContaining(t, "silent", err, "lookup _etcd-server._tcp.example.test. SRV on "+silent+": ", "timeout")
		var le *LookupError
		if !errors.As(err, &le) || !le.Timeout() || le.Server != silent || le.Rcode != -1 {
			t.Errorf("err = %#v; want a timeout LookupError for %s", le, silent)
		}
		if took < 250*time.Millisecond || took > 2*time.Second {
			t.Errorf("took %v; want about the 300ms timeout", took)
		}
	})
	t.Run("closed port", func(t *testing.T) {
		closed := closedPort(t)
		_, err, took := lookup(ctx, 300*time.Millisecond, closed)
		wantErrContaining(t, "closed", err, "on "+closed+": ")
		if took > 2*time.Second {
			t.Errorf("took %v", took)
		}
	})
	t.Run("silent then named", func(t *testing.T) {
		srvs, err, took := lookup(ctx, 300*time.Millisecond, silentServer(t), n.Addr)
		if err != nil || len(srvs) != 1 {
			t.Fatalf("got %v, %v", srvs, err)
		}
		if took < 250*time.Millisecond || took > 3*time.Second {
			t.Errorf("took %v; want the first server's timeout and then an answer", took)
		}
	})
	t.Run("a dead first server costs one timeout per Resolver", func(t *testing.T) {
		r := &Resolver{Servers: []string{silentServer(t), n.Addr}, Timeout: 300 * time.Millisecond}
		start := time.Now()
		// SRV, then A and AAAA for each of two names: five queries.
		if _, err := r.LookupSRV(ctx, "etcd-server", "tcp", "example.test"); err != nil {
			t.Fatal(err)
		}
		for _, host := range []string{"infra1.example.test", "infra2.example.test"} {
			if _, err := r.LookupHost(ctx, host); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took < 250*time.Millisecond || took > 550*time.Millisecond {
			t.Errorf("took %v; want one 300ms timeout, not one per query", took)
		}
	})
	t.Run("SERVFAIL then named", func(t *testing.T) {
		srvs, err, _ := lookup(ctx, time.Second, rcodeServer(t, dns.RcodeServerFailure), n.Addr)
		if err != nil || len(srvs) != 1 {
			t.Fatalf("got %v, %v", srvs, err)
		}
	})
	t.Run("every server fails", func(t *testing.T) {
		servfail, refused := rcodeServer(t, dns.RcodeServerFailure), rcodeServer(t, dns.RcodeRefused)
		_, err, _ := lookup(ctx, time.Second, servfail, refused)
		wantErrContaining(t, "all fail", err,
			"lookup _etcd-server._tcp.example.test. SRV on "+servfail+": SERVFAIL; ",
			"lookup _etcd-server._tcp.example.test. SRV on "+refused+": REFUSED")
		if IsNotFound(err) {
			t.Error("IsNotFound is true when servers failed")
		}
	})
	t.Run("NXDOMAIN is final", func(t *testing.T) {
		nx := rcodeServer(t, dns.RcodeNameError)
		_, err, _ := lookup(ctx, time.Second, nx, n.Addr)
		wantErrContaining(t, "nxdomain", err, "on "+nx+": NXDOMAIN")
		if !IsNotFound(err) {
			t.Error("IsNotFound = false")
		}
	})
	t.Run("ctx deadline shorter than the timeout", func(t *testing.T) {
		silent := silentServer(t)
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err, took := lookup(dctx, 10*time.Second, silent, n.Addr)
		// The deadline ends the query through the context or through the
		// socket's read deadline, whichever fires first.
		if !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)) || !strings.Contains(err.Error(), "on "+silent) {
			t.Errorf("err = %v; want the ctx deadline on %s", err, silent)
		}
		if took > 2*time.Second {
			t.Errorf("took %v; want about 200ms", took)
		}
	})
	t.Run("ctx cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err, took := lookup(cctx, 10*time.Second, silentServer(t))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v; want context.Canceled", err)
		}
		if took > 2*time.Second {
			t.Errorf("took %v; want about 200ms", took)
		}
	})
}
