package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// knotdBinary returns the knotd binary to test with: $KNOTD_BIN, or
// /usr/sbin/knotd from Debian's knot. It skips the test when there is none.
func knotdBinary(t testing.TB) string {
	t.Helper()
	return binary(t, "KNOTD_BIN", "/usr/sbin/knotd", "knot")
}

// Knot starts a real Knot DNS server (knotd) for zone (e.g. "example.test.")
// on a free port of 127.0.0.1, UDP and TCP, and waits until it answers the
// zone's SOA over both. It serves the same zone as Named: its SOA, NS
// ns1.ZONE and ns1.ZONE A 127.0.0.1. An ACL with action update lets
// updates signed with KeyFile's key change any name of the zone; they go
// into the journal under Dir (the zone file stays as written). knotd runs
// in the foreground as the current user, logging to the process log (shown
// when the test fails), with its configuration (knot.conf), rundir, PID
// file, control socket and databases under Dir, so it touches nothing of a
// system-wide Knot. It is stopped by PID when the test ends.
//
// The test is skipped when knotd ($KNOTD_BIN, or /usr/sbin/knotd) or
// tsig-keygen is missing.
func Knot(t testing.TB, zone string) *DNSServer {
	t.Helper()
	bin := knotdBinary(t)
	s := newDNSServer(t, "knot", zone)
	startKnot(t, s, bin, "action: update")
	return s
}

// startKnot writes s's zone and a knot.conf into s.Dir whose update ACL
// for s's key has the given rules (e.g. "action: update"), and runs knotd
// until it answers. It sets s.Addr and s.Proc.
func startKnot(t testing.TB, s *DNSServer, bin, aclRules string) {
	t.Helper()
	zoneFile := filepath.Join(s.Dir, "zone.db")
	if err := os.WriteFile(zoneFile, []byte(zoneText(s.Zone)), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(s.Dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	run := runDir(t, s.Dir, "knot.sock")
	s.serve(t, "knotd", netip.MustParseAddr("127.0.0.1"), func() int { return FreeUDPTCPPort(t, "127.0.0.1") }, func(port int) (string, []string) {
		conf := filepath.Join(s.Dir, "knot.conf")
		text := knotConf(s, port, run, db, zoneFile, aclRules)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil { // it holds the secret
			t.Fatal(err)
		}
		return bin, []string{"-c", conf}
	})
}

// knotConf is a minimal knot.conf (Knot 3.2 syntax) for one primary zone.
// knotd listens on 127.0.0.1@port only, with one worker of each kind, logs
// to stderr and keeps every database under db with small size limits (the
// defaults reserve up to 20 GiB of address space each). It sends no NOTIFY
// (no remotes) and never rewrites the zone file (zonefile-sync -1): updates
// live in the journal. s's key gets one ACL with aclRules.
func knotConf(s *DNSServer, port int, run, db, zoneFile, aclRules string) string {
	return fmt.Sprintf(`server:
    rundir: %[1]q
    pidfile: %[2]q
    listen: 127.0.0.1@%[3]d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    automatic-acl: off
control:
    listen: %[4]q
log:
  - target: stderr
    any: info
database:
    storage: %[5]q
    journal-db-max-size: 64M
    kasp-db-max-size: 16M
    timer-db-max-size: 16M
    catalog-db-max-size: 16M
key:
  - id: %[6]s
    algorithm: %[7]s
    secret: %[8]s
acl:
  - id: eda-update
    key: %[6]s
    %[9]s
zone:
  - domain: %[10]s
    file: %[11]q
    acl: eda-update
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    serial-policy: increment
`, run, filepath.Join(run, "knot.pid"), port, filepath.Join(run, "knot.sock"), db,
		s.KeyName, s.Algorithm, s.Secret, aclRules, s.Zone, zoneFile)
}
