package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv3"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// The etcd version matrix, end to end: members of etcd 3.4 to 3.7 start
// from the agent's env file on v2 tokens (a registry of etcd 3.4 or 3.5
// with --enable-v2), v3 tokens (the v3 API of etcd 3.4 or 3.7) and SRV
// records; agents and etcd's own v3 discovery share one token; the outputs
// that hand the rendezvous over to etcd's own discovery; every combination
// that cannot work is refused before anything is written, and what it
// would do is shown. README.md's "Compatibility" table names these tests.
// Subtests run in parallel; each cluster has its own registry (or SRV
// domain) and hosts.

// etcdBin is the etcd binary of version ("3.4" is Debian's, the others
// are built by testenv).
func etcdBin(t *testing.T, version string) string {
	t.Helper()
	switch version {
	case "3.4":
		return testenv.EtcdBinary(t)
	case "3.5":
		return testenv.BuildEtcd(t, testenv.Etcd35)
	case "3.6":
		return testenv.BuildEtcd(t, testenv.Etcd36)
	case "3.7":
		return testenv.BuildEtcd(t, testenv.Etcd37)
	}
	t.Fatalf("no etcd %s in the matrix", version)
	return ""
}

// A registry kind: where tokens live.
type registryKind struct {
	v3      bool   // a v3 token (etcd's --discovery-token), else a v2 URL
	version string // of the registry's etcd
}

func (k registryKind) String() string {
	if k.v3 {
		return "v3@" + k.version
	}
	return "v2@" + k.version
}

var (
	v2On34 = registryKind{version: "3.4"}
	v2On35 = registryKind{version: "3.5"}
	v3On34 = registryKind{v3: true, version: "3.4"}
	v3On37 = registryKind{v3: true, version: "3.7"}
)

// startRegistry starts a one-member etcd of kind k and returns its client
// URL: with --enable-v2 for v2 tokens.
func startRegistry(t *testing.T, k registryKind) string {
	t.Helper()
	if !k.v3 && k.version == "3.4" {
		u, _ := testenv.Registry(t)
		return u
	}
	return testenv.StartEtcd(t, testenv.EtcdConfig{Name: "registry", Bin: etcdBin(t, k.version), EnableV2: !k.v3}).ClientURL
}

// matrixToken is a discovery token: a v2 discovery URL, or a v3 token in
// the etcd at endpoint.
type matrixToken struct {
	url             string
	token, endpoint string
}

// newMatrixToken starts a registry of kind k and makes a token of size n
// in it: a v2 token with the agent's token new, a v3 token as etcd's v3
// discovery documents it (the size key, create-only).
func newMatrixToken(t *testing.T, k registryKind, n int) matrixToken {
	t.Helper()
	registry := startRegistry(t, k)
	if !k.v3 {
		return matrixToken{url: newToken(t, registry, n)}
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	tok := matrixToken{token: "matrix-" + hex.EncodeToString(b), endpoint: registry}
	reg, err := etcdv3.NewRegistry([]string{registry}, tok.token, agent.Access{})
	testenv.Must(t, err, "registry of %s", tok.token)
	defer reg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testenv.Must(t, reg.Create(ctx, n, 0), "create the v3 token %s", tok.token)
	return tok
}

// hashed is the string etcd hashes into member IDs for this token.
func (k matrixToken) hashed() string {
	if k.url != "" {
		return k.url
	}
	return k.token
}

// agentFlags are the bootstrap flags that name the token.
func (k matrixToken) agentFlags() []string {
	if k.url != "" {
		return []string{"--discovery", k.url}
	}
	return []string{"--discovery-token", k.token, "--discovery-endpoints", k.endpoint}
}

// etcdFlags are the flags of etcd's own discovery on the token.
func (k matrixToken) etcdFlags() []string {
	if k.url != "" {
		return []string{"--discovery", k.url, "--discovery-fallback", "exit"}
	}
	return []string{"--discovery-token", k.token, "--discovery-endpoints", k.endpoint}
}

// registered counts the keys registered under the token, read straight
// from the registry: every key of the v3 members prefix, every node of the
// v2 token directory but _config.
func (k matrixToken) registered(t *testing.T) int {
	t.Helper()
	if k.url != "" {
		return len(registrations(t, k.url))
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{k.endpoint}, DialTimeout: 5 * time.Second})
	testenv.Must(t, err, "client of %s", k.endpoint)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "/_etcd/registry/"+k.token+"/members", clientv3.WithPrefix(), clientv3.WithCountOnly())
	testenv.Must(t, err, "count the registrations of %s", k.token)
	return int(resp.Count)
}

// matrixArgs are the bootstrap flags of host h on token k.
func matrixArgs(h testenv.Host, k matrixToken, extra ...string) []string {
	return bootstrapArgs(h, append(append([]string{"--timeout", "60s"}, k.agentFlags()...), extra...)...)
}

// matrixMember is one host of a matrix cluster: the etcd version it runs
// and whether etcd runs its own discovery (native) instead of the agent.
type matrixMember struct {
	version string
	native  bool
}

func agents(version string, n int) []matrixMember {
	ms := make([]matrixMember, n)
	for i := range ms {
		ms[i] = matrixMember{version: version}
	}
	return ms
}

// matrixCluster is a cluster the matrix started: its hosts, the etcd
// version of each, the peer URL each advertises and the string etcd hashes
// into member IDs with it (the token, or the cluster token in SRV mode).
type matrixCluster struct {
	hashed   string
	members  []matrixMember
	hosts    []testenv.Host
	peerURLs []string
	procs    []*testenv.Process
}

// startMatrixCluster starts one host per member at once: an agent host
// (the agent with agentExtra, then etcd from its env file, then promote)
// or a native etcd on the token; and waits until each is healthy.
func startMatrixCluster(t *testing.T, tok matrixToken, members []matrixMember, agentExtra ...string) *matrixCluster {
	t.Helper()
	c := &matrixCluster{hashed: tok.hashed(), members: members, hosts: testenv.Hosts(t, "m", len(members))}
	for i, m := range members {
		h, bin := c.hosts[i], etcdBin(t, m.version)
		c.peerURLs = append(c.peerURLs, h.PeerURL())
		if m.native {
			c.procs = append(c.procs, testenv.Start(t, "native-"+h.Name, bin, append([]string{
				"--name", h.Name,
				"--data-dir", h.DataDir(),
				"--initial-advertise-peer-urls", h.PeerURL(), "--listen-peer-urls", h.PeerURL(),
				"--advertise-client-urls", h.ClientURL(), "--listen-client-urls", h.ClientURL(),
			}, tok.etcdFlags()...), nil))
			continue
		}
		args := matrixArgs(h, tok, append([]string{"--etcd-binary", bin}, agentExtra...)...)
		c.procs = append(c.procs, testenv.StartHostArgs(t, agentBin, bin, h, args...))
	}
	for i, h := range c.hosts {
		testenv.WaitHealthy(t, c.procs[i], 60*time.Second, h.ClientURL())
	}
	return c
}

// check asserts what an operator would: every member serves etcd of its
// version and reports the same three (all started) members, with the
// member IDs etcd derives from its peer URL and the token, and one cluster
// ID, the one etcd derives from those IDs; no etcd warned about a variable
// it does not know.
func (c *matrixCluster) check(t *testing.T) {
	t.Helper()
	want, wantCluster := wantMembers(c.hashed, c.hosts, c.peerURLs)
	for i, h := range c.hosts {
		if v := serverVersion(t, h); !strings.HasPrefix(v, c.members[i].version+".") {
			t.Errorf("%s runs etcd %s, want %s", h.Name, v, c.members[i].version)
		}
		ms, started := checkMemberList(t, h, want, wantCluster), 0
		for _, m := range ms {
			if m.Name != "" && len(m.ClientURLs) > 0 {
				started++
			}
		}
		if started != len(c.hosts) || len(ms) != len(c.hosts) {
			t.Errorf("%s reports %d members, %d of them started; want %d started", h.Name, len(ms), started, len(c.hosts))
		}
		if out := c.procs[i].Output(); strings.Contains(out, "unrecognized environment variable") {
			t.Errorf("%s's etcd did not know a variable of its environment:\n%s", h.Name, out)
		}
	}
}

// env reads the env file of the i-th host.
func (c *matrixCluster) env(t *testing.T, i int) map[string]string {
	t.Helper()
	return testenv.ReadEnvFile(t, c.hosts[i].EnvFile())
}

// serverVersion asks h's etcd for its version (GET /version).
func serverVersion(t *testing.T, h testenv.Host) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.ClientURL()+"/version", nil)
	testenv.Must(t, err, "request")
	resp, err := http.DefaultClient.Do(req)
	testenv.Must(t, err, "version of %s", h.Name)
	defer resp.Body.Close()
	var v struct {
		Server string `json:"etcdserver"`
	}
	testenv.Must(t, json.NewDecoder(resp.Body).Decode(&v), "decode %s's /version", h.Name)
	return v.Server
}

// matrixCase is one cluster of the matrix: its members, on a token of
// kind registry that they fill.
type matrixCase struct {
	name     string
	registry registryKind
	members  []matrixMember
}

// agentCase is three agent hosts of etcd version member on a token of
// kind registry, named etcdVERSION_KIND.
func agentCase(member string, registry registryKind) matrixCase {
	return matrixCase{"etcd" + member + "_" + registry.String(), registry, agents(member, 3)}
}

// runMatrix runs each case in a parallel subtest: its cluster on a fresh
// token (agent hosts with agentExtra), checked as an operator would
// (check), then more, then the token must hold one registration per
// member.
func runMatrix(t *testing.T, cases []matrixCase, agentExtra []string, more func(t *testing.T, tok matrixToken, c *matrixCluster)) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := newMatrixToken(t, tc.registry, len(tc.members))
			c := startMatrixCluster(t, tok, tc.members, agentExtra...)
			c.check(t)
			more(t, tok, c)
			if n := tok.registered(t); n != len(tc.members) {
				t.Errorf("the token holds %d registrations, want %d", n, len(tc.members))
			}
		})
	}
}

// Three agent hosts, output static, on every registry kind; every member
// version on a v2 and on a v3 token.
func TestMatrixStatic(t *testing.T) {
	runMatrix(t, []matrixCase{
		agentCase("3.4", v2On34), agentCase("3.7", v2On34),
		agentCase("3.5", v2On35), agentCase("3.6", v2On35),
		agentCase("3.4", v3On34), agentCase("3.5", v3On34),
		agentCase("3.6", v3On37), agentCase("3.7", v3On37),
	}, nil, func(t *testing.T, tok matrixToken, c *matrixCluster) {
		initial := c.env(t, 0)["ETCD_INITIAL_CLUSTER"]
		for i, h := range c.hosts {
			env := c.env(t, i)
			if env["ETCD_INITIAL_CLUSTER"] != initial || strings.Count(initial, "=http://") != 3 ||
				env["ETCD_INITIAL_CLUSTER_STATE"] != "new" || env["ETCD_INITIAL_CLUSTER_TOKEN"] != tok.hashed() {
				t.Errorf("%s's env file: %v", h.Name, env)
			}
		}
	})
}

// Agent hosts and etcd's own discovery (native members started with
// --discovery-token and --discovery-endpoints, or --discovery, and no
// agent) on one token form one cluster: both register under the member ID
// of their peer URL and the token, and read the token alike.
func TestMatrixInterop(t *testing.T) {
	agent35, agent36, agent37 := matrixMember{version: "3.5"}, matrixMember{version: "3.6"}, matrixMember{version: "3.7"}
	native35, native36, native37 := matrixMember{version: "3.5", native: true}, matrixMember{version: "3.6", native: true}, matrixMember{version: "3.7", native: true}
	runMatrix(t, []matrixCase{
		{"2agents3.7_native3.7_v3@3.4", v3On34, []matrixMember{agent37, agent37, native37}},
		{"agent3.6_native3.6_native3.7_v3@3.7", v3On37, []matrixMember{agent36, native36, native37}},
		// etcd's own v2 discovery (--discovery), which 3.5 and 3.6 still have.
		{"2agents3.5_native3.5_v2@3.5", v2On35, []matrixMember{agent35, agent35, native35}},
		{"agent3.6_native3.5_native3.6_v2@3.5", v2On35, []matrixMember{agent36, native35, native36}},
	}, nil, func(t *testing.T, _ matrixToken, c *matrixCluster) {
		for i, m := range c.members {
			_, err := os.Stat(c.hosts[i].EnvFile())
			if m.native != os.IsNotExist(err) {
				t.Errorf("%s (native %t): env file stat: %v", c.hosts[i].Name, m.native, err)
			}
		}
	})
}

// --output discovery-token: the agents register and wait until the token
// is full; etcd 3.6 and 3.7 then run their own v3 discovery on it.
func TestMatrixOutputDiscoveryToken(t *testing.T) {
	runMatrix(t, []matrixCase{
		agentCase("3.6", v3On34),
		agentCase("3.7", v3On37),
	}, []string{"--output", "discovery-token"}, func(t *testing.T, tok matrixToken, c *matrixCluster) {
		for i, h := range c.hosts {
			env := c.env(t, i)
			if env["ETCD_DISCOVERY_TOKEN"] != tok.token || env["ETCD_DISCOVERY_ENDPOINTS"] != tok.endpoint || env["ETCD_INITIAL_CLUSTER"] != "" {
				t.Errorf("%s's env file: %v", h.Name, env)
			}
			// etcd's v3 discovery logs each member it found.
			if out := c.procs[i].Output(); !strings.Contains(out, "found peer from discovery service") {
				t.Errorf("%s's etcd did not run its own v3 discovery:\n%s", h.Name, out)
			}
		}
	})
}

// --output discovery: the agent only checks the v2 token (it does not
// register) and hands the URL to etcd's own v2 discovery, which etcd 3.4
// to 3.6 still have.
func TestMatrixOutputDiscovery(t *testing.T) {
	runMatrix(t, []matrixCase{
		agentCase("3.4", v2On34),
		agentCase("3.5", v2On35),
		agentCase("3.6", v2On35),
	}, []string{"--output", "discovery"}, func(t *testing.T, tok matrixToken, c *matrixCluster) {
		for i, h := range c.hosts {
			env := c.env(t, i)
			if env["ETCD_DISCOVERY"] != tok.url || env["ETCD_DISCOVERY_FALLBACK"] != "exit" || env["ETCD_INITIAL_CLUSTER"] != "" {
				t.Errorf("%s's env file: %v", h.Name, env)
			}
			if out := c.procs[i].Output(); !strings.Contains(out, "etcd registers itself") {
				t.Errorf("%s's agent did not leave the registration to etcd:\n%s", h.Name, out)
			}
		}
	})
}

// Every combination that cannot work is refused with exit 2 and a message
// naming it, before anything is written: the token holds no registration,
// and there is no env file and no state cache. The local etcd's version
// comes from the real binary (--etcd-binary) or is given
// (--etcd-version).
func TestMatrixRefusals(t *testing.T) {
	testenv.SkipIfShort(t)
	registry, _ := testenv.Registry(t) // etcd 3.4: v2 tokens and v3 tokens
	v2tok := matrixToken{url: newToken(t, registry, 3)}
	v3tok := matrixToken{token: "refusals", endpoint: registry}
	reg, err := etcdv3.NewRegistry([]string{registry}, v3tok.token, agent.Access{})
	testenv.Must(t, err, "registry")
	testenv.Must(t, reg.Create(context.Background(), 3, 0), "create the v3 token")
	reg.Close()
	srv := matrixToken{} // SRV records: no token, no registry
	missing := filepath.Join(t.TempDir(), "no-etcd-here")

	type refusal struct {
		name    string
		tok     matrixToken
		version string // of the local etcd; "" when there is none to give
		flags   []string
		says    string
	}
	var cases []refusal
	cases = append(cases, refusal{"discovery_etcd3.7", v2tok, "3.7", []string{"--output", "discovery"}, "has no v2 discovery (removed in 3.7)"})
	for _, v := range []string{"3.4", "3.5"} {
		cases = append(cases, refusal{"discovery-token_etcd" + v, v3tok, v, []string{"--output", "discovery-token"}, "has no v3 discovery (added in 3.6)"})
	}
	for _, v := range []string{"3.6", "3.7"} {
		cases = append(cases, refusal{"proxy_etcd" + v, v2tok, v, []string{"--on-full", "proxy"}, "has no v2 proxy (removed in 3.6)"})
	}
	cases = append(cases,
		refusal{"discovery-srv_http_etcd3.4", srv, "3.4", []string{"--output", "discovery-srv"}, "reads only _etcd-server-ssl records"},
		refusal{"no_etcd_binary_discovery-token", v3tok, "", []string{"--output", "discovery-token"}, "cannot ask"},
		refusal{"no_etcd_binary_discovery", v2tok, "", []string{"--output", "discovery"}, "cannot ask"},
		refusal{"no_etcd_binary_proxy", v2tok, "", []string{"--on-full", "proxy"}, "cannot ask"},
		refusal{"unreadable_etcd_version", v3tok, "", []string{"--etcd-version", "latest", "--output", "discovery-token"}, "is not an etcd version such as 3.7.3"},
	)
	hosts := testenv.Hosts(t, "no", 2*len(cases))
	for i, tc := range cases {
		for j, how := range []string{"binary", "version"} {
			if tc.version == "" && how == "version" {
				continue // nothing to give
			}
			h, name := hosts[2*i+j], tc.name+"_by_"+how
			if tc.version == "" {
				name = tc.name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var flags []string
				switch {
				case tc.version == "":
					flags = []string{"--etcd-binary", missing}
				case how == "binary":
					flags = []string{"--etcd-binary", etcdBin(t, tc.version)}
				default:
					flags = []string{"--etcd-version", tc.version + ".0", "--etcd-binary", missing}
				}
				args := matrixArgs(h, tc.tok, append(flags, tc.flags...)...)
				if tc.tok == srv {
					args = append(args, "--discovery-srv", "example.test", "--size", "3")
				}
				code, out := runAgent(t, args...)
				if code != exitUsage || !strings.Contains(out, tc.says) {
					t.Errorf("exit %d, want %d saying %q:\n%s", code, exitUsage, tc.says, out)
				}
				if tc.version != "" && !strings.Contains(out, "etcd "+tc.version+".") {
					t.Errorf("the message does not name the etcd version %s:\n%s", tc.version, out)
				}
				if tc.tok != srv {
					if n := tc.tok.registered(t); n != 0 {
						t.Errorf("the token holds %d registrations after the refusal", n)
					}
				}
				noEnvFile(t, h)
				if _, err := os.Stat(h.StateDir()); !os.IsNotExist(err) {
					t.Errorf("%s has a state dir (stat: %v)", h.Name, err)
				}
			})
		}
	}
}

// startFn starts a process, on loopback (testenv.Start) or inside a
// host's namespace (NetHost.Start).
type startFn func(t testing.TB, name, bin string, args, env []string) *testenv.Process

// bootstrapAll runs the agent with args(i) for every host at once and
// fails the test unless each exits 0.
func bootstrapAll(t *testing.T, hosts []testenv.Host, start []startFn, args func(i int) []string) {
	t.Helper()
	var runs []*testenv.Process
	for i, h := range hosts {
		runs = append(runs, start[i](t, "agent-"+h.Name, agentBin, args(i), nil))
	}
	for _, p := range runs {
		if code := p.Wait(t, 60*time.Second); code != 0 {
			t.Fatalf("%s: exit %d:\n%s", p.Name, code, p.Output())
		}
	}
}

// etcdFromEnvFile starts bin from h's env file, as etcd's unit does
// (sh: set -a; . FILE; exec etcd), without the agent's promote after it.
func etcdFromEnvFile(t *testing.T, start startFn, h testenv.Host, bin string, args ...string) *testenv.Process {
	t.Helper()
	return start(t, "etcd-"+h.Name, "/bin/sh", append([]string{"-c", `set -a; . "$1"; set +a; shift; exec "$@"`, "sh", h.EnvFile(), bin}, args...), nil)
}

// --on-full proxy: a host that comes after the token filled becomes an
// etcd v2 proxy of its cluster, where etcd still has one (3.4 and 3.5).
// The member serves the v2 API (--enable-v2) so that the proxy has
// something to forward: a key written through one is read through the
// other.
func TestMatrixProxy(t *testing.T) {
	for _, tc := range []struct {
		member   string
		registry registryKind
	}{
		{"3.5", v2On35},
		{"3.4", v3On34},
	} {
		t.Run("etcd"+tc.member+"_"+tc.registry.String(), func(t *testing.T) {
			t.Parallel()
			tok := newMatrixToken(t, tc.registry, 1)
			hosts := testenv.Hosts(t, "x", 2)
			member, proxy := hosts[0], hosts[1]
			bin := etcdBin(t, tc.member)
			bootstrapAll(t, hosts[:1], []startFn{testenv.Start}, func(int) []string { return matrixArgs(member, tok) })
			m := etcdFromEnvFile(t, testenv.Start, member, bin, "--enable-v2")
			testenv.WaitHealthy(t, m, 60*time.Second, member.ClientURL())
			bootstrapAll(t, hosts[1:], []startFn{testenv.Start}, func(int) []string {
				return matrixArgs(proxy, tok, "--on-full", "proxy", "--etcd-binary", bin)
			})
			if env := testenv.ReadEnvFile(t, proxy.EnvFile()); env["ETCD_PROXY"] != "on" || env["ETCD_INITIAL_CLUSTER"] != member.Name+"="+member.PeerURL() {
				t.Fatalf("proxy's env file: %v", env)
			}
			p := etcdFromEnvFile(t, testenv.Start, proxy, bin)
			waitFor(t, 30*time.Second, "the proxy serves", func() bool {
				resp, err := http.Get(proxy.ClientURL() + "/version")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
			for _, c := range []struct{ key, from, to string }{
				{"through-the-proxy", proxy.ClientURL(), member.ClientURL()},
				{"to-the-member", member.ClientURL(), proxy.ClientURL()},
			} {
				putRaw(t, c.from+"/v2/keys", c.key, "value-"+c.key)
				if got, status := v2Value(t, c.to, c.key); got != "value-"+c.key {
					t.Errorf("put %s at %s, read %q (%s) at %s; want %q", c.key, c.from, got, status, c.to, "value-"+c.key)
				}
			}
			if out := p.Output(); strings.Contains(out, "unrecognized environment variable") {
				t.Errorf("the proxy's etcd did not know a variable of its environment:\n%s", out)
			}
			if n := tok.registered(t); n != 1 {
				t.Errorf("the token holds %d registrations, want 1", n)
			}
		})
	}
}

// What the refusals of outputs prevent, shown with the check bypassed by
// a wrong --etcd-version: etcd 3.7 and 3.5 do not know the variable that
// names the discovery, ignore it, and each host starts a cluster of its
// own; etcd 3.4 does not bootstrap from plain-http SRV records.
func TestMatrixWhyRefused(t *testing.T) {
	for _, tc := range []struct {
		name, member, lie string
		registry          registryKind
		output, ignored   string
		registered        int // keys in the token afterwards
	}{
		// The agent leaves the registration to etcd, which never makes it.
		{"discovery_etcd3.7", "3.7", "3.6.0", v2On34, "discovery", "ETCD_DISCOVERY=", 0},
		// The agents register and see the token fill; etcd never reads it.
		{"discovery-token_etcd3.5", "3.5", "3.6.0", v3On34, "discovery-token", "ETCD_DISCOVERY_TOKEN=", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := newMatrixToken(t, tc.registry, 2)
			hosts := testenv.Hosts(t, "w", 2)
			bin := etcdBin(t, tc.member)
			bootstrapAll(t, hosts, []startFn{testenv.Start, testenv.Start}, func(i int) []string {
				return matrixArgs(hosts[i], tok, "--output", tc.output, "--etcd-version", tc.lie)
			})
			clusters := map[uint64]bool{}
			for _, h := range hosts {
				p := etcdFromEnvFile(t, testenv.Start, h, bin)
				testenv.WaitHealthy(t, p, 60*time.Second, h.ClientURL())
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				cluster, ms, err := testenv.MemberList(ctx, h.ClientURL())
				cancel()
				testenv.Must(t, err, "member list from %s", h.Name)
				clusters[cluster] = true
				if len(ms) != 1 {
					t.Errorf("%s reports %d members; want itself alone", h.Name, len(ms))
				}
				if out := p.Output(); !strings.Contains(out, "unrecognized environment variable") || !strings.Contains(out, tc.ignored) {
					t.Errorf("%s's etcd %s did not say it ignores %s:\n%s", h.Name, tc.member, strings.TrimSuffix(tc.ignored, "="), out)
				}
			}
			if len(clusters) != 2 {
				t.Errorf("the two hosts report %d cluster IDs; want two clusters of one", len(clusters))
			}
			if n := tok.registered(t); n != tc.registered {
				t.Errorf("the token holds %d registrations, want %d", n, tc.registered)
			}
		})
	}
	// etcd 3.4's own SRV discovery drops the plain-http records it finds
	// (it appends them only when their lookup failed), looks for
	// _etcd-server-ssl alone and stops.
	t.Run("discovery-srv_http_etcd3.4", func(t *testing.T) {
		t.Parallel()
		n := testenv.NewNetwork(t)
		named := n.Named(t, "example.test.")
		var hosts []testenv.NetHost
		var plain []testenv.Host
		var starts []startFn
		for i := range 3 {
			h := n.AddHost(t, fmt.Sprintf("infra%d", i+1))
			hosts, plain, starts = append(hosts, h), append(plain, h.Host), append(starts, h.Start)
		}
		bootstrapAll(t, plain, starts, func(i int) []string {
			return srvArgs(hosts[i], named, "example.test", "--output", "discovery-srv", "--etcd-version", "3.5.0")
		})
		for i, h := range hosts {
			p := etcdFromEnvFile(t, starts[i], h.Host, testenv.EtcdBinary(t))
			if code := p.Wait(t, 30*time.Second); code == 0 || !strings.Contains(p.Output(), "couldn't resolve during SRV discovery") || !strings.Contains(p.Output(), "_etcd-server-ssl") {
				t.Errorf("%s's etcd 3.4: exit %d; want it to stop, not finding _etcd-server-ssl records:\n%s", h.Name, code, p.Output())
			}
		}
	})
}

// SRV records instead of a token, in network namespaces whose resolver is
// the test's BIND: the agents publish their records and form the cluster
// from them (output static), or hand the complete records to etcd's own
// --discovery-srv (output discovery-srv). Each subtest has its own SRV
// domain in one zone, one network for all.
func TestMatrixSRV(t *testing.T) {
	n := testenv.NewNetwork(t)
	named := n.Named(t, "example.test.")
	for _, tc := range []struct{ member, output string }{
		{"3.4", "static"}, {"3.5", "static"}, {"3.6", "static"}, {"3.7", "static"},
		{"3.5", "discovery-srv"}, {"3.6", "discovery-srv"}, {"3.7", "discovery-srv"},
	} {
		name := "etcd" + tc.member + "_" + tc.output
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			domain := strings.ReplaceAll(strings.ReplaceAll(name, ".", ""), "_", "-") + ".example.test"
			bin := etcdBin(t, tc.member)
			c := &matrixCluster{hashed: "etcd-cluster", members: agents(tc.member, 3)}
			for i := range c.members {
				h := n.AddHost(t, fmt.Sprintf("infra%d", i+1))
				c.hosts = append(c.hosts, h.Host)
				c.peerURLs = append(c.peerURLs, "http://"+h.Name+"."+domain+":2380")
				c.procs = append(c.procs, testenv.StartNetHost(t, agentBin, bin, h,
					srvArgs(h, named, domain, "--output", tc.output, "--etcd-binary", bin)...))
			}
			for i, h := range c.hosts {
				testenv.WaitHealthy(t, c.procs[i], 90*time.Second, h.ClientURL())
			}
			c.check(t)
			for i, h := range c.hosts {
				env := c.env(t, i)
				switch {
				case tc.output == "static" && !strings.Contains(env["ETCD_INITIAL_CLUSTER"], h.Name+"="+c.peerURLs[i]):
					t.Errorf("%s's env file: %v", h.Name, env)
				case tc.output == "discovery-srv" && (env["ETCD_DISCOVERY_SRV"] != domain || env["ETCD_INITIAL_CLUSTER"] != ""):
					t.Errorf("%s's env file: %v", h.Name, env)
				case tc.output == "discovery-srv" && !strings.Contains(c.procs[i].Output(), "got bootstrap from DNS"):
					t.Errorf("%s's etcd did not bootstrap from DNS itself:\n%s", h.Name, c.procs[i].Output())
				}
			}
		})
	}
}
