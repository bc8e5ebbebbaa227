package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// agentBin is the agent built once for this package's tests.
var agentBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAgent(m, &agentBin)) }

// execAgent runs the agent to completion with env (NAME=VALUE) added to a
// bare PATH, its stdout and stderr going to the two buffers (one buffer
// for combined output), and returns its exit code and run time.
func execAgent(t *testing.T, env []string, stdout, stderr *bytes.Buffer, args ...string) (int, time.Duration) {
	t.Helper()
	testenv.SkipIfShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		out := stdout.String()
		if stderr != stdout {
			out += stderr.String()
		}
		t.Fatalf("agent %v did not finish: %s", args, out)
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run agent: %v", err)
	}
	return cmd.ProcessState.ExitCode(), took
}

// runAgent runs the agent to completion and returns its exit code and
// combined output.
func runAgent(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code, _ := execAgent(t, nil, &out, &out, args...)
	return code, out.String()
}

// newToken makes a token of size n on the registry with the agent itself.
func newToken(t *testing.T, registry string, n int) string {
	t.Helper()
	code, out := runAgent(t, "token", "new", "--endpoints", registry, "--size", fmt.Sprint(n))
	if code != 0 {
		t.Fatalf("token new: exit %d: %s", code, out)
	}
	u := strings.TrimSpace(out)
	if strings.Contains(u, "\n") || !strings.HasPrefix(u, registry+"/v2/keys/discovery/") {
		t.Fatalf("token new printed %q, want one discovery URL under %s", out, registry)
	}
	return u
}

// registrations lists the token's member keys straight from the registry.
func registrations(t *testing.T, discovery string) map[string]string {
	t.Helper()
	reg, err := etcdv2.New(discovery, agent.Access{})
	testenv.Must(t, err, "registry of %s", discovery)
	info, err := agent.ShowToken(context.Background(), reg)
	testenv.Must(t, err, "read token")
	m := map[string]string{}
	for _, e := range info.Entries {
		m[e.Key] = e.Value
	}
	return m
}

// waitRegistrations waits until the token holds n registrations.
func waitRegistrations(t *testing.T, discovery string, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("the token holds %d registrations", n), func() bool { return len(registrations(t, discovery)) == n })
}

// putRaw writes a registry key directly, as a misbehaving host could.
func putRaw(t *testing.T, discovery, key, value string) {
	t.Helper()
	testenv.PutV2(t, discovery+"/"+key, value)
}

// startCluster starts every host as systemd would (agent, then etcd from
// its env file), all at once, and waits until each serves.
func startCluster(t *testing.T, etcdBin, discovery string, hosts []testenv.Host) []*testenv.Process {
	t.Helper()
	procs := make([]*testenv.Process, len(hosts))
	for i, h := range hosts {
		procs[i] = testenv.StartHostWithEtcd(t, agentBin, etcdBin, h, discovery)
	}
	for i, h := range hosts {
		testenv.WaitHealthy(t, procs[i], 60*time.Second, h.ClientURL())
	}
	return procs
}

// checkCluster asserts that every host serves one healthy cluster whose
// members are exactly hosts, with the member IDs that v2 discovery on this
// token would give them, and the cluster ID etcd derives from those IDs.
func checkCluster(t *testing.T, discovery string, hosts []testenv.Host) {
	t.Helper()
	var peerURLs []string
	for _, h := range hosts {
		peerURLs = append(peerURLs, h.PeerURL())
	}
	want, wantCluster := wantMembers(discovery, hosts, peerURLs)
	for _, h := range hosts {
		checkMemberList(t, h, want, wantCluster)
	}
}

// wantMembers is what etcd reports of a cluster of hosts that advertise
// peerURLs and hash the string hashed (the token, or the cluster token)
// into member IDs: each member's ID by name, and the cluster ID etcd
// derives from those IDs.
func wantMembers(hashed string, hosts []testenv.Host, peerURLs []string) (map[string]uint64, uint64) {
	want := map[string]uint64{}
	var ids []uint64
	for i, h := range hosts {
		want[h.Name] = agent.MemberID([]string{peerURLs[i]}, hashed)
		ids = append(ids, want[h.Name])
	}
	return want, agent.ClusterID(ids)
}

// checkMemberList asserts that h's etcd reports exactly the members want
// (name: ID) and the cluster ID wantCluster, and returns its member list.
func checkMemberList(t *testing.T, h testenv.Host, want map[string]uint64, wantCluster uint64) []testenv.MemberInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	cluster, ms, err := testenv.MemberList(ctx, h.ClientURL())
	cancel()
	testenv.Must(t, err, "member list from %s", h.Name)
	got := map[string]uint64{}
	for _, m := range ms {
		got[m.Name] = m.ID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s reports members %v, want %v (name: ID)", h.Name, got, want)
	}
	if cluster != wantCluster {
		t.Errorf("%s reports cluster ID %s, want %s (from the member IDs)", h.Name, agent.FormatID(cluster), agent.FormatID(wantCluster))
	}
	return ms
}

func TestThreeAgentsFormOneClusterAndAFourthFindsItFull(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "h", 4)

	startCluster(t, testenv.EtcdBinary(t), discovery, hosts[:3])
	checkCluster(t, discovery, hosts[:3])

	var cluster string
	for _, h := range hosts[:3] {
		env := testenv.ReadEnvFile(t, h.EnvFile())
		if env["ETCD_NAME"] != h.Name || env["ETCD_INITIAL_CLUSTER_STATE"] != "new" || env["ETCD_INITIAL_CLUSTER_TOKEN"] != discovery {
			t.Errorf("%s: env file %v", h.Name, env)
		}
		if cluster == "" {
			cluster = env["ETCD_INITIAL_CLUSTER"]
		} else if env["ETCD_INITIAL_CLUSTER"] != cluster {
			t.Errorf("%s: ETCD_INITIAL_CLUSTER %q differs from %q", h.Name, env["ETCD_INITIAL_CLUSTER"], cluster)
		}
	}

	late := hosts[3]
	code, out := runAgent(t, testenv.AgentArgs(late, discovery, "--timeout", "30s")...)
	if code != exitTokenFull {
		t.Fatalf("fourth host: exit %d, want %d (token full):\n%s", code, exitTokenFull, out)
	}
	if !strings.Contains(out, "already has its 3 members") {
		t.Errorf("fourth host's error does not say the token is full:\n%s", out)
	}
	if _, err := os.Stat(late.EnvFile()); !os.IsNotExist(err) {
		t.Errorf("fourth host wrote an env file (stat: %v)", err)
	}
	if regs := registrations(t, discovery); len(regs) != 3 {
		t.Errorf("registry holds %d registrations after the fourth host, want 3: %v", len(regs), regs)
	}
}

// memberNames asks h's etcd for the member list and returns the names
// ("" for a member added but not started), sorted.
func memberNames(t *testing.T, h testenv.Host) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := testenv.Members(ctx, h.ClientURL())
	testenv.Must(t, err, "member list from %s", h.Name)
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}

// With --on-full=join, hosts that come after the token filled join its
// running cluster: added one after the other, each started from an env file
// with state existing; a rerun before etcd started does not add the host
// twice; a host whose peer URL a started member holds is a conflict.
func TestLateHostsJoinTheRunningCluster(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "j", 7)
	etcd := testenv.EtcdBinary(t)
	startCluster(t, etcd, discovery, hosts[:3])
	checkCluster(t, discovery, hosts[:3])

	// Two late hosts at once: etcd takes one added member at a time, the
	// other's agent waits until the first has started.
	late := hosts[3:5]
	procs := make([]*testenv.Process, len(late))
	for i, h := range late {
		procs[i] = testenv.StartHostWithEtcd(t, agentBin, etcd, h, discovery, "--on-full", "join")
	}
	for i, h := range late {
		testenv.WaitHealthy(t, procs[i], 60*time.Second, h.ClientURL())
		env := testenv.ReadEnvFile(t, h.EnvFile())
		if env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" || !strings.Contains(env["ETCD_INITIAL_CLUSTER"], h.Name+"="+h.PeerURL()) {
			t.Errorf("%s: env file %v", h.Name, env)
		}
		if !strings.Contains(procs[i].Output(), "added this host to the running cluster") {
			t.Errorf("%s did not say it joined:\n%s", h.Name, procs[i].Output())
		}
	}
	want := []string{hosts[0].Name, hosts[1].Name, hosts[2].Name, hosts[3].Name, hosts[4].Name}
	slices.Sort(want)
	if got := memberNames(t, hosts[0]); !slices.Equal(got, want) {
		t.Fatalf("members %q; want %q", got, want)
	}
	if regs := registrations(t, discovery); len(regs) != 3 {
		t.Errorf("the token holds %d registrations, want its 3: %v", len(regs), regs)
	}

	// The sixth host's agent runs, but its etcd does not start (a crash);
	// the rerun, even without its state cache, finds itself added and
	// unstarted and adds nothing.
	h := hosts[5]
	args := testenv.AgentArgs(h, discovery, "--on-full", "join", "--timeout", "30s")
	code, out := runAgent(t, args...)
	if code != 0 {
		t.Fatalf("sixth host: exit %d:\n%s", code, out)
	}
	first := testenv.ReadEnvFile(t, h.EnvFile())
	testenv.Must(t, os.RemoveAll(h.StateDir()), "remove the state dir")
	code, out = runAgent(t, args...)
	if code != 0 || !strings.Contains(out, "added to the running cluster by an earlier run") {
		t.Fatalf("sixth host, rerun: exit %d:\n%s", code, out)
	}
	if again := testenv.ReadEnvFile(t, h.EnvFile()); again["ETCD_INITIAL_CLUSTER"] != first["ETCD_INITIAL_CLUSTER"] {
		t.Errorf("rerun wrote ETCD_INITIAL_CLUSTER %q, first run %q", again["ETCD_INITIAL_CLUSTER"], first["ETCD_INITIAL_CLUSTER"])
	}
	if got := memberNames(t, hosts[0]); len(got) != 6 || got[0] != "" {
		t.Fatalf("members after the sixth host's two runs: %q; want five named and one added, unstarted", got)
	}
	// While the sixth is added and not started, a seventh host waits (and
	// says why) instead of adding itself: its etcd would be given a member
	// list that the sixth's lacks. Timed out, it leaves nothing behind.
	code, out = runAgent(t, testenv.AgentArgs(hosts[6], discovery, "--on-full", "join", "--timeout", "8s")...)
	if code != exitTimeout || !strings.Contains(out, "was added but has not started yet") {
		t.Errorf("seventh host while the sixth has not started: exit %d, want %d naming the unstarted member:\n%s", code, exitTimeout, out)
	}
	if got := memberNames(t, hosts[0]); len(got) != 6 {
		t.Errorf("members after the seventh host timed out: %q; want 6", got)
	}

	p := testenv.StartEtcdFromEnvFile(t, h.Name, h.EnvFile())
	testenv.WaitHealthy(t, p, 60*time.Second, h.ClientURL())
	if got := memberNames(t, hosts[0]); len(got) != 6 || got[0] == "" {
		t.Fatalf("members once the sixth started: %q", got)
	}

	// A host that lost its data dir: its peer URL belongs to a started member.
	lost := hosts[4]
	procs[1].Stop()
	testenv.Must(t, os.RemoveAll(lost.DataDir()), "remove the data dir")
	testenv.Must(t, os.RemoveAll(lost.StateDir()), "remove the state dir")
	code, out = runAgent(t, testenv.AgentArgs(lost, discovery, "--on-full", "join", "--timeout", "20s")...)
	if code != exitConflict || !strings.Contains(out, "etcdctl member remove") {
		t.Errorf("host without its data dir: exit %d, want %d naming etcdctl member remove:\n%s", code, exitConflict, out)
	}
}

func TestMixedFleetWithEtcdsOwnDiscovery(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "mix", 3)
	etcd := testenv.EtcdBinary(t)

	procs := []*testenv.Process{
		testenv.StartHost(t, agentBin, hosts[0], discovery),
		testenv.StartHost(t, agentBin, hosts[1], discovery),
	}
	native := hosts[2]
	procs = append(procs, testenv.Start(t, "native-"+native.Name, etcd, []string{
		"--name", native.Name,
		"--discovery", discovery,
		"--discovery-fallback", "exit",
		"--data-dir", native.DataDir(),
		"--initial-advertise-peer-urls", native.PeerURL(), "--listen-peer-urls", native.PeerURL(),
		"--advertise-client-urls", native.ClientURL(), "--listen-client-urls", native.ClientURL(),
	}, nil))
	for i, h := range hosts {
		testenv.WaitHealthy(t, procs[i], 60*time.Second, h.ClientURL())
	}
	checkCluster(t, discovery, hosts)
}

func TestAgentKilledMidWaitResumes(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	hosts := testenv.Hosts(t, "k", 2)

	first := testenv.StartAgent(t, agentBin, hosts[0], discovery)
	waitRegistrations(t, discovery, 1)
	first.Signal(syscall.SIGKILL)
	first.Wait(t, 10*time.Second)

	again := testenv.StartHost(t, agentBin, hosts[0], discovery)
	second := testenv.StartHost(t, agentBin, hosts[1], discovery)
	testenv.WaitHealthy(t, again, 60*time.Second, hosts[0].ClientURL())
	testenv.WaitHealthy(t, second, 60*time.Second, hosts[1].ClientURL())
	checkCluster(t, discovery, hosts)
	if !strings.Contains(again.Output(), "already registered under this token by an earlier run; resuming") {
		t.Errorf("rerun did not say it resumed:\n%s", again.Output())
	}
	if regs := registrations(t, discovery); len(regs) != 2 {
		t.Errorf("registry holds %d registrations, want 2: %v", len(regs), regs)
	}
}

func TestRestartOfInitialisedMemberNeedsNoRegistry(t *testing.T) {
	registry, reg := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	hosts := testenv.Hosts(t, "r", 2)
	procs := startCluster(t, testenv.EtcdBinary(t), discovery, hosts)
	before := testenv.ReadEnvFile(t, hosts[0].EnvFile())

	// The registry goes away and the host reboots: /run is empty again.
	reg.Stop()
	procs[0].Stop()
	testenv.Must(t, os.Remove(hosts[0].EnvFile()), "clear /run")

	restarted := testenv.StartHost(t, agentBin, hosts[0], discovery, "--timeout", "20s")
	testenv.WaitHealthy(t, restarted, 60*time.Second, hosts[0].ClientURL())
	after := testenv.ReadEnvFile(t, hosts[0].EnvFile())
	if after["ETCD_INITIAL_CLUSTER_STATE"] != "existing" {
		t.Errorf("restart wrote ETCD_INITIAL_CLUSTER_STATE=%q, want existing", after["ETCD_INITIAL_CLUSTER_STATE"])
	}
	if after["ETCD_INITIAL_CLUSTER"] != before["ETCD_INITIAL_CLUSTER"] {
		t.Errorf("restart wrote ETCD_INITIAL_CLUSTER=%q, want the cached %q", after["ETCD_INITIAL_CLUSTER"], before["ETCD_INITIAL_CLUSTER"])
	}
	if !strings.Contains(restarted.Output(), "not contacting the registry") {
		t.Errorf("restart did not say it skipped the registry:\n%s", restarted.Output())
	}
	checkCluster(t, discovery, hosts)
}

func TestRegistryEntriesAreValidatedBeforeUse(t *testing.T) {
	registry, _ := testenv.Registry(t)
	poison := []struct{ name, value string }{
		{"newline", "evil=http://127.0.0.9:2380\nETCD_NAME=evil"},
		{"quote", `evil=http://127.0.0.9:2380"`},
		{"dollar", "evil$(reboot)=http://127.0.0.9:2380"},
		{"bad URL", "evil=http://127.0.0.9:2380/path"},
		{"not a pair", "just-a-name"},
		{"space after comma", "evil=http://127.0.0.9:2380, evil=http://127.0.0.8:2380"},
	}
	hosts := testenv.Hosts(t, "p", len(poison))
	for i, tc := range poison {
		t.Run(tc.name, func(t *testing.T) {
			discovery := newToken(t, registry, 2)
			putRaw(t, discovery, "badc0ffee", tc.value)
			code, out := runAgent(t, testenv.AgentArgs(hosts[i], discovery, "--timeout", "30s")...)
			if code != exitRegistryData {
				t.Fatalf("exit %d, want %d:\n%s", code, exitRegistryData, out)
			}
			if !strings.Contains(out, "badc0ffee") {
				t.Errorf("error does not name the poisoned key:\n%s", out)
			}
			if _, err := os.Stat(hosts[i].EnvFile()); !os.IsNotExist(err) {
				t.Errorf("env file written despite a poisoned registry (stat: %v)", err)
			}
		})
	}
}

func TestNameTakenByAnotherHost(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "n", 2)
	hosts[1].Name = hosts[0].Name // a cloned image

	first := testenv.StartAgent(t, agentBin, hosts[0], discovery)
	waitRegistrations(t, discovery, 1)
	code, out := runAgent(t, testenv.AgentArgs(hosts[1], discovery, "--timeout", "30s")...)
	if code != exitConflict {
		t.Fatalf("exit %d, want %d (conflict):\n%s", code, exitConflict, out)
	}
	if !strings.Contains(out, "is already registered by another host") || !strings.Contains(out, hosts[0].PeerURL()) {
		t.Errorf("error does not name the conflict:\n%s", out)
	}
	regs := registrations(t, discovery)
	if len(regs) != 1 || !slices.Contains(mapValues(regs), hosts[0].Name+"="+hosts[0].PeerURL()) {
		t.Errorf("registry after the conflict: %v, want only the first host", regs)
	}
	first.Stop()
}

// v2Value reads key through the v2 keys API at clientURL: its value, or
// "" with the status when there is none.
func v2Value(t *testing.T, clientURL, key string) (string, string) {
	t.Helper()
	resp, err := http.Get(clientURL + "/v2/keys/" + key)
	testenv.Must(t, err, "get %s from %s", key, clientURL)
	defer resp.Body.Close()
	var v struct{ Node struct{ Value string } }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return "", resp.Status
	}
	return v.Node.Value, resp.Status
}

func TestFullTokenProxy(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 1)
	hosts := testenv.Hosts(t, "x", 2)
	// The member serves the v2 keys API (etcd 3.4 needs --enable-v2), so
	// that the v2 proxy has something to forward.
	if code, out := runAgent(t, testenv.AgentArgs(hosts[0], discovery, "--timeout", "30s")...); code != 0 {
		t.Fatalf("member's agent: exit %d:\n%s", code, out)
	}
	member := testenv.StartEtcdFromEnvFile(t, hosts[0].Name, hosts[0].EnvFile(), "--enable-v2")
	testenv.WaitHealthy(t, member, 60*time.Second, hosts[0].ClientURL())

	proxy := testenv.StartHost(t, agentBin, hosts[1], discovery, "--on-full", "proxy", "--etcd-binary", testenv.EtcdBinary(t))
	env := waitEnv(t, hosts[1].EnvFile(), proxy)
	if env["ETCD_PROXY"] != "on" || env["ETCD_INITIAL_CLUSTER"] != hosts[0].Name+"="+hosts[0].PeerURL() {
		t.Fatalf("proxy env file: %v", env)
	}
	// A key written through the proxy is read from the member, and one
	// written to the member is read through the proxy.
	waitFor(t, 30*time.Second, "the proxy serves", func() bool {
		resp, err := http.Get(hosts[1].ClientURL() + "/version")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, c := range []struct{ key, from, to string }{
		{"through-the-proxy", hosts[1].ClientURL(), hosts[0].ClientURL()},
		{"to-the-member", hosts[0].ClientURL(), hosts[1].ClientURL()},
	} {
		putRaw(t, c.from+"/v2/keys", c.key, "value-"+c.key)
		if got, status := v2Value(t, c.to, c.key); got != "value-"+c.key {
			t.Errorf("put %s at %s, read %q (%s) at %s; want %q", c.key, c.from, got, status, c.to, "value-"+c.key)
		}
	}
	if regs := registrations(t, discovery); len(regs) != 1 {
		t.Errorf("registry holds %d registrations, want 1: %v", len(regs), regs)
	}
}

func TestBadInputExitCodes(t *testing.T) {
	registry, _ := testenv.Registry(t)
	h := testenv.Hosts(t, "b", 1)[0]
	sized := newToken(t, registry, 2)
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no discovery", []string{"bootstrap", "--name", "a", "--advertise-address", "127.0.0.1"}, exitUsage, "--discovery"},
		{"template finds nothing", testenv.AgentArgs(h, sized, "--advertise-address", `{{ GetAllInterfaces | include "name" "no-such-nic" | attr "address" }}`), exitUsage, "found no address"},
		{"template finds several", testenv.AgentArgs(h, sized, "--advertise-address", `127.0.0.98 {{ "127.0.0.99" }}`), exitUsage, "addresses"},
		{"bad name", testenv.AgentArgs(h, sized, "--name", "a=b"), exitUsage, "--name"},
		{"query in URL", testenv.AgentArgs(h, sized+"?x=1"), exitUsage, "query"},
		{"unknown token", testenv.AgentArgs(h, registry+"/v2/keys/discovery/nosuchtoken", "--timeout", "20s"), exitRegistryData, "token new"},
		{"token new size 0", []string{"token", "new", "--endpoints", registry, "--size", "0"}, exitUsage, "--size"},
		{"DNS server by name", []string{"bootstrap", "--name", "a", "--advertise-address", "127.0.0.1", "--discovery-srv", "example.test", "--size", "3",
			"--dns-resolver", "ns1.example.test", "--data-dir", h.DataDir(), "--env-file", h.EnvFile(), "--state-dir", h.StateDir()}, exitUsage, `ns1.example.test\": want IP or IP:PORT`},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runAgent(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d, want %d, output should mention %q:\n%s", code, tc.code, tc.says, out)
			}
		})
	}
	if _, err := os.Stat(h.EnvFile()); !os.IsNotExist(err) {
		t.Errorf("a failed run wrote an env file (stat: %v)", err)
	}
}

func TestTimeoutLeavesNothingThatBlocksTheNextTry(t *testing.T) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	hosts := testenv.Hosts(t, "t", 2)
	code, out := runAgent(t, testenv.AgentArgs(hosts[0], discovery, "--timeout", "2s")...)
	if code != exitTimeout || !strings.Contains(out, "1 of 2 members registered") {
		t.Fatalf("exit %d, want %d with what it waited for:\n%s", code, exitTimeout, out)
	}
	if _, err := os.Stat(hosts[0].EnvFile()); !os.IsNotExist(err) {
		t.Errorf("timed-out run wrote an env file (stat: %v)", err)
	}
	startCluster(t, testenv.EtcdBinary(t), discovery, hosts)
	checkCluster(t, discovery, hosts)
}

func TestEnvironmentVariablesSetFlags(t *testing.T) {
	testenv.SkipIfShort(t)
	cmd := exec.Command(agentBin, "address")
	cmd.Env = []string{"EDA_ADVERTISE_ADDRESS=127.0.0.77"}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "127.0.0.77" {
		t.Fatalf("address with EDA_ADVERTISE_ADDRESS: %v %q", err, out)
	}
	cmd = exec.Command(agentBin, "bootstrap", "--discovery", "http://127.0.0.1:1/v2/keys/d/t")
	cmd.Env = []string{"EDA_PEER_PORT=notaport"}
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "EDA_PEER_PORT") {
		t.Fatalf("bad EDA_PEER_PORT: exit %d %q", cmd.ProcessState.ExitCode(), out)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitEnv(t *testing.T, path string, p *testenv.Process) map[string]string {
	t.Helper()
	waitFor(t, 30*time.Second, "env file "+path+" exists", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	return testenv.ReadEnvFile(t, path)
}

func mapValues(m map[string]string) []string {
	var vs []string
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

// netns creates a bare network namespace for the test.
func netns(t *testing.T) string {
	t.Helper()
	return testenv.Namespace(t, fmt.Sprintf("eda-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6))
}

// ip runs ip(8) inside namespace ns.
func ip(t *testing.T, ns string, args ...string) {
	t.Helper()
	testenv.IP(t, append([]string{"-n", ns}, args...)...)
}

// addNIC adds an interface with address cidr to namespace ns: one end of a
// veth pair whose other end stays, down and without address, in ns too.
func addNIC(t *testing.T, ns, name, cidr string) {
	t.Helper()
	ip(t, ns, "link", "add", name, "type", "veth", "peer", "name", name+"p")
	ip(t, ns, "addr", "add", cidr, "dev", name)
	ip(t, ns, "link", "set", name+"p", "up")
	ip(t, ns, "link", "set", name, "up")
}

// inNetns runs the agent inside namespace ns.
func inNetns(t *testing.T, ns string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, agentBin}, args...)...)
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out))
}

func TestAddressSelectionOnRealInterfaces(t *testing.T) {
	t.Run("one private address behind the default route", func(t *testing.T) {
		ns := netns(t)
		addNIC(t, ns, "eth0", "10.77.0.5/24")
		ip(t, ns, "route", "add", "default", "dev", "eth0")
		if code, out := inNetns(t, ns, "address"); code != 0 || out != "10.77.0.5" {
			t.Errorf("address = %d %q; want 10.77.0.5", code, out)
		}
	})
	t.Run("two private addresses are an error that lists both", func(t *testing.T) {
		ns := netns(t)
		addNIC(t, ns, "eth0", "10.77.0.5/24")
		addNIC(t, ns, "eth1", "192.168.77.5/24")
		ip(t, ns, "route", "add", "default", "dev", "eth0")
		code, out := inNetns(t, ns, "address", "--advertise-address", "{{ GetPrivateIPs }}")
		if code != exitUsage || !strings.Contains(out, "10.77.0.5") || !strings.Contains(out, "192.168.77.5") {
			t.Errorf("address = %d %q; want exit %d listing both addresses", code, out, exitUsage)
		}
		if code, out := inNetns(t, ns, "address", "--advertise-address", `{{ GetPrivateInterfaces | include "name" "eth1" | attr "address" }}`); code != 0 || out != "192.168.77.5" {
			t.Errorf("narrowed template = %d %q; want 192.168.77.5", code, out)
		}
	})
	t.Run("no private address", func(t *testing.T) {
		ns := netns(t)
		code, out := inNetns(t, ns, "address")
		if code != exitUsage || !strings.Contains(out, "found no address") {
			t.Errorf("address = %d %q; want exit %d saying nothing was found", code, out, exitUsage)
		}
	})
}

// etcd 3.7 has no v2 discovery at all (ETCD_DISCOVERY is ignored there and
// a one-member cluster forms); members started from the agent's env files
// still form the token's cluster, with the IDs v2 discovery would give.
func TestEtcd37MembersBootstrapFromAToken(t *testing.T) {
	etcd37 := testenv.BuildEtcd(t, "v3.7.3")
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "v37-", 3)
	startCluster(t, etcd37, discovery, hosts)
	checkCluster(t, discovery, hosts)
	resp, err := http.Get(hosts[0].ClientURL() + "/version")
	testenv.Must(t, err, "version")
	defer resp.Body.Close()
	var v struct {
		Server string `json:"etcdserver"`
	}
	testenv.Must(t, json.NewDecoder(resp.Body).Decode(&v), "decode /version")
	if !strings.HasPrefix(v.Server, "3.7.") {
		t.Errorf("cluster runs etcd %q; want 3.7", v.Server)
	}
}

// The registry restarts while a host waits: the host's watch breaks, it
// retries, and the rendezvous completes when the next host registers.
func TestRegistryRestartDuringTheWait(t *testing.T) {
	registry, reg := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	hosts := testenv.Hosts(t, "rr", 2)
	first := testenv.StartHost(t, agentBin, hosts[0], discovery)
	waitRegistrations(t, discovery, 1)

	reg = reg.Restart(t)
	testenv.WaitHealthy(t, reg, 30*time.Second, registry)
	second := testenv.StartHost(t, agentBin, hosts[1], discovery)
	testenv.WaitHealthy(t, first, 60*time.Second, hosts[0].ClientURL())
	testenv.WaitHealthy(t, second, 60*time.Second, hosts[1].ClientURL())
	checkCluster(t, discovery, hosts)
	if !strings.Contains(first.Output(), "retrying") {
		t.Errorf("the first host's log does not show it lost and regained the registry:\n%s", first.Output())
	}
}

func TestTokenWithoutAValidSize(t *testing.T) {
	registry, _ := testenv.Registry(t)
	h := testenv.Hosts(t, "s", 1)[0]
	for _, size := range []string{"0", "-1", "three", ""} {
		t.Run("size "+strconv.Quote(size), func(t *testing.T) {
			discovery := fmt.Sprintf("%s/v2/keys/discovery/badsize%d", registry, time.Now().UnixNano())
			putRaw(t, discovery, "_config/size", size)
			code, out := runAgent(t, testenv.AgentArgs(h, discovery, "--timeout", "20s")...)
			if code != exitRegistryData || !strings.Contains(out, "_config/size") {
				t.Errorf("exit %d, want %d naming _config/size:\n%s", code, exitRegistryData, out)
			}
		})
	}
}

// dnsFlags are the bootstrap flags that publish into n's zone.
func dnsFlags(n *testenv.DNSServer, keyFile string) []string {
	return []string{"--publish-server", n.Addr, "--publish-zone", "example.test", "--tsig-key-file", keyFile}
}

// Three hosts bootstrap by token and publish their SRV records, into BIND,
// Knot and PowerDNS: the zone holds exactly their records, lookup reads
// the cluster from them, withdraw takes one host's out, and a wrong key
// leaves the zone as it was and writes no env file.
func TestHostsPublishTheirSRVRecords(t *testing.T) {
	for _, start := range testenv.DNSServers() {
		server := start(t, "example.test.")
		t.Run(server.Kind, func(t *testing.T) { testHostsPublish(t, server) })
	}
}

func testHostsPublish(t *testing.T, server *testenv.DNSServer) {
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "infra", 3)
	procs := make([]*testenv.Process, len(hosts))
	for i, h := range hosts {
		procs[i] = testenv.StartHost(t, agentBin, h, discovery, dnsFlags(server, server.KeyFile)...)
	}
	for i, h := range hosts {
		testenv.WaitHealthy(t, procs[i], 60*time.Second, h.ClientURL())
		if !strings.Contains(procs[i].Output(), "published DNS records resolve as etcd will read them") {
			t.Errorf("%s did not check its records:\n%s", h.Name, procs[i].Output())
		}
	}
	checkCluster(t, discovery, hosts)

	// Exactly each host's records, as it advertised itself.
	wantZone(t, server, hosts, nil)
	if t.Failed() {
		t.FailNow()
	}

	// lookup prints the cluster the records describe, as etcd derives it.
	code, out := runAgent(t, "lookup", "--srv-domain", "example.test", "--dns-resolver", server.Addr)
	if code != 0 || strings.Count(out, "=http://") != 3 || !strings.Contains(out, hosts[0].Name+"=http://"+hosts[0].Name+".example.test:2380") {
		t.Errorf("lookup: exit %d:\n%s", code, out)
	}

	// withdraw removes one host's records and leaves the others.
	code, out = runAgent(t, append([]string{"withdraw", "--name", hosts[1].Name, "--advertise-address", hosts[1].Addr.String()}, dnsFlags(server, server.KeyFile)...)...)
	if code != 0 {
		t.Fatalf("withdraw: exit %d:\n%s", code, out)
	}
	remaining := []testenv.Host{hosts[0], hosts[2]}
	wantZone(t, server, remaining, hosts[1:2])

	// A wrong key is refused, clearly; nothing changes and no env file is written.
	late := testenv.Hosts(t, "late", 1)[0]
	one := newToken(t, registry, 1)
	code, out = runAgent(t, testenv.AgentArgs(late, one, dnsFlags(server, server.WrongKeyFile)...)...)
	refusal := map[string]string{"bind": "NOTAUTH/BADSIG", "knot": "NOTAUTH/BADSIG", "powerdns": "REFUSED"}[server.Kind]
	if code != exitDNS || !strings.Contains(out, refusal) || !strings.Contains(out, "secret") {
		t.Errorf("wrong key: exit %d, want %d naming %s:\n%s", code, exitDNS, refusal, out)
	}
	key, _ := os.ReadFile(server.WrongKeyFile)
	if secret := regexp.MustCompile(`secret "([^"]+)"`).FindSubmatch(key); secret == nil || strings.Contains(out, string(secret[1])) {
		t.Errorf("the output shows the TSIG secret (or the key file has none):\n%s", out)
	}
	wantZone(t, server, remaining, []testenv.Host{hosts[1], late})
	if _, err := os.Stat(late.EnvFile()); !os.IsNotExist(err) {
		t.Errorf("env file written although the DNS update was refused")
	}
}

// A fleet bootstrapped by token publishes its records; a later host uses
// SRV alone (no token) to find it, joins it under its address, as the
// others are known, and publishes itself.
func TestLaterHostFindsATokenFleetBySRV(t *testing.T) {
	server := testenv.Named(t, "example.test.")
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 3)
	hosts := testenv.Hosts(t, "s", 4)
	etcd := testenv.EtcdBinary(t)
	procs := make([]*testenv.Process, 3)
	for i, h := range hosts[:3] {
		procs[i] = testenv.StartHost(t, agentBin, h, discovery, dnsFlags(server, server.KeyFile)...)
	}
	for i, h := range hosts[:3] {
		testenv.WaitHealthy(t, procs[i], 60*time.Second, h.ClientURL())
	}

	late := hosts[3]
	p := testenv.StartHostArgs(t, agentBin, etcd, late, append([]string{
		"bootstrap", "--name", late.Name, "--advertise-address", late.Addr.String(),
		"--data-dir", late.DataDir(), "--env-file", late.EnvFile(), "--state-dir", late.StateDir(),
		"--discovery-srv", "example.test", "--size", "3", "--dns-resolver", server.Addr, "--timeout", "60s",
	}, dnsFlags(server, server.KeyFile)...)...)
	testenv.WaitHealthy(t, p, 60*time.Second, late.ClientURL())
	env := testenv.ReadEnvFile(t, late.EnvFile())
	if env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" || !strings.Contains(env["ETCD_INITIAL_CLUSTER"], late.Name+"="+late.PeerURL()) {
		t.Errorf("%s's env file: %v", late.Name, env)
	}
	want := []string{hosts[0].Name, hosts[1].Name, hosts[2].Name, late.Name}
	slices.Sort(want)
	if got := memberNames(t, hosts[0]); !slices.Equal(got, want) {
		t.Errorf("members %q; want %q", got, want)
	}
	if n := len(server.Records(t, "_etcd-server._tcp.example.test.", dns.TypeSRV)); n != 4 {
		t.Errorf("%d peer SRV records; want 4", n)
	}
}

// A record that points another target at this host's address would make
// etcd's SRV discovery take the wrong member for itself: the check says so
// before etcd starts.
func TestDNSCheckCatchesAStaleRecord(t *testing.T) {
	named := testenv.Named(t, "example.test.")
	registry, _ := testenv.Registry(t)
	h := testenv.Hosts(t, "fresh", 1)[0]
	named.MustUpdate(t,
		"update add old.example.test. 60 A "+h.Addr.String(),
		"update add _etcd-server._tcp.example.test. 60 SRV 0 0 2380 old.example.test.",
	)
	code, out := runAgent(t, testenv.AgentArgs(h, newToken(t, registry, 1), dnsFlags(named, named.KeyFile)...)...)
	if code != exitDNS || !strings.Contains(out, "old.example.test.") {
		t.Fatalf("exit %d, want %d naming the stale target:\n%s", code, exitDNS, out)
	}
	h2 := testenv.Hosts(t, "warned", 1)[0]
	named.MustUpdate(t, "update add old2.example.test. 60 A "+h2.Addr.String(), "update add _etcd-server._tcp.example.test. 60 SRV 0 0 2380 old2.example.test.")
	code, out = runAgent(t, testenv.AgentArgs(h2, newToken(t, registry, 1), append(dnsFlags(named, named.KeyFile), "--dns-check", "warn")...)...)
	if code != 0 || !strings.Contains(out, "do not check out") {
		t.Errorf("--dns-check=warn: exit %d, want 0 with a warning:\n%s", code, out)
	}
}

// srvArgs are the bootstrap flags of a host in SRV mode, a cluster of
// three under domain, that publishes its records to the network's named
// (zone example.test).
func srvArgs(h testenv.NetHost, named *testenv.DNSServer, domain string, extra ...string) []string {
	return bootstrapArgs(h.Host, append([]string{
		"--discovery-srv", domain, "--size", "3",
		"--publish-server", named.Addr, "--publish-zone", "example.test", "--tsig-key-file", named.KeyFile,
		"--timeout", "60s",
	}, extra...)...)
}

// Three hosts in network namespaces, each resolving through the test's
// BIND, publish their SRV records and form the cluster from them: plain
// http records with etcd 3.4, which its own --discovery-srv cannot use.
func TestSRVModeOnEtcd34WithHTTPRecords(t *testing.T) {
	n := testenv.NewNetwork(t)
	named := n.Named(t, "example.test.")
	etcd := testenv.EtcdBinary(t)
	var hosts []testenv.NetHost
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, n.AddHost(t, fmt.Sprintf("infra%d", i)))
	}
	procs := make([]*testenv.Process, len(hosts))
	for i, h := range hosts {
		procs[i] = testenv.StartNetHost(t, agentBin, etcd, h, srvArgs(h, named, "example.test")...)
	}
	want := map[string]uint64{}
	for i, h := range hosts {
		testenv.WaitHealthy(t, procs[i], 90*time.Second, h.ClientURL())
		want[h.Name] = agent.MemberID([]string{"http://" + h.Name + ".example.test:2380"}, "etcd-cluster")
	}
	if !strings.Contains(procs[1].Output(), "lead member serves") {
		t.Errorf("infra2 did not see the lead member serve (the ordered start):\n%s", procs[1].Output())
	}
	env := testenv.ReadEnvFile(t, hosts[0].EnvFile())
	if !strings.Contains(env["ETCD_INITIAL_CLUSTER"], "infra1=http://infra1.example.test:2380") || env["ETCD_INITIAL_CLUSTER_TOKEN"] != "etcd-cluster" {
		t.Errorf("env file: %v", env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := testenv.Members(ctx, hosts[0].ClientURL())
	testenv.Must(t, err, "member list")
	got := map[string]uint64{}
	for _, m := range ms {
		got[m.Name] = m.ID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("members %v; want %v (the IDs etcd's own SRV bootstrap gives)", got, want)
	}
	// A client that knows only the domain finds the cluster by SRV.
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", hosts[1].NS, "etcdctl", "--discovery-srv", "example.test", "member", "list").CombinedOutput()
	if err != nil || startedMembers(string(out)) != 3 {
		t.Errorf("etcdctl --discovery-srv example.test member list: %v\n%s", err, out)
	}

	// A later host, with the same settings, finds the cluster running by
	// SRV alone, joins it and publishes itself.
	late := n.AddHost(t, "infra4")
	p := testenv.StartNetHost(t, agentBin, etcd, late, srvArgs(late, named, "example.test")...)
	testenv.WaitHealthy(t, p, 90*time.Second, late.ClientURL())
	if !strings.Contains(p.Output(), "runs already; joining it") {
		t.Errorf("infra4 did not join:\n%s", p.Output())
	}
	env = testenv.ReadEnvFile(t, late.EnvFile())
	if env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" || !strings.Contains(env["ETCD_INITIAL_CLUSTER"], "infra4=http://infra4.example.test:2380") {
		t.Errorf("infra4's env file: %v", env)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, "ip", "netns", "exec", hosts[0].NS, "etcdctl", "--discovery-srv", "example.test", "member", "list").CombinedOutput()
	if err != nil || startedMembers(string(out)) != 4 || !strings.Contains(string(out), "infra4, http://infra4.example.test:2380") {
		t.Errorf("after infra4 joined, etcdctl --discovery-srv example.test member list: %v\n%s", err, out)
	}
}

// startedRE is a started member in etcdctl member list's output: "ID,
// started, NAME, ..." (an added member that has not started says
// "unstarted").
var startedRE = regexp.MustCompile(`(?m)^[0-9a-f]+, started, `)

// startedMembers counts the started members etcdctl member list shows.
func startedMembers(out string) int { return len(startedRE.FindAllString(out, -1)) }

// The agents only publish and wait (--output discovery-srv); etcd 3.7's own
// --discovery-srv then bootstraps from the records they published.
func TestEtcdsOwnSRVDiscoveryFromPublishedRecords(t *testing.T) {
	etcd37 := testenv.BuildEtcd(t, "v3.7.3")
	n := testenv.NewNetwork(t)
	named := n.Named(t, "example.test.")
	var hosts []testenv.NetHost
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, n.AddHost(t, fmt.Sprintf("infra%d", i)))
	}
	procs := make([]*testenv.Process, len(hosts))
	for i, h := range hosts {
		procs[i] = testenv.StartNetHost(t, agentBin, etcd37, h, srvArgs(h, named, "example.test", "--output", "discovery-srv", "--etcd-binary", etcd37)...)
	}
	for i, h := range hosts {
		testenv.WaitHealthy(t, procs[i], 90*time.Second, h.ClientURL())
	}
	env := testenv.ReadEnvFile(t, hosts[0].EnvFile())
	if env["ETCD_DISCOVERY_SRV"] != "example.test" || env["ETCD_INITIAL_CLUSTER"] != "" {
		t.Errorf("env file: %v", env)
	}
	for _, p := range procs {
		if !strings.Contains(p.Output(), "got bootstrap from DNS") {
			t.Errorf("etcd did not bootstrap from DNS itself:\n%s", p.Output())
		}
	}

	// A later host joins the running 3.7 cluster: member list, lock and
	// member add through 3.7's gateway; its env file is static (existing).
	late := n.AddHost(t, "infra4")
	p := testenv.StartNetHost(t, agentBin, etcd37, late, srvArgs(late, named, "example.test", "--output", "discovery-srv", "--etcd-binary", etcd37)...)
	testenv.WaitHealthy(t, p, 90*time.Second, late.ClientURL())
	env = testenv.ReadEnvFile(t, late.EnvFile())
	if env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" || env["ETCD_DISCOVERY_SRV"] != "" || !strings.Contains(env["ETCD_INITIAL_CLUSTER"], "infra4=http://infra4.example.test:2380") {
		t.Errorf("infra4's env file: %v", env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := testenv.Members(ctx, hosts[0].ClientURL())
	testenv.Must(t, err, "member list")
	if len(ms) != 4 {
		t.Errorf("%d members after infra4 joined: %v", len(ms), ms)
	}
}
