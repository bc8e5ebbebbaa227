package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PowerDNSBinary returns the PowerDNS Authoritative server to test with:
// $PDNS_BIN, or /usr/sbin/pdns_server from Debian's pdns-server. It skips
// the test when there is none.
func PowerDNSBinary(t testing.TB) string {
	t.Helper()
	return binary(t, "PDNS_BIN", "/usr/sbin/pdns_server", "pdns-server pdns-backend-sqlite3")
}

// pdnsSchemas are where Debian's pdns-backend-sqlite3 puts the gsqlite3
// schema; /usr/share/doc may be left out of minimal installations.
var pdnsSchemas = []string{
	"/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
	"/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
}

// pdnsTools finds what PowerDNS needs besides pdns_server: pdnsutil (next
// to $PDNS_BIN if it is there, else in $PATH, /usr/sbin or /usr/bin), the
// sqlite3 CLI and the gsqlite3 schema. It skips the test if one is missing.
func pdnsTools(t testing.TB, server string) (pdnsutil, sqlite3, schema string) {
	t.Helper()
	if p := filepath.Join(filepath.Dir(server), "pdnsutil"); os.Getenv("PDNS_BIN") != "" && pdnsFileExists(p) {
		pdnsutil = p
	} else {
		pdnsutil = bindTool(t, "pdnsutil", "pdns-server")
	}
	sqlite3 = bindTool(t, "sqlite3", "sqlite3")
	for _, s := range pdnsSchemas {
		if pdnsFileExists(s) {
			return pdnsutil, sqlite3, s
		}
	}
	SkipUnlessCI(t, "no PowerDNS gsqlite3 schema in %s (apt-get install pdns-backend-sqlite3)", strings.Join(pdnsSchemas, " or "))
	return "", "", ""
}

func pdnsFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// PowerDNS starts a real PowerDNS Authoritative server (pdns_server with
// the gsqlite3 backend) for zone (e.g. "example.test.") on a free port of
// 127.0.0.1 and waits until it answers the zone's SOA over UDP and TCP. The
// zone is the one Named serves (its SOA, NS ns1.ZONE and ns1.ZONE A
// 127.0.0.1), a NATIVE zone in an SQLite database loaded with pdnsutil
// load-zone. Updates (dnsupdate=yes) are accepted from 127.0.0.0/8 when
// signed with KeyFile's key, which pdnsutil import-tsig-key gave the server
// and the zone's TSIG-ALLOW-DNSUPDATE metadata names; SOA-EDIT-DNSUPDATE
// INCREASE makes every update that changes the zone increase its serial.
//
// pdns_server runs in the foreground (no guardian, logging to the process
// log, which the test shows on failure) as the current user, with its
// pdns.conf, database, zone file and control socket in Dir (the socket in
// a shorter temporary directory if Dir's path is too long for one); Dir is
// also the --config-dir for pdnsutil (see PDNSUtil). It has no webserver
// or API, sends no NOTIFY and no security-poll queries, and caches
// nothing, so updates and changes pdnsutil makes are visible at once. It
// is stopped by PID when the test ends.
//
// The test is skipped when pdns_server ($PDNS_BIN, default
// /usr/sbin/pdns_server), pdnsutil, the gsqlite3 backend, sqlite3 or BIND's
// tsig-keygen is missing: apt-get install pdns-server pdns-backend-sqlite3
// sqlite3 bind9.
func PowerDNS(t testing.TB, zone string) *DNSServer {
	t.Helper()
	bin := PowerDNSBinary(t)
	pdnsutil, sqlite3, schema := pdnsTools(t, bin)
	s := newDNSServer(t, "powerdns", zone)
	dir := s.Dir

	db := filepath.Join(dir, "pdns.sqlite3")
	sockDir := runDir(t, dir, "pdns.controlsocket")
	// pdnsutil reads pdns.conf as well; serve writes it again with the port
	// the server gets.
	s.writePDNSConf(t, db, sockDir, 0)
	if out, err := pdnsRun(sqlite3, schema, "-bail", db); err != nil {
		t.Fatalf("sqlite3 %s < %s: %v\n%s", db, schema, err, out)
	}
	zoneFile := filepath.Join(dir, "zone.db")
	if err := os.WriteFile(zoneFile, []byte(zoneText(s.Zone)), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, args := range [][]string{
		{"load-zone", s.Zone, zoneFile},
		{"import-tsig-key", s.KeyName, s.Algorithm, s.Secret},
		{"set-meta", s.Zone, "TSIG-ALLOW-DNSUPDATE", s.KeyName},
		{"set-meta", s.Zone, "SOA-EDIT-DNSUPDATE", "INCREASE"},
	} {
		out, err := pdnsRun(pdnsutil, "", append([]string{"--config-dir=" + dir}, args...)...)
		if err != nil && i == 0 && strings.Contains(out, "unable to load module") {
			SkipUnlessCI(t, "PowerDNS has no gsqlite3 backend (apt-get install pdns-backend-sqlite3): %s", strings.TrimSpace(out))
		}
		if err != nil {
			t.Fatalf("pdnsutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	s.serve(t, "pdns", netip.MustParseAddr("127.0.0.1"), func() int { return FreeUDPTCPPort(t, "127.0.0.1") }, func(p int) (string, []string) {
		s.writePDNSConf(t, db, sockDir, p)
		return bin, []string{"--config-dir=" + dir}
	})
	return s
}

// writePDNSConf writes s.Dir/pdns.conf for pdns_server and pdnsutil.
func (s *DNSServer) writePDNSConf(t testing.TB, db, sockDir string, port int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.Dir, "pdns.conf"), []byte(pdnsConf(db, sockDir, port)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pdnsConf is a minimal authoritative configuration for the database db,
// with the control socket in sockDir, listening on 127.0.0.1:port only.
// Without setuid/setgid pdns_server keeps the current user, so the
// temporary directory needs no chown. security-poll-suffix= stops the
// queries for the security status, primary=no keeps NOTIFY from being sent,
// query-local-address keeps any other query on the loopback, and the
// caches are off so that tests see changes at once.
func pdnsConf(db, sockDir string, port int) string {
	return fmt.Sprintf(`launch=gsqlite3
gsqlite3-database=%[2]s
gsqlite3-dnssec=no
local-address=127.0.0.1
local-port=%[3]d
query-local-address=127.0.0.1
socket-dir=%[1]s
daemon=no
guardian=no
disable-syslog=yes
loglevel=6
webserver=no
api=no
primary=no
secondary=no
security-poll-suffix=
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
zone-metadata-cache-ttl=0
`, sockDir, db, port)
}

// PDNSUtil runs pdnsutil with PowerDNS's configuration (--config-dir
// s.Dir) and the given arguments, e.g. "set-meta", s.Zone,
// "TSIG-ALLOW-DNSUPDATE", "other-key"; the running server sees the change
// at once. It returns pdnsutil's output and fails the test if pdnsutil
// fails or s is not a PowerDNS server.
func (s *DNSServer) PDNSUtil(t testing.TB, args ...string) string {
	t.Helper()
	if s.Kind != "powerdns" {
		t.Fatalf("PDNSUtil on a %q server", s.Kind)
	}
	pdnsutil, _, _ := pdnsTools(t, PowerDNSBinary(t))
	out, err := pdnsRun(pdnsutil, "", append([]string{"--config-dir=" + s.Dir}, args...)...)
	if err != nil {
		t.Fatalf("pdnsutil %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pdnsRun runs bin with args, its standard input read from the file stdin if
// not "", for at most 30 s, and returns its combined output.
func pdnsRun(bin, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			return "", err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
