package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSServer is an authoritative DNS server under test serving one primary
// zone on one address (UDP and TCP on one port), without recursion, that
// takes RFC 2136 updates signed with one TSIG key: BIND 9's named (Named),
// or another implementation with the same fields.
type DNSServer struct {
	Kind string // "bind", ...: which implementation
	Addr string // "127.0.0.1:PORT"
	Zone string // the zone, fully qualified ("example.test.")

	// KeyFile holds the TSIG key that may update the zone (update-policy
	// grant KEY zonesub ANY), as tsig-keygen prints it: key "NAME" {
	// algorithm hmac-sha256; secret "..."; }; It works with nsupdate -k.
	KeyFile string
	// WrongKeyFile holds a key with the same name and algorithm but another
	// secret: the server refuses updates signed with it (BIND: NOTAUTH, TSIG
	// BADSIG).
	WrongKeyFile string
	KeyName      string // "eda-test-key" (no trailing dot, as in KeyFile)
	Algorithm    string // "hmac-sha256"
	Secret       string // base64, as in KeyFile

	Dir  string   // the throw-away directory with named.conf, zone and journal
	Proc *Process // the running named

	netns  string     // namespace named runs in; "" for the test's own
	listen netip.Addr // where it listens; 127.0.0.1 on a free port when invalid
}

// NamedBinary returns the named binary to test with: $NAMED_BIN, or
// /usr/sbin/named from Debian's bind9. It skips the test when there is none.
func NamedBinary(t testing.TB) string {
	t.Helper()
	return binary(t, "NAMED_BIN", "/usr/sbin/named", "bind9")
}

// bindTool finds a BIND utility (tsig-keygen, nsupdate) in $PATH or in the
// sbin/bin directories Debian installs it to, skipping the test if absent
// (failing it under CI, see SkipUnlessCI), and under -short.
func bindTool(t testing.TB, name, pkg string) string {
	t.Helper()
	SkipIfShort(t)
	p, err := findTool(name, pkg)
	if err != nil {
		SkipUnlessCI(t, "%v", err)
	}
	return p
}

// findTool finds name in $PATH, /usr/sbin or /usr/bin; its error names
// the Debian package pkg.
func findTool(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s in $PATH, /usr/sbin or /usr/bin (apt-get install %s)", name, pkg)
}

// Named starts a real BIND 9 named for zone (e.g. "example.test.") on a free
// port of 127.0.0.1 and waits until it answers the zone's SOA over UDP and
// TCP. The zone holds its SOA, NS ns1.ZONE and ns1.ZONE A 127.0.0.1; it
// accepts updates signed with KeyFile and keeps them in a journal. named
// runs in the foreground (-g, logging to the process log, which the test
// shows on failure) as the current user: without -u it does not drop
// privileges, so the temporary directory needs no chown. It is stopped by
// PID when the test ends.
func Named(t testing.TB, zone string) *DNSServer {
	t.Helper()
	return newNamed(t, zone, "", netip.Addr{})
}

// Named starts named in the network's router namespace, listening on
// RouterAddr port 53: the DNS server of every host of the network.
func (n *Network) Named(t testing.TB, zone string) *DNSServer {
	t.Helper()
	return newNamed(t, zone, n.Router, n.RouterAddr)
}

func newNamed(t testing.TB, zone, netns string, listen netip.Addr) *DNSServer {
	t.Helper()
	bin := NamedBinary(t)
	s := newDNSServer(t, "bind", zone)
	s.netns, s.listen = netns, listen
	s.start(t, bin, fmt.Sprintf("update-policy { grant %q zonesub ANY; };", s.KeyName))
	return s
}

// WithPolicy starts another named for s's zone that knows s's keys but
// grants updates by policy, a whole update-policy or allow-update statement
// (for tests of refused updates).
func (s *DNSServer) WithPolicy(t testing.TB, policy string) *DNSServer {
	t.Helper()
	other := *s
	other.Dir = t.TempDir()
	other.start(t, NamedBinary(t), policy)
	return &other
}

// DNSServers returns the starters of every authoritative server testenv
// has, BIND's named, Knot and PowerDNS, for tests that must pass against
// each.
func DNSServers() []func(testing.TB, string) *DNSServer {
	return []func(testing.TB, string) *DNSServer{Named, Knot, PowerDNS}
}

// newDNSServer returns the DNSServer of a server of kind for zone, with
// its Dir and its keys (tsig-keygen's), not yet started.
func newDNSServer(t testing.TB, kind, zone string) *DNSServer {
	t.Helper()
	keygen := bindTool(t, "tsig-keygen", "bind9")
	dir := t.TempDir()
	s := &DNSServer{
		Kind:         kind,
		Zone:         dns.Fqdn(zone),
		Dir:          dir,
		KeyFile:      filepath.Join(dir, "update.key"),
		WrongKeyFile: filepath.Join(dir, "wrong.key"),
		KeyName:      "eda-test-key",
		Algorithm:    "hmac-sha256",
	}
	var err error
	if s.Secret, err = tsigKeygen(keygen, s.Algorithm, s.KeyName, s.KeyFile); err != nil {
		t.Fatal(err)
	}
	wrong, err := tsigKeygen(keygen, s.Algorithm, s.KeyName, s.WrongKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if wrong == s.Secret {
		t.Fatalf("tsig-keygen made the same secret twice: %s", wrong)
	}
	return s
}

// runDir is where a server keeps its PID file and control socket (a Unix
// socket named sock): dir/run, or a shorter temporary directory when the
// socket's path would not fit into a Unix socket address (108 bytes on
// Linux; knotd and pdns_server exit when they cannot bind it).
func runDir(t testing.TB, dir, sock string) string {
	t.Helper()
	run := filepath.Join(dir, "run")
	if len(filepath.Join(run, sock)) > 100 {
		short, err := os.MkdirTemp("", "run")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		return short
	}
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	return run
}

// zoneText is the zone every test server starts with: its SOA, NS
// ns1.ZONE and ns1.ZONE A 127.0.0.1.
func zoneText(zone string) string {
	return fmt.Sprintf("$TTL 60\n"+
		"@ IN SOA ns1.%[1]s hostmaster.%[1]s 1 3600 600 86400 5\n"+
		"@ IN NS ns1.%[1]s\n"+
		"ns1.%[1]s IN A 127.0.0.1\n", zone)
}

// start writes s's zone and configuration into s.Dir and runs named until
// it answers.
func (s *DNSServer) start(t testing.TB, bin, policy string) {
	t.Helper()
	zoneFile := filepath.Join(s.Dir, "zone.db")
	if err := os.WriteFile(zoneFile, []byte(zoneText(s.Zone)), 0o644); err != nil {
		t.Fatal(err)
	}
	listen, port := netip.MustParseAddr("127.0.0.1"), func() int { return FreeUDPTCPPort(t, "127.0.0.1") }
	if s.listen.IsValid() {
		listen, port = s.listen, func() int { return 53 }
	}
	s.serve(t, "named", listen, port, func(port int) (string, []string) {
		conf := filepath.Join(s.Dir, "named.conf")
		if err := os.WriteFile(conf, []byte(namedConf(s.Dir, listen, port, s.Zone, zoneFile, s.KeyFile, policy)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd, args := bin, []string{"-g", "-n", "1", "-c", conf}
		if s.netns != "" {
			cmd, args = "ip", append([]string{"netns", "exec", s.netns, bin}, args...)
		}
		return cmd, args
	})
}

// serve runs s's server until it answers the zone's SOA on listen. Each
// attempt takes a port (port(), usually a free one), sets s.Addr, and runs
// the command line that launch returns after writing the server's
// configuration for that port. The port was free a moment ago, but another
// process may take it before the server binds it: the server then says
// "address in use" (named, which keeps running without listening) or
// "address already in use" (knotd, pdns_server, which exit), and the
// attempt is repeated on another port, three times at most.
func (s *DNSServer) serve(t testing.TB, what string, listen netip.Addr, port func() int, launch func(port int) (string, []string)) {
	t.Helper()
	const attempts = 3
	for attempt := 1; ; attempt++ {
		pt := port()
		s.Addr = net.JoinHostPort(listen.String(), strconv.Itoa(pt))
		cmd, args := launch(pt)
		p := Start(t, fmt.Sprintf("%s-%d", what, attempt), cmd, args, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := waitSOA(ctx, s.Addr, s.Zone, p.Done())
		cancel()
		if err == nil {
			s.Proc = p
			return
		}
		p.Stop()
		out := strings.ToLower(p.Output())
		if attempt < attempts && (strings.Contains(out, "address in use") || strings.Contains(out, "address already in use")) {
			continue
		}
		t.Fatalf("%s on %s not ready: %v\n%s", what, s.Addr, err, tail(p.Output(), 40))
	}
}

// namedConf is a minimal authoritative configuration whose every file lives
// in dir. controls {} disables the rndc channel (Debian's /etc/bind/rndc.key
// would otherwise make every named listen on 127.0.0.1:953), notify no keeps
// named from sending NOTIFY to the NS address, and lock-file keeps it off
// /run/named.
func namedConf(dir string, listen netip.Addr, port int, zone, zoneFile, keyFile, policy string) string {
	return fmt.Sprintf(`include %[4]q;
options {
	directory %[1]q;
	pid-file %[5]q;
	lock-file %[6]q;
	session-keyfile %[7]q;
	managed-keys-directory %[1]q;
	listen-on port %[2]d { %[10]s; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	querylog yes;
};
controls { };
zone %[3]q {
	type primary;
	file %[8]q;
	%[9]s
};
`, dir, port, strings.TrimSuffix(zone, "."), keyFile,
		filepath.Join(dir, "named.pid"), filepath.Join(dir, "named.lock"),
		filepath.Join(dir, "session.key"), zoneFile, policy, listen)
}

var secretRE = regexp.MustCompile(`secret "([^"]+)"`)

// tsigKeygen runs tsig-keygen -a alg name, writes its output to path and
// returns the secret.
func tsigKeygen(bin, alg, name, path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-a", alg, name).Output()
	if err != nil {
		return "", fmt.Errorf("tsig-keygen -a %s %s: %w", alg, name, err)
	}
	m := secretRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("tsig-keygen printed no secret: %q", out)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return "", err
	}
	return string(m[1]), nil
}

// FreeUDPTCPPort returns a port that was free on addr for both UDP and TCP
// a moment ago.
func FreeUDPTCPPort(t testing.TB, addr string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(addr, strconv.Itoa(port)))
		l.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatalf("no port free for both UDP and TCP on %s after 50 tries", addr)
	return 0
}

// waitSOA polls addr every 50 ms until it answers zone's SOA authoritatively
// over UDP and TCP, ctx ends or exited is closed.
func waitSOA(ctx context.Context, addr, zone string, exited <-chan struct{}) error {
	return poll(ctx, 50*time.Millisecond, exited, func() error {
		for _, network := range []string{"udp", "tcp"} {
			rrs, err := queryAuth(ctx, network, addr, zone, dns.TypeSOA)
			if err == nil && len(rrs) == 0 {
				err = errors.New("no SOA record")
			}
			if err != nil {
				return fmt.Errorf("%s: %w", network, err)
			}
		}
		return nil
	})
}

// queryAuth asks addr for name/qtype, without recursion, and returns the
// answer section of an authoritative answer: NOERROR, or NXDOMAIN (nil).
func queryAuth(ctx context.Context, network, addr, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: time.Second}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return nil, err
	}
	if r.Rcode == dns.RcodeNameError && r.Authoritative {
		return nil, nil
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	if !r.Authoritative {
		return nil, fmt.Errorf("%s %s: answer is not authoritative", name, dns.TypeToString[qtype])
	}
	return r.Answer, nil
}

// Records asks the server (over TCP, so nothing is truncated) for name and
// qtype (dns.TypeSRV, ...) and returns the records of the answer section:
// nil for NXDOMAIN or no data. It fails the test on an error or another
// rcode.
func (s *DNSServer) Records(t testing.TB, name string, qtype uint16) []dns.RR {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rrs, err := queryAuth(ctx, "tcp", s.Addr, name, qtype)
	if err != nil {
		t.Fatalf("query %s: %v", s.Addr, err)
	}
	return rrs
}

// Update sends one RFC 2136 update with nsupdate -k keyFile (the reference
// client) over TCP: the commands (e.g. "update add x.example.test. 60 A
// 127.0.0.2"), preceded by "server" and "zone" lines for this server and
// followed by "send". It returns nsupdate's output and an error if
// nsupdate failed (named refused the update, or did not answer).
func (s *DNSServer) Update(ctx context.Context, keyFile string, commands ...string) (string, error) {
	var in bytes.Buffer
	host, port, _ := net.SplitHostPort(s.Addr)
	fmt.Fprintf(&in, "server %s %s\nzone %s\n", host, port, s.Zone)
	for _, c := range commands {
		if strings.ContainsAny(c, "\n") {
			return "", fmt.Errorf("nsupdate command %q has a newline", c)
		}
		fmt.Fprintln(&in, c)
	}
	fmt.Fprintln(&in, "send")
	bin, err := findTool("nsupdate", "bind9-dnsutils")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// -v: TCP, so large updates need no fallback; -t: at most 10 s.
	cmd := exec.CommandContext(ctx, bin, "-v", "-t", "10", "-k", keyFile)
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nsupdate -k %s: %w: %s", filepath.Base(keyFile), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustUpdate is Update with the valid key; it fails the test on an error.
func (s *DNSServer) MustUpdate(t testing.TB, commands ...string) {
	t.Helper()
	bindTool(t, "nsupdate", "bind9-dnsutils")
	if _, err := s.Update(context.Background(), s.KeyFile, commands...); err != nil {
		t.Fatal(err)
	}
}
