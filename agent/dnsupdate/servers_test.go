package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// updater reads keyFile and returns an Updater for s's zone.
func updater(t *testing.T, s *testenv.DNSServer, keyFile string) *Updater {
	t.Helper()
	k, err := ReadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &Updater{Server: s.Addr, Zone: s.Zone, Key: k, Timeout: 10 * time.Second}
}

// lookup asks addr for name/qtype over TCP, without recursion, with dig
// (bind9-dnsutils) so that the check does not share code with the
// updater; without dig it uses miekg/dns. It returns the answer records in
// presentation format, single-spaced and sorted.
func lookup(t *testing.T, addr, name string, qtype uint16) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rrs []string
	if dig, err := exec.LookPath("dig"); err == nil {
		out, err := exec.CommandContext(ctx, dig, "@"+host, "-p", port, "+tcp", "+norecurse", "+noall", "+answer",
			"+tries=1", "+time=5", name, dns.TypeToString[qtype]).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s %s: %v: %s", name, dns.TypeToString[qtype], err, out)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			if line == "" || strings.HasPrefix(line, ";") {
				continue
			}
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("dig printed %q: %v", line, err)
			}
			rrs = append(rrs, strings.Join(strings.Fields(rr.String()), " "))
		}
	} else {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		m.RecursionDesired = false
		r, _, err := (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, m, addr)
		if err != nil {
			t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
		}
		rrs = rrStrings(r.Answer)
	}
	slices.Sort(rrs)
	return rrs
}

// zoneView is what a test can see of the names that hosts publish under:
// the SRV records, each target's address records, and the SOA serial.
type zoneView struct {
	records []string
	serial  uint32
}

func view(t *testing.T, addr, zone string, hosts ...Host) zoneView {
	t.Helper()
	var v zoneView
	seen := map[string]bool{}
	add := func(name string, qtype uint16) {
		key := name + "/" + dns.TypeToString[qtype]
		if seen[key] {
			return
		}
		seen[key] = true
		v.records = append(v.records, lookup(t, addr, name, qtype)...)
	}
	for _, h := range hosts {
		add(h.PeerService(), dns.TypeSRV)
		add(h.ClientService(), dns.TypeSRV)
		add(h.Target(), dns.TypeA)
		add(h.Target(), dns.TypeAAAA)
	}
	slices.Sort(v.records)
	soa := lookup(t, addr, zone, dns.TypeSOA)
	if len(soa) != 1 {
		t.Fatalf("SOA of %s: %q", zone, soa)
	}
	rr, err := dns.NewRR(soa[0])
	if err != nil {
		t.Fatal(err)
	}
	v.serial = rr.(*dns.SOA).Serial
	return v
}

// expect is the sorted presentation form of hosts' records.
func expect(hosts ...Host) []string {
	var want []string
	for _, h := range hosts {
		want = append(want, rrStrings(h.RRs())...)
	}
	slices.Sort(want)
	return want
}

func threeHosts() []Host {
	hosts := make([]Host, 3)
	for i := range hosts {
		hosts[i] = testHost(fmt.Sprintf("infra%d", i+1), fmt.Sprintf("127.0.0.%d", 21+i))
	}
	return hosts
}

// Three hosts publish at once into one zone of a real BIND, Knot and
// PowerDNS; re-publishing changes nothing; withdrawing one leaves exactly
// the others.
func TestPublishWithdraw(t *testing.T) {
	for _, start := range testenv.DNSServers() {
		s := start(t, "example.test")
		t.Run(s.Kind, func(t *testing.T) { testPublishWithdraw(t, s) })
	}
}

func testPublishWithdraw(t *testing.T, s *testenv.DNSServer) {
	u := updater(t, s, s.KeyFile)
	hosts := threeHosts()
	ctx := context.Background()

	before := view(t, s.Addr, s.Zone, hosts...)
	if len(before.records) != 0 {
		t.Fatalf("zone not empty before publishing: %q", before.records)
	}

	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Go(func() { errs[i] = u.Publish(ctx, h) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	published := view(t, s.Addr, s.Zone, hosts...)
	want := expect(hosts...)
	if !slices.Equal(published.records, want) {
		t.Fatalf("after three concurrent publishes:\n got %q\nwant %q", published.records, want)
	}
	srv := lookup(t, s.Addr, "_etcd-server._tcp.example.test", dns.TypeSRV)
	cli := lookup(t, s.Addr, "_etcd-client._tcp.example.test", dns.TypeSRV)
	if len(srv) != 3 || len(cli) != 3 {
		t.Fatalf("peer SRV %q, client SRV %q; want three each", srv, cli)
	}
	t.Logf("published (serial %d -> %d):\n%s", before.serial, published.serial, strings.Join(published.records, "\n"))

	// Publishing again, one at a time and all at once, is a no-op: the
	// same records and the same serial.
	for _, h := range hosts {
		if err := u.Publish(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	again := view(t, s.Addr, s.Zone, hosts...)
	if !slices.Equal(again.records, want) || again.serial != published.serial {
		t.Fatalf("re-publishing changed the zone: serial %d -> %d\n got %q\nwant %q", published.serial, again.serial, again.records, want)
	}

	// Withdraw infra2: exactly its three records go.
	if err := u.Withdraw(ctx, hosts[1]); err != nil {
		t.Fatal(err)
	}
	after := view(t, s.Addr, s.Zone, hosts...)
	want = expect(hosts[0], hosts[2])
	if !slices.Equal(after.records, want) {
		t.Fatalf("after withdrawing infra2:\n got %q\nwant %q", after.records, want)
	}
	// Withdrawing again is a no-op.
	if err := u.Withdraw(ctx, hosts[1]); err != nil {
		t.Fatal(err)
	}
	if again := view(t, s.Addr, s.Zone, hosts...); !slices.Equal(again.records, want) || again.serial != after.serial {
		t.Fatalf("withdrawing twice changed the zone: serial %d -> %d, %q", after.serial, again.serial, again.records)
	}

	// https, a service suffix, IPv6, a subdomain of the zone and another
	// TTL use their own names and leave the others alone.
	h6 := Host{
		Domain: "etcd.example.test.", Name: "infra4", Addr: netip.MustParseAddr("fd00::4"),
		PeerPort: 12380, ClientPort: 12379, Scheme: "https", SRVName: "prod", TTL: 300,
	}
	if err := u.Publish(ctx, h6); err != nil {
		t.Fatal(err)
	}
	got := lookup(t, s.Addr, "_etcd-server-ssl-prod._tcp.etcd.example.test", dns.TypeSRV)
	got = append(got, lookup(t, s.Addr, "_etcd-client-ssl-prod._tcp.etcd.example.test", dns.TypeSRV)...)
	got = append(got, lookup(t, s.Addr, "infra4.etcd.example.test", dns.TypeAAAA)...)
	wantH6 := []string{
		"_etcd-server-ssl-prod._tcp.etcd.example.test. 300 IN SRV 0 0 12380 infra4.etcd.example.test.",
		"_etcd-client-ssl-prod._tcp.etcd.example.test. 300 IN SRV 0 0 12379 infra4.etcd.example.test.",
		"infra4.etcd.example.test. 300 IN AAAA fd00::4",
	}
	if !slices.Equal(got, wantH6) {
		t.Fatalf("https/SRV name/IPv6 host:\n got %q\nwant %q", got, wantH6)
	}
	if now := view(t, s.Addr, s.Zone, hosts...); !slices.Equal(now.records, want) {
		t.Fatalf("publishing infra4 changed the others: %q", now.records)
	}
	if err := u.Withdraw(ctx, h6); err != nil {
		t.Fatal(err)
	}
	if now := view(t, s.Addr, s.Zone, h6); len(now.records) != 0 {
		t.Fatalf("infra4 left behind %q", now.records)
	}
}

// checkRejected asserts err is an *UpdateError with code, whose message
// contains every string of want and no secret, and that the zone still
// holds nothing for h.
func checkRejected(t *testing.T, s *testenv.DNSServer, err error, code string, h Host, want ...string) *UpdateError {
	t.Helper()
	var ue *UpdateError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want *UpdateError %s", err, code)
	}
	t.Logf("%s answered %s (rcode %d, TSIG error %d):\n  %v", s.Kind, ue.Code(), ue.Rcode, ue.TSIGError, err)
	if ue.Code() != code {
		t.Errorf("code %q, want %q", ue.Code(), code)
	}
	if ue.Retryable() {
		t.Errorf("%s is marked retryable", code)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q", w)
		}
	}
	wrong, rerr := os.ReadFile(s.WrongKeyFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	assertNoSecret(t, err.Error(), s.Secret, regexp.MustCompile(`secret "([^"]+)"`).FindStringSubmatch(string(wrong))[1])
	if v := view(t, s.Addr, s.Zone, h); len(v.records) != 0 {
		t.Errorf("the rejected update changed the zone: %q", v.records)
	}
	return ue
}

// Updates the servers must reject, and what each answers: BIND and Knot
// NOTAUTH with a TSIG error, PowerDNS REFUSED without a signature for
// every key problem.
func TestRejects(t *testing.T) {
	for _, start := range testenv.DNSServers() {
		s := start(t, "example.test")
		t.Run(s.Kind, func(t *testing.T) { testRejects(t, s) })
	}
}

func testRejects(t *testing.T, s *testenv.DNSServer) {
	h := testHost("infra9", "127.0.0.29")
	ctx := context.Background()
	t.Run("probe with the right key", func(t *testing.T) {
		if err := updater(t, s, s.KeyFile).Probe(ctx, h); err != nil {
			t.Fatalf("Probe = %v", err)
		}
		if v := view(t, s.Addr, s.Zone, h); len(v.records) != 0 {
			t.Errorf("the probe changed the zone: %q", v.records)
		}
	})
	// keyProblem is what the server answers to a key it does not accept:
	// PowerDNS answers them all alike.
	keyProblem := func(code string, want ...string) (string, []string) {
		if s.Kind == "powerdns" {
			return "REFUSED", []string{"refused the update without signing its answer", `did not accept key "`}
		}
		return code, want
	}

	t.Run("wrong secret", func(t *testing.T) {
		// testenv's WrongKeyFile: the right name and algorithm, another
		// secret.
		u := updater(t, s, s.WrongKeyFile)
		code, want := keyProblem("NOTAUTH/BADSIG",
			`the server knows key "eda-test-key" but our signature did not verify`, "secret in the key file differs")
		checkRejected(t, s, u.Publish(ctx, h), code, h, want...)
		checkRejected(t, s, u.Probe(ctx, h), code, h, want...)
	})
	t.Run("unknown key name", func(t *testing.T) {
		u := updater(t, s, s.KeyFile)
		u.Key.Name = "no-such-key"
		code, want := keyProblem("NOTAUTH/BADKEY", `the server does not know key "no-such-key" with algorithm hmac-sha256`)
		checkRejected(t, s, u.Publish(ctx, h), code, h, want...)
		checkRejected(t, s, u.Probe(ctx, h), code, h, want...)
	})
	t.Run("wrong algorithm", func(t *testing.T) {
		u := updater(t, s, s.KeyFile)
		u.Key.Algorithm = "hmac-sha512"
		code, want := keyProblem("NOTAUTH/BADKEY", "with algorithm hmac-sha512")
		checkRejected(t, s, u.Publish(ctx, h), code, h, want...)
		checkRejected(t, s, u.Probe(ctx, h), code, h, want...)
	})
	t.Run("clock off by two hours", func(t *testing.T) {
		u := updater(t, s, s.KeyFile)
		u.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
		code, want := keyProblem("NOTAUTH/BADTIME",
			"differ by more than the 300 s TSIG fudge", "the server's clock is 2h0m", "ahead", "NTP")
		checkRejected(t, s, u.Publish(ctx, h), code, h, want...)
		checkRejected(t, s, u.Probe(ctx, h), code, h, want...)
	})
	t.Run("zone the server does not serve", func(t *testing.T) {
		u := updater(t, s, s.KeyFile)
		u.Zone = "other.test"
		other := h
		other.Domain = "other.test"
		checkRejected(t, s, u.Publish(ctx, other), "NOTAUTH", h,
			"not authoritative for zone other.test.")
		checkRejected(t, s, u.Probe(ctx, other), "NOTAUTH", h,
			"not authoritative for zone other.test.")
	})
	t.Run("name outside the zone", func(t *testing.T) {
		u := updater(t, s, s.KeyFile)
		outside := h
		outside.Domain = "example.org"
		// Publish refuses before sending ...
		err := u.Publish(ctx, outside)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "would answer NOTZONE") {
			t.Fatalf("Publish outside the zone = %v", err)
		}
		// ... what the server would answer: an update for example.test.
		// with names in example.org.
		m := publishMsg(u.Zone, outside.RRs())
		u.sign(m)
		r, xerr := u.exchange(ctx, m)
		checkRejected(t, s, u.answerError("publish", outside, m, r, xerr), "NOTZONE", h,
			"outside zone example.test.", "SRV domain example.org. must be in the zone")
	})
}

// A key the server knows but whose update-policy does not grant the names:
// REFUSED, and the update-policy line the message suggests makes it work.
func TestBINDRefused(t *testing.T) {
	s := testenv.Named(t, "example.test") // for its key file
	h := testHost("infra1", "127.0.0.21")
	h.Domain = "etcd.example.test"
	ctx := context.Background()

	narrow := s.WithPolicy(t, fmt.Sprintf(`update-policy { grant %q name only-this.example.test. TXT; };`, s.KeyName))
	u := updater(t, s, s.KeyFile)
	u.Server = narrow.Addr
	err := u.Publish(ctx, h)
	var ue *UpdateError
	if !errors.As(err, &ue) || ue.Code() != "REFUSED" {
		t.Fatalf("got %v, want REFUSED", err)
	}
	t.Logf("BIND answered %s (rcode %d, TSIG error %d):\n  %v", ue.Code(), ue.Rcode, ue.TSIGError, err)
	assertNoSecret(t, err.Error(), s.Secret)
	if v := view(t, narrow.Addr, s.Zone, h); len(v.records) != 0 {
		t.Fatalf("refused update changed the zone: %q", v.records)
	}
	policy := regexp.MustCompile(`update-policy \{ .* \};`).FindString(err.Error())
	if policy == "" {
		t.Fatalf("no update-policy line in %v", err)
	}

	granted := s.WithPolicy(t, policy)
	u.Server = granted.Addr
	if err := u.Publish(ctx, h); err != nil {
		t.Fatalf("with the suggested %s: %v", policy, err)
	}
	if v := view(t, granted.Addr, s.Zone, h); !slices.Equal(v.records, expect(h)) {
		t.Fatalf("with the suggested policy: %q", v.records)
	}
	if err := u.Withdraw(ctx, h); err != nil {
		t.Fatalf("withdraw with the suggested %s: %v", policy, err)
	}
}

// PowerDNS: a key it knows but that the zone's TSIG-ALLOW-DNSUPDATE does
// not name gets a signed REFUSED, and the pdnsutil command the message
// suggests makes it work.
func TestPowerDNSRefused(t *testing.T) {
	s := testenv.PowerDNS(t, "example.test")
	h := testHost("infra1", "127.0.0.21")
	ctx := context.Background()

	// A second key, known to the server, not allowed to update.
	u := updater(t, s, s.KeyFile)
	u.Key.Name = "other-key"
	s.PDNSUtil(t, "import-tsig-key", u.Key.Name, s.Algorithm, s.Secret)
	err := u.Publish(ctx, h)
	ue := checkRejected(t, s, err, "REFUSED", h, `does not let key "other-key" update these records`)
	if ue.TSIGError != 0 {
		t.Errorf("TSIG error %d", ue.TSIGError)
	}
	cmd := regexp.MustCompile(`pdnsutil (set-meta \S+ TSIG-ALLOW-DNSUPDATE \S+)`).FindStringSubmatch(err.Error())
	if cmd == nil {
		t.Fatalf("no pdnsutil set-meta command in %v", err)
	}
	// set-meta replaces the list: name both keys.
	s.PDNSUtil(t, append(strings.Fields(cmd[1]), s.KeyName)...)
	if err := u.Publish(ctx, h); err != nil {
		t.Fatalf("after pdnsutil %s: %v", cmd[1], err)
	}
	if v := view(t, s.Addr, s.Zone, h); !slices.Equal(v.records, expect(h)) {
		t.Fatalf("after pdnsutil %s: %q", cmd[1], v.records)
	}
}
