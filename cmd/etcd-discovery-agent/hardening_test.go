package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// The hardening rules, end to end against a real etcd 3.4 registry (and
// BIND where DNS is involved): what a user sees after each run (the exit
// code, the message, the token, the zone, the env file).

// runAgentEnv runs the agent to completion with env added to a minimal
// environment and returns its exit code, combined output and run time.
func runAgentEnv(t *testing.T, env []string, args ...string) (int, string, time.Duration) {
	t.Helper()
	var out bytes.Buffer
	code, took := execAgent(t, env, &out, &out, args...)
	return code, out.String(), took
}

// tokenEntries lists the token's entries straight from the registry, as
// etcd's own client sees them, whatever its size key holds.
func tokenEntries(t *testing.T, discovery string) map[string]agent.Entry {
	t.Helper()
	reg, err := etcdv2.New(discovery, agent.Access{})
	testenv.Must(t, err, "registry of %s", discovery)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	es, _, err := reg.List(ctx)
	testenv.Must(t, err, "list %s", discovery)
	m := map[string]agent.Entry{}
	for _, e := range es {
		m[e.Key] = e
	}
	return m
}

// keyOf is the registry key of host h under the token: its member ID.
func keyOf(h testenv.Host, discovery string) string {
	return agent.FormatID(agent.MemberID([]string{h.PeerURL()}, discovery))
}

// valueOf is what host h registers: name=peer URL.
func valueOf(h testenv.Host) string { return h.Name + "=" + h.PeerURL() }

// wantEntries asserts that the token holds exactly the entries of hosts
// (each under its member ID, with its name=peer URL) and the extra keys.
func wantEntries(t *testing.T, discovery string, hosts []testenv.Host, extra ...string) {
	t.Helper()
	want := map[string]string{}
	for _, h := range hosts {
		want[keyOf(h, discovery)] = valueOf(h)
	}
	held := tokenEntries(t, discovery)
	got := map[string]string{}
	for k, e := range held {
		if slices.Contains(extra, k) {
			continue
		}
		got[k] = e.Value
	}
	for _, k := range extra {
		if _, ok := held[k]; !ok {
			t.Errorf("the token lost the key %q", k)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("the token holds %v (besides %q); want %v", got, extra, want)
	}
}

// noEnvFile asserts that h has no env file.
func noEnvFile(t *testing.T, h testenv.Host) {
	t.Helper()
	if _, err := os.Stat(h.EnvFile()); !os.IsNotExist(err) {
		t.Errorf("%s has an env file (stat: %v)", h.Name, err)
	}
}

// running asserts that the processes have not exited.
func running(t *testing.T, procs ...*testenv.Process) {
	t.Helper()
	for _, p := range procs {
		select {
		case <-p.Done():
			t.Errorf("%s exited (%d) while it should wait:\n%s", p.Name, p.ExitCode(), p.Output())
		default:
		}
	}
}

// sameInitialCluster asserts that the hosts' env files name one cluster,
// and returns it.
func sameInitialCluster(t *testing.T, hosts ...testenv.Host) string {
	t.Helper()
	var cluster string
	for i, h := range hosts {
		got := testenv.ReadEnvFile(t, h.EnvFile())["ETCD_INITIAL_CLUSTER"]
		if i == 0 {
			cluster = got
		} else if got != cluster {
			t.Errorf("%s: ETCD_INITIAL_CLUSTER %q; %s has %q", h.Name, got, hosts[0].Name, cluster)
		}
	}
	return cluster
}

// clusterOf is ETCD_INITIAL_CLUSTER of hosts, in this order.
func clusterOf(hosts ...testenv.Host) string {
	var parts []string
	for _, h := range hosts {
		parts = append(parts, valueOf(h))
	}
	return strings.Join(parts, ",")
}

// zoneRecords is what the zone holds for hosts under example.test: the
// targets and ports of the peer and client SRV records, and the A records
// of the targets, each sorted.
func zoneRecords(t *testing.T, server *testenv.DNSServer, hosts []testenv.Host) (peers, clients, addrs []string) {
	t.Helper()
	srv := func(name string) []string {
		var out []string
		for _, rr := range server.Records(t, name, dns.TypeSRV) {
			s := rr.(*dns.SRV)
			out = append(out, fmt.Sprintf("%s:%d", s.Target, s.Port))
		}
		slices.Sort(out)
		return out
	}
	peers, clients = srv("_etcd-server._tcp.example.test."), srv("_etcd-client._tcp.example.test.")
	for _, h := range hosts {
		for _, rr := range server.Records(t, h.Name+".example.test.", dns.TypeA) {
			addrs = append(addrs, rr.Header().Name+" "+rr.(*dns.A).A.String())
		}
	}
	slices.Sort(addrs)
	return peers, clients, addrs
}

// wantZone asserts that the zone holds exactly the records of hosts as
// each advertised itself: peer SRV on 2380 and client SRV on 2379 pointing
// at NAME.example.test., and that name's A record with the host's address.
// others are hosts whose names must have no A record.
func wantZone(t *testing.T, server *testenv.DNSServer, hosts, others []testenv.Host) {
	t.Helper()
	var peers, clients, addrs []string
	for _, h := range hosts {
		target := h.Name + ".example.test."
		peers = append(peers, target+":2380")
		clients = append(clients, target+":2379")
		addrs = append(addrs, target+" "+h.Addr.String())
	}
	slices.Sort(peers)
	slices.Sort(clients)
	slices.Sort(addrs)
	gotPeers, gotClients, gotAddrs := zoneRecords(t, server, append(slices.Clone(hosts), others...))
	if !slices.Equal(gotPeers, peers) || !slices.Equal(gotClients, clients) || !slices.Equal(gotAddrs, addrs) {
		t.Errorf("zone holds peer SRV %q, client SRV %q, A %q; want %q, %q, %q", gotPeers, gotClients, gotAddrs, peers, clients, addrs)
	}
}

// silentDNS opens a UDP and a TCP socket on one port of 127.0.0.1 that take
// queries and never answer, and returns HOST:PORT.
func silentDNS(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		testenv.Must(t, err, "listen tcp")
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			l.Close()
			continue
		}
		var mu sync.Mutex
		var conns []net.Conn
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c) // held open, never read or answered
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			l.Close()
			pc.Close()
			<-done
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		return addr
	}
	t.Fatal("no port free for UDP and TCP on 127.0.0.1 after 20 tries")
	return ""
}

// Rule 1. Whatever can fail is checked before the first write: each bad
// setting ends the run with exit 2 and a message naming it, and leaves the
// token (where two hosts wait for a third), the zone and the env file
// untouched. The two waiting hosts go on waiting, and a good third host
// then completes one healthy cluster.
func TestEverythingIsCheckedBeforeTheFirstWrite(t *testing.T) {
	named := testenv.Named(t, "example.test.")
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "chk", 3)
	good := dnsFlags(named, named.KeyFile)
	var waiting []*testenv.Process
	for i, h := range hosts[:2] {
		waiting = append(waiting, testenv.StartHost(t, agentBin, h, discovery, good...))
		waitRegistrations(t, discovery, i+1)
	}
	wantEntries(t, discovery, hosts[:2])

	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		testenv.Must(t, os.WriteFile(p, []byte(content), 0o600), "write %s", name)
		return p
	}
	missing := filepath.Join(dir, "no-such-file")
	keyDir := filepath.Join(dir, "key-dir")
	testenv.Must(t, os.Mkdir(keyDir, 0o700), "mkdir")
	emptyKey := file("empty.key", "")
	noSecret := file("nosecret.key", "key \"eda-test-key\" {\n\talgorithm hmac-sha256;\n};\n")
	notAKey := file("garbage.key", "this is not a key file\n")
	notPEM := file("ca.pem", "not a certificate\n")
	emptyPassword := file("password", "\n")
	cert := file("client.pem", "not a certificate either\n")

	bad := hosts[2]
	args := func(extra ...string) []string {
		return testenv.AgentArgs(bad, discovery, append(append(slices.Clone(good), "--timeout", "20s"), extra...)...)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		says string
	}{
		{name: "flag without unit", args: args("--dns-ttl", "60"), says: "--dns-ttl is not a duration"},
		{name: "bad EDA_ variable", args: args(), env: []string{"EDA_PEER_PORT=notaport"}, says: "EDA_PEER_PORT is not a whole number"},
		{name: "bad EDA_ duration", args: args(), env: []string{"EDA_DNS_TTL=sixty"}, says: "EDA_DNS_TTL is not a duration"},
		{name: "EDA_ variable failing validation", args: args(), env: []string{"EDA_SRV_NAME=a.b"}, says: "--srv-name"},
		{name: "TSIG key file missing", args: args("--tsig-key-file", missing), says: "--tsig-key-file"},
		{name: "TSIG key file unreadable", args: args("--tsig-key-file", keyDir), says: "--tsig-key-file"},
		{name: "TSIG key file empty", args: args("--tsig-key-file", emptyKey), says: "--tsig-key-file"},
		{name: "TSIG key file without secret", args: args("--tsig-key-file", noSecret), says: "--tsig-key-file"},
		{name: "TSIG key file malformed", args: args("--tsig-key-file", notAKey), says: "--tsig-key-file"},
		{name: "publish server without a port", args: args("--publish-server", "127.0.0.1"), says: "--publish-server"},
		{name: "publish zone not a DNS name", args: args("--publish-zone", "example..test"), says: "--publish-zone"},
		{name: "publish zone with a space", args: args("--publish-zone", "exa mple.test"), says: "--publish-zone"},
		{name: "registry CA missing", args: args("--discovery-cacert", missing), says: "--discovery-cacert"},
		{name: "registry CA not PEM", args: args("--discovery-cacert", notPEM), says: "--discovery-cacert"},
		{name: "registry client cert without key", args: args("--discovery-cert", cert), says: "--discovery-cert"},
		{name: "registry client cert not PEM", args: args("--discovery-cert", cert, "--discovery-key", cert), says: "--discovery-cert"},
		{name: "registry password file empty", args: args("--discovery-user", "root", "--discovery-password-file", emptyPassword), says: "--discovery-password-file"},
		{name: "registry password file missing", args: args("--discovery-user", "root", "--discovery-password-file", missing), says: "--discovery-password-file"},
		{name: "registry user without password", args: args("--discovery-user", "root"), says: "--discovery-password-file"},
		{name: "peer CA missing", args: args("--peer-cacert", missing), says: "--peer-cacert"},
		{name: "cluster password file missing", args: args("--cluster-user", "root", "--cluster-password-file", missing), says: "--cluster-password-file"},
		{name: "advertise multicast", args: args("--advertise-address", "224.0.0.1"), says: "--advertise-address"},
		{name: "advertise unspecified", args: args("--advertise-address", "0.0.0.0"), says: "--advertise-address"},
		{name: "listen broadcast", args: args("--listen-address", "255.255.255.255"), says: "--listen-address"},
		{name: "data dir with a double quote", args: args("--data-dir", filepath.Join(dir, `da"ta`)), says: "the env file cannot carry this: ETCD_DATA_DIR"},
		{name: "data dir with a newline", args: args("--data-dir", filepath.Join(dir, "da\nta")), says: "the env file cannot carry this: ETCD_DATA_DIR"},
		{name: "data dir with a backquote", args: args("--data-dir", filepath.Join(dir, "da`ta")), says: "the env file cannot carry this: ETCD_DATA_DIR"},
		{name: "discovery URL with a query", args: args("--discovery", discovery+"?x=1"), says: "remove the query"},
		{name: "discovery URL with a trailing slash", args: args("--discovery", discovery+"/"), says: "remove the trailing slash"},
		{name: "discovery URL with a dot segment", args: args("--discovery", strings.Replace(discovery, "/discovery/", "/discovery/x/../", 1)), says: "without dot segments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := runAgentEnv(t, tc.env, tc.args...)
			if code != exitUsage || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d, want %d naming %q:\n%s", code, exitUsage, tc.says, out)
			}
			wantEntries(t, discovery, hosts[:2])
			wantZone(t, named, nil, []testenv.Host{bad})
			noEnvFile(t, bad)
		})
		if len(tokenEntries(t, discovery)) != 2 {
			t.Fatalf("the run %q wrote to the token; the cases after it cannot run", tc.name)
		}
	}

	// The two hosts wait on, not counting any of those runs.
	running(t, waiting...)
	for i, h := range hosts[:2] {
		noEnvFile(t, h)
		if strings.Contains(waiting[i].Output(), "registration removed") || strings.Contains(waiting[i].Output(), keyOf(bad, discovery)) {
			t.Errorf("%s saw a registration of the bad runs come and go:\n%s", h.Name, waiting[i].Output())
		}
	}
	third := testenv.StartHost(t, agentBin, bad, discovery, good...)
	for i, h := range hosts[:2] {
		testenv.WaitHealthy(t, waiting[i], 60*time.Second, h.ClientURL())
	}
	testenv.WaitHealthy(t, third, 60*time.Second, bad.ClientURL())
	checkCluster(t, discovery, hosts)
	if got := sameInitialCluster(t, hosts...); got != clusterOf(hosts...) {
		t.Errorf("ETCD_INITIAL_CLUSTER %q; want %q (registration order)", got, clusterOf(hosts...))
	}
	wantEntries(t, discovery, hosts)
	wantZone(t, named, hosts, nil)
}

// Rule 2. A host that fails before the token filled takes its key back
// (compare-and-delete): the token is as it was before it came, and the
// host that waited there goes on waiting.
func TestAHostThatFailsBeforeTheTokenFilledLeavesNoKey(t *testing.T) {
	registry, _ := testenv.Registry(t)
	tests := []struct {
		name string
		// fail runs the failing host b on the token where a waits and
		// returns its exit code and output.
		fail func(t *testing.T, discovery string, a, b testenv.Host) (int, string)
		code int
		says string
		// poison is a key the test wrote that stays in the token.
		poison string
	}{
		{
			name: "timeout",
			fail: func(t *testing.T, discovery string, _, b testenv.Host) (int, string) {
				code, out, took := runAgentEnv(t, nil, testenv.AgentArgs(b, discovery, "--timeout", "5s")...)
				if took > 20*time.Second {
					t.Errorf("a 5 s --timeout took %s", took)
				}
				return code, out
			},
			code: exitTimeout, says: "2 of 3 members registered",
		},
		{
			name: "SIGTERM",
			fail: func(t *testing.T, discovery string, _, b testenv.Host) (int, string) {
				p := testenv.StartAgent(t, agentBin, b, discovery, "--timeout", "60s")
				waitRegistrations(t, discovery, 2)
				p.Signal(syscall.SIGTERM)
				return p.Wait(t, 15*time.Second), p.Output()
			},
			code: exitFailure, says: "interrupted",
		},
		{
			name: "name held by an earlier host",
			fail: func(t *testing.T, discovery string, a, b testenv.Host) (int, string) {
				b.Name = a.Name
				return runAgent(t, testenv.AgentArgs(b, discovery, "--timeout", "30s")...)
			},
			code: exitConflict, says: "is already registered by another host",
		},
		{
			name: "poisoned entry arrives while it waits",
			fail: func(t *testing.T, discovery string, _, b testenv.Host) (int, string) {
				p := testenv.StartAgent(t, agentBin, b, discovery, "--timeout", "60s")
				waitRegistrations(t, discovery, 2)
				putRaw(t, discovery, "abc", "infra1=http://127.0.0.9:2380")
				return p.Wait(t, 15*time.Second), p.Output()
			},
			code: exitRegistryData, says: `key \"abc\"`, poison: "abc",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			discovery := newToken(t, registry, 3)
			hosts := testenv.Hosts(t, "f", 2)
			a, b := hosts[0], hosts[1]
			waiter := testenv.StartAgent(t, agentBin, a, discovery, "--timeout", "60s")
			waitRegistrations(t, discovery, 1)
			wantEntries(t, discovery, hosts[:1])

			code, out := tc.fail(t, discovery, a, b)
			if code != tc.code || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d, want %d saying %q:\n%s", code, tc.code, tc.says, out)
			}
			if !strings.Contains(out, "removed this host's registration, leaving the token as it was") {
				t.Errorf("the failing host did not say it took its key back:\n%s", out)
			}
			noEnvFile(t, b)
			if tc.poison == "" {
				wantEntries(t, discovery, hosts[:1])
				running(t, waiter)
				return
			}
			// The poison spoils the token for the waiting host too: it
			// leaves alike, and only the poison stays.
			if code := waiter.Wait(t, 15*time.Second); code != exitRegistryData {
				t.Errorf("the waiting host: exit %d, want %d:\n%s", code, exitRegistryData, waiter.Output())
			}
			wantEntries(t, discovery, nil, tc.poison)
			noEnvFile(t, a)
		})
	}
}

// Rule 2. Once the token has filled with a host among its members, its key
// stays even when the host fails afterwards (here: its DNS server never
// answers, exit 7); the other host counts it, and a rerun resumes on the
// same key with the same value.
func TestKeyStaysOnceTheTokenFilled(t *testing.T) {
	named := testenv.Named(t, "example.test.")
	// A policy that grants the key nothing the agent publishes: the probe
	// before registering passes (it changes no record), the update after
	// the token filled is refused.
	narrow := named.WithPolicy(t, fmt.Sprintf(`update-policy { grant %q name only-this.example.test. TXT; };`, named.KeyName))
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	hosts := testenv.Hosts(t, "st", 2)
	a, b := hosts[0], hosts[1]
	first := testenv.StartAgent(t, agentBin, a, discovery, append(dnsFlags(narrow, named.KeyFile), "--peer-wait", "0", "--timeout", "60s")...)
	waitRegistrations(t, discovery, 1)
	code, out := runAgent(t, testenv.AgentArgs(b, discovery, "--peer-wait", "0", "--timeout", "30s")...)
	if code != 0 {
		t.Fatalf("%s: exit %d:\n%s", b.Name, code, out)
	}
	if code := first.Wait(t, 30*time.Second); code != exitDNS || !strings.Contains(first.Output(), "REFUSED") {
		t.Fatalf("%s with an update-policy that refuses its records: exit %d, want %d naming REFUSED:\n%s", a.Name, code, exitDNS, first.Output())
	}
	noEnvFile(t, a)
	wantEntries(t, discovery, hosts)
	before := tokenEntries(t, discovery)

	// The rerun, without its cache, finds its key and resumes on it.
	testenv.Must(t, os.RemoveAll(a.StateDir()), "remove the state dir")
	code, out = runAgent(t, testenv.AgentArgs(a, discovery, append(dnsFlags(named, named.KeyFile), "--peer-wait", "0", "--timeout", "30s")...)...)
	if code != 0 || !strings.Contains(out, "already registered under this token by an earlier run; resuming") {
		t.Fatalf("rerun: exit %d, want 0 saying it resumed:\n%s", code, out)
	}
	if after := tokenEntries(t, discovery); !maps.Equal(after, before) {
		t.Errorf("the rerun changed the token: %v; before %v", after, before)
	}
	if got := sameInitialCluster(t, a, b); got != clusterOf(a, b) {
		t.Errorf("ETCD_INITIAL_CLUSTER %q; want %q", got, clusterOf(a, b))
	}
	wantZone(t, named, []testenv.Host{a}, []testenv.Host{b})
}

// Rule 1. A DNS server that does not answer, or a key it does not take, is
// found before registering (a probe that changes nothing): exit 7, nothing
// registered, no record, no env file.
func TestDNSIsProbedBeforeRegistering(t *testing.T) {
	named := testenv.Named(t, "example.test.")
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	h := testenv.Hosts(t, "pr", 1)[0]
	for _, tc := range []struct {
		name string
		dns  []string
		says string
	}{
		{"server that never answers", []string{"--publish-server", silentDNS(t), "--publish-zone", "example.test", "--tsig-key-file", named.KeyFile}, "no answer"},
		{"wrong secret", dnsFlags(named, named.WrongKeyFile), "BADSIG"},
		{"zone not served", []string{"--publish-server", named.Addr, "--publish-zone", "other.test", "--tsig-key-file", named.KeyFile}, "NOTAUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, took := runAgentEnv(t, nil, testenv.AgentArgs(h, discovery, append(tc.dns, "--timeout", "60s")...)...)
			if code != exitDNS || !strings.Contains(out, "before registering") || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d after %s, want %d before registering, naming %q:\n%s", code, took, exitDNS, tc.says, out)
			}
			wantEntries(t, discovery, nil)
			noEnvFile(t, h)
		})
	}
	wantZone(t, named, nil, []testenv.Host{h})
}

// Rule 3. The size key is read as etcd's own client reads it: anything
// but a plain positive decimal number is exit 6 naming the size key, and
// nothing is registered.
func TestTokenSizeIsReadAsEtcdReadsIt(t *testing.T) {
	registry, _ := testenv.Registry(t)
	h := testenv.Hosts(t, "sz", 1)[0]
	for i, size := range []string{"+1", " 3", "3 ", "0", "-1", "abc", "3\n", "0x3", "1e1"} {
		t.Run(strconv.Quote(size), func(t *testing.T) {
			discovery := fmt.Sprintf("%s/v2/keys/discovery/size%d-%d", registry, i, time.Now().UnixNano())
			putRaw(t, discovery, "_config/size", size)
			code, out := runAgent(t, testenv.AgentArgs(h, discovery, "--timeout", "20s")...)
			q := strconv.Quote(strconv.Quote(size)) // as the log quotes the message
			if code != exitRegistryData || !strings.Contains(out, "_config/size holds "+q[1:len(q)-1]) {
				t.Errorf("exit %d, want %d naming _config/size and %q:\n%s", code, exitRegistryData, size, out)
			}
			if es := tokenEntries(t, discovery); len(es) != 0 {
				t.Errorf("the token holds %v after the run; want nothing", es)
			}
			noEnvFile(t, h)
		})
	}
}

// Rule 3. An entry that is not a member of this token (a key that is not
// the member ID of its value, a directory) among the first size entries
// makes the token unusable, whether the host finds it in its listing or
// sees it arrive while it waits: exit 6 naming the key, nothing of the
// host's left in the token.
func TestForeignEntriesAmongTheMembersSpoilTheToken(t *testing.T) {
	registry, _ := testenv.Registry(t)
	entries := []struct {
		name, key, path, value, says string
	}{
		{name: "key that is not the member ID", key: "abc", path: "abc", value: "infra1=http://127.0.0.9:2380", says: `key \"abc\"`},
		{name: "directory", key: "sub", path: "sub/x", value: "infra1=http://127.0.0.9:2380", says: `key \"sub\"`},
	}
	for _, e := range entries {
		t.Run(e.name+" in the listing", func(t *testing.T) {
			discovery := newToken(t, registry, 3)
			h := testenv.Hosts(t, "ls", 1)[0]
			putRaw(t, discovery, e.path, e.value)
			code, out := runAgent(t, testenv.AgentArgs(h, discovery, "--timeout", "20s")...)
			if code != exitRegistryData || !strings.Contains(out, e.says) {
				t.Errorf("exit %d, want %d naming %s:\n%s", code, exitRegistryData, e.says, out)
			}
			wantEntries(t, discovery, nil, e.key)
			noEnvFile(t, h)
		})
		t.Run(e.name+" on the watch", func(t *testing.T) {
			discovery := newToken(t, registry, 3)
			h := testenv.Hosts(t, "wa", 1)[0]
			p := testenv.StartAgent(t, agentBin, h, discovery, "--timeout", "60s")
			waitRegistrations(t, discovery, 1)
			putRaw(t, discovery, e.path, e.value)
			code := p.Wait(t, 15*time.Second)
			if out := p.Output(); code != exitRegistryData || !strings.Contains(out, e.says) {
				t.Errorf("exit %d, want %d naming %s:\n%s", code, exitRegistryData, e.says, out)
			}
			wantEntries(t, discovery, nil, e.key)
			noEnvFile(t, h)
		})
	}
}

// Rule 3. Entries after the first size do not count, good or bad: a late
// host finds the token full (exit 3), and a member's rerun resumes with
// the same cluster.
func TestBadEntriesBeyondTheSizeDoNotMatter(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	hosts := testenv.Hosts(t, "bz", 3)
	procs := []*testenv.Process{
		testenv.StartAgent(t, agentBin, hosts[0], discovery, "--peer-wait", "0", "--timeout", "30s"),
		testenv.StartAgent(t, agentBin, hosts[1], discovery, "--peer-wait", "0", "--timeout", "30s"),
	}
	for _, p := range procs {
		if code := p.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%s: exit %d:\n%s", p.Name, code, p.Output())
		}
	}
	cluster := sameInitialCluster(t, hosts[:2]...)
	putRaw(t, discovery, "abc", "infra1=http://127.0.0.9:2380")
	putRaw(t, discovery, "sub/x", "y")

	code, out := runAgent(t, testenv.AgentArgs(hosts[2], discovery, "--timeout", "20s")...)
	if code != exitTokenFull || !strings.Contains(out, "already has its 2 members") {
		t.Errorf("late host: exit %d, want %d (full):\n%s", code, exitTokenFull, out)
	}
	noEnvFile(t, hosts[2])
	testenv.Must(t, os.RemoveAll(hosts[0].StateDir()), "remove the state dir")
	testenv.Must(t, os.Remove(hosts[0].EnvFile()), "remove the env file")
	code, out = runAgent(t, testenv.AgentArgs(hosts[0], discovery, "--peer-wait", "0", "--timeout", "20s")...)
	if code != 0 || !strings.Contains(out, "resuming") {
		t.Errorf("rerun of a member: exit %d, want 0, resuming:\n%s", code, out)
	}
	if got := sameInitialCluster(t, hosts[:2]...); got != cluster {
		t.Errorf("rerun wrote ETCD_INITIAL_CLUSTER %q; first run %q", got, cluster)
	}
	wantEntries(t, discovery, hosts[:2], "abc", "sub")
}

// Rule 4. A discovery URL that the registry would read as the token's but
// that hashes to other member IDs is refused before anything is written,
// naming the canonical form; every host given it is refused alike.
func TestNonCanonicalDiscoveryURLsAreRefused(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	tok := discovery[strings.LastIndex(discovery, "/")+1:]
	encoded := strings.TrimSuffix(discovery, tok) + "%" + fmt.Sprintf("%02X", tok[0]) + tok[1:]
	for _, tc := range []struct{ name, url string }{
		{"percent-encoded", encoded},
		{"dot segments", strings.Replace(discovery, "/v2/keys/discovery/", "/v2/keys/x/../discovery/", 1)},
		{"dot segment", strings.Replace(discovery, "/discovery/", "/discovery/./", 1)},
		{"trailing slash", discovery + "/"},
		{"query", discovery + "?wait=true"},
		{"empty query", discovery + "?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts := testenv.Hosts(t, "u", 2)
			procs := make([]*testenv.Process, len(hosts))
			for i, h := range hosts {
				procs[i] = testenv.StartAgent(t, agentBin, h, tc.url, "--timeout", "20s")
			}
			for i, p := range procs {
				code := p.Wait(t, 30*time.Second)
				if out := p.Output(); code != exitUsage || !strings.Contains(out, "write it as "+discovery+" on every host") {
					t.Errorf("%s: exit %d, want %d giving the canonical form %s:\n%s", hosts[i].Name, code, exitUsage, discovery, out)
				}
				noEnvFile(t, hosts[i])
			}
			wantEntries(t, discovery, nil)
		})
	}
}

// Rule 5. The cache never blocks a restart: an initialised member restarts
// (exit 0, state existing) past a corrupt state.json or one another host
// wrote, and a host that lost its env file reuses its cached result while
// the registry is down.
func TestRestartsAreNeverBlockedByTheCache(t *testing.T) {
	registry, reg := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	hosts := testenv.Hosts(t, "rc", 2)
	a, b := hosts[0], hosts[1]
	procs := startCluster(t, testenv.EtcdBinary(t), discovery, hosts)
	sameInitialCluster(t, hosts...)
	if wals, _ := filepath.Glob(filepath.Join(a.DataDir(), "member", "wal", "*.wal")); len(wals) == 0 {
		t.Fatalf("etcd left no WAL in %s", a.DataDir())
	}
	stateOfB, err := os.ReadFile(filepath.Join(b.StateDir(), "state.json"))
	testenv.Must(t, err, "read %s's state", b.Name)
	procs[0].Stop()

	restart := func(t *testing.T, state []byte, warns string) {
		t.Helper()
		testenv.Must(t, os.WriteFile(filepath.Join(a.StateDir(), "state.json"), state, 0o644), "write state.json")
		testenv.Must(t, os.Remove(a.EnvFile()), "remove the env file")
		code, out := runAgent(t, testenv.AgentArgs(a, discovery, "--timeout", "20s")...)
		if code != 0 || !strings.Contains(out, warns) || !strings.Contains(out, "not contacting the registry") {
			t.Fatalf("restart: exit %d, want 0 warning %q:\n%s", code, warns, out)
		}
		env := testenv.ReadEnvFile(t, a.EnvFile())
		if env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" || env["ETCD_NAME"] != a.Name {
			t.Errorf("env file %v; want state existing for %s", env, a.Name)
		}
		if ic, ok := env["ETCD_INITIAL_CLUSTER"]; ok && !slices.Contains(strings.Split(ic, ","), valueOf(a)) {
			t.Errorf("ETCD_INITIAL_CLUSTER %q lacks this host, %s", ic, valueOf(a))
		}
		p := testenv.StartEtcdFromEnvFile(t, a.Name, a.EnvFile())
		testenv.WaitHealthy(t, p, 60*time.Second, a.ClientURL())
		checkCluster(t, discovery, hosts)
		p.Stop()
	}
	t.Run("corrupt state.json", func(t *testing.T) {
		restart(t, []byte("{\"discovery\": \"http://"), "ignoring the state cache: it cannot be used")
	})
	t.Run("state.json of another host", func(t *testing.T) {
		restart(t, stateOfB, "ignoring the state cache: it belongs to another token or host identity")
	})

	// The cached result on a host whose etcd never started: no data dir,
	// no env file, no registry.
	t.Run("cached result without the registry", func(t *testing.T) {
		fresh := testenv.Hosts(t, "cr", 2)
		d := newToken(t, registry, 2)
		ps := []*testenv.Process{
			testenv.StartAgent(t, agentBin, fresh[0], d, "--peer-wait", "0", "--timeout", "30s"),
			testenv.StartAgent(t, agentBin, fresh[1], d, "--peer-wait", "0", "--timeout", "30s"),
		}
		for _, p := range ps {
			if code := p.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("%s: exit %d:\n%s", p.Name, code, p.Output())
			}
		}
		want := sameInitialCluster(t, fresh...)

		// A state.json of another host is ignored on a fresh host too: it
		// asks the registry, which names it.
		other, err := os.ReadFile(filepath.Join(fresh[1].StateDir(), "state.json"))
		testenv.Must(t, err, "read state")
		testenv.Must(t, os.WriteFile(filepath.Join(fresh[0].StateDir(), "state.json"), other, 0o644), "write state.json")
		testenv.Must(t, os.Remove(fresh[0].EnvFile()), "remove the env file")
		code, out := runAgent(t, testenv.AgentArgs(fresh[0], d, "--peer-wait", "0", "--timeout", "20s")...)
		if code != 0 || !strings.Contains(out, "belongs to another token or host identity") || !strings.Contains(out, "resuming") {
			t.Errorf("fresh host with another host's state.json: exit %d, want 0, warning and resuming:\n%s", code, out)
		}
		if got := testenv.ReadEnvFile(t, fresh[0].EnvFile())["ETCD_INITIAL_CLUSTER"]; got != want {
			t.Errorf("ETCD_INITIAL_CLUSTER %q; want %q", got, want)
		}

		reg.Stop()
		testenv.Must(t, os.Remove(fresh[0].EnvFile()), "remove the env file")
		code, out, took := runAgentEnv(t, nil, testenv.AgentArgs(fresh[0], d, "--peer-wait", "0", "--timeout", "20s")...)
		if code != 0 || !strings.Contains(out, "using the cached result") {
			t.Fatalf("rerun with the registry down: exit %d, want 0 using the cache:\n%s", code, out)
		}
		if got := testenv.ReadEnvFile(t, fresh[0].EnvFile())["ETCD_INITIAL_CLUSTER"]; got != want {
			t.Errorf("ETCD_INITIAL_CLUSTER %q from the cache; want %q", got, want)
		}
		if took > 10*time.Second {
			t.Errorf("the cached run took %s", took)
		}
	})
}

var registeredRE = regexp.MustCompile(`msg=registered .*created=(\d+)`)

// createdIndex is the registry index at which the agent's output says it
// registered, or 0.
func createdIndex(out string) uint64 {
	m := registeredRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// Rule 6. Two hosts with one name start at the same moment: the one whose
// key was created first wins; the other exits 5 and takes its key back;
// a third host's cluster names the winner, and a fourth fills the token.
// Repeated, so that both orders are likely to occur.
func TestOneNameOnTwoHostsAtOnce(t *testing.T) {
	registry, _ := testenv.Registry(t)
	seen := map[int]int{} // index of the winner: rounds
	const rounds = 6
	for round := 0; round < rounds && (round < 2 || len(seen) < 2); round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			discovery := newToken(t, registry, 3)
			hosts := testenv.Hosts(t, "dup", 4)
			twins := hosts[:2]
			twins[1].Name = twins[0].Name
			third, fourth := hosts[2], hosts[3]
			args := []string{"--peer-wait", "0", "--timeout", "30s"}
			procs := make([]*testenv.Process, 2)
			for i, h := range twins {
				procs[i] = testenv.StartAgent(t, agentBin, h, discovery, args...)
			}
			mid := testenv.StartAgent(t, agentBin, third, discovery, args...)
			// One twin leaves; the other waits with the third host.
			loser := -1
			select {
			case <-procs[0].Done():
				loser = 0
			case <-procs[1].Done():
				loser = 1
			case <-time.After(30 * time.Second):
				t.Fatalf("neither twin left within 30 s:\n%s\n%s", procs[0].Output(), procs[1].Output())
			}
			winner := 1 - loser
			waitFor(t, 10*time.Second, "the other twin says it registered", func() bool { return createdIndex(procs[winner].Output()) != 0 })
			created := []uint64{createdIndex(procs[0].Output()), createdIndex(procs[1].Output())}
			if created[loser] == 0 || created[winner] >= created[loser] {
				t.Errorf("the twin that left registered at %d, the one that stayed at %d; want the later one to leave", created[loser], created[winner])
			}
			seen[winner]++
			if code := procs[loser].ExitCode(); code != exitConflict || !strings.Contains(procs[loser].Output(), "is already registered by another host") {
				t.Errorf("the later twin (created %d): exit %d, want %d:\n%s", created[loser], code, exitConflict, procs[loser].Output())
			}
			if !strings.Contains(procs[loser].Output(), "removed this host's registration, leaving the token as it was") {
				t.Errorf("the later twin did not take its key back:\n%s", procs[loser].Output())
			}
			running(t, procs[winner])
			noEnvFile(t, twins[loser])
			running(t, mid)
			waitFor(t, 10*time.Second, "the third host registers", func() bool { return tokenEntries(t, discovery)[keyOf(third, discovery)].Key != "" })
			wantEntries(t, discovery, []testenv.Host{twins[winner], third})

			last := testenv.StartAgent(t, agentBin, fourth, discovery, args...)
			for _, p := range []*testenv.Process{procs[winner], mid, last} {
				if code := p.Wait(t, 30*time.Second); code != 0 {
					t.Errorf("%s: exit %d:\n%s", p.Name, code, p.Output())
				}
			}
			got := sameInitialCluster(t, twins[winner], third, fourth)
			if !slices.Contains(strings.Split(got, ","), valueOf(twins[winner])) || strings.Contains(got, twins[loser].PeerURL()) {
				t.Errorf("ETCD_INITIAL_CLUSTER %q; want the winner %s and not the loser %s", got, valueOf(twins[winner]), valueOf(twins[loser]))
			}
			wantEntries(t, discovery, []testenv.Host{twins[winner], third, fourth})
		})
	}
	t.Logf("the first-started twin won %d rounds, the second %d", seen[0], seen[1])
}

// Rule 7. A fault that cannot heal is final at once, and one fault always
// gets one exit code: TLS against a plain-http registry is exit 8 within
// seconds; a refused connection is retried until --timeout (exit 4); a DNS
// server that never answers is exit 7 on every run, whatever --timeout.
func TestPermanentFaultsAreFinal(t *testing.T) {
	registry, _ := testenv.Registry(t)
	// etcd 3.4 closes the connection on a TLS ClientHello: the handshake
	// ends in a bare EOF, which the agent tells from a registry going away
	// by asking the port in plain HTTP.
	t.Run("https to a plain-http registry", func(t *testing.T) {
		discovery := newToken(t, registry, 1)
		h := testenv.Hosts(t, "tls", 1)[0]
		code, out, took := runAgentEnv(t, nil, testenv.AgentArgs(h, strings.Replace(discovery, "http://", "https://", 1), "--timeout", "20s")...)
		if code != exitAccess || !strings.Contains(out, "answers plain HTTP, not TLS") {
			t.Errorf("exit %d after %s, want %d with a TLS message:\n%s", code, took, exitAccess, out)
		}
		if took > 10*time.Second {
			t.Errorf("took %s; a TLS failure should end the run within seconds", took)
		}
		noEnvFile(t, h)
		wantEntries(t, discovery, nil)
	})
	t.Run("connection refused", func(t *testing.T) {
		h := testenv.Hosts(t, "ref", 1)[0]
		discovery := fmt.Sprintf("http://127.0.0.1:%d/v2/keys/discovery/refused", testenv.FreePort(t, "127.0.0.1"))
		code, out, took := runAgentEnv(t, nil, testenv.AgentArgs(h, discovery, "--timeout", "5s")...)
		if code != exitTimeout || !strings.Contains(out, "connection refused") {
			t.Errorf("exit %d after %s, want %d naming the refused connection:\n%s", code, took, exitTimeout, out)
		}
		if took < 4*time.Second || took > 20*time.Second {
			t.Errorf("took %s; want about the 5 s --timeout", took)
		}
		noEnvFile(t, h)
	})
	t.Run("DNS server that never answers", func(t *testing.T) {
		named := testenv.Named(t, "example.test.") // for its key file
		silent := silentDNS(t)
		h := testenv.Hosts(t, "mute", 1)[0]
		discovery := newToken(t, registry, 1)
		for i, timeout := range []string{"2s", "10m", "3s"} {
			code, out, took := runAgentEnv(t, nil, testenv.AgentArgs(h, discovery, "--timeout", timeout, "--peer-wait", "0",
				"--publish-server", silent, "--publish-zone", "example.test", "--tsig-key-file", named.KeyFile)...)
			if code != exitDNS || !strings.Contains(out, silent) || !strings.Contains(out, "no answer") {
				t.Errorf("run %d (--timeout %s): exit %d after %s, want %d naming %s and no answer:\n%s", i+1, timeout, code, took, exitDNS, silent, out)
			}
			if took > 20*time.Second {
				t.Errorf("run %d (--timeout %s) took %s", i+1, timeout, took)
			}
			noEnvFile(t, h)
		}
		// The server was found silent before the host registered.
		wantEntries(t, discovery, nil)
	})
}
