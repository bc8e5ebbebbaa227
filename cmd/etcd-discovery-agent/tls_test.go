package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// secureRegistry is an etcd 3.4 v2 registry that demands a client
// certificate and a user, the agent's flags to reach it, and the secrets
// that must never show in the agent's output.
type secureRegistry struct {
	m       *testenv.Etcd
	ca      *testenv.CA
	client  testenv.Cert
	users   *testenv.EtcdUsers
	flags   []string
	secrets []string
}

func newSecureRegistry(t *testing.T) *secureRegistry {
	t.Helper()
	ca := testenv.NewCA(t, "registry-ca")
	m := testenv.StartEtcd(t, testenv.EtcdConfig{EnableV2: true, CA: ca, ClientTLS: true, ClientCertAuth: true})
	users := testenv.EnableV2Auth(t, m, testenv.AuthSpec{})
	client := ca.Client(t, "")
	key, err := os.ReadFile(client.KeyFile)
	testenv.Must(t, err, "read the key")
	return &secureRegistry{
		m: m, ca: ca, client: client, users: users,
		flags: []string{
			"--discovery-cacert", m.CAFile, "--discovery-cert", client.CertFile, "--discovery-key", client.KeyFile,
			"--discovery-user", users.User.Name, "--discovery-password-file", users.User.PasswordFile,
		},
		secrets: []string{users.User.Password, users.Root.Password, strings.TrimSpace(string(key))},
	}
}

// entries lists the token's entries as the root user does.
func (r *secureRegistry) entries(t *testing.T, discovery string) []agent.Entry {
	t.Helper()
	tlsConf, err := r.client.ClientTLS()
	testenv.Must(t, err, "TLS")
	reg, err := etcdv2.New(discovery, agent.Access{TLS: tlsConf, User: "root", Password: r.users.Root.Password})
	testenv.Must(t, err, "registry")
	es, _, err := reg.List(context.Background())
	testenv.Must(t, err, "list %s", discovery)
	return es
}

func noSecrets(t *testing.T, what, out string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("%s shows a secret (%.8s...):\n%s", what, s, out)
		}
	}
}

// Three agents bootstrap through a registry that demands a client
// certificate and a user; wrong or missing credentials are refused at once,
// with a message naming the cause and the file, exit 8 (a missing password
// file: exit 2), nothing registered and no env file; no output shows a
// secret.
func TestBootstrapThroughATLSRegistry(t *testing.T) {
	r := newSecureRegistry(t)
	code, out := runAgent(t, append([]string{"token", "new", "--endpoints", r.m.ClientURL, "--size", "3", "--prefix", "/_etcd/registry"}, r.flags...)...)
	if code != 0 {
		t.Fatalf("token new: exit %d:\n%s", code, out)
	}
	discovery := strings.TrimSpace(out)

	other := testenv.NewCA(t, "other-ca")
	expired := r.ca.Client(t, "", testenv.Expired())
	wrongPassword := filepath.Join(t.TempDir(), "password")
	testenv.Must(t, os.WriteFile(wrongPassword, []byte("not-the-password\n"), 0o600), "write")
	with := func(replace map[string]string, drop ...string) []string {
		var args []string
		for i := 0; i < len(r.flags); i += 2 {
			name, value := r.flags[i], r.flags[i+1]
			if v, ok := replace[name]; ok {
				value = v
			}
			if !slices.Contains(drop, name) {
				args = append(args, name, value)
			}
		}
		return args
	}
	bad := testenv.Hosts(t, "bad", 1)[0]
	for _, tc := range []struct {
		name string
		args []string
		code int
		says []string
	}{
		{"CA of another authority", with(map[string]string{"--discovery-cacert": other.CertFile}), exitAccess, []string{"certificate signed by unknown authority", "CA file " + other.CertFile}},
		{"expired client certificate", with(map[string]string{"--discovery-cert": expired.CertFile, "--discovery-key": expired.KeyFile}), exitAccess, []string{"remote error: tls", "client certificate " + expired.CertFile}},
		{"no client certificate", with(nil, "--discovery-cert", "--discovery-key"), exitAccess, []string{"remote error: tls", "CA file " + r.m.CAFile}},
		{"wrong password", with(map[string]string{"--discovery-password-file": wrongPassword}), exitAccess, []string{"requires user authentication", "password file " + wrongPassword}},
		{"missing password file", with(map[string]string{"--discovery-password-file": wrongPassword + ".missing"}), exitUsage, []string{"--discovery-password-file", wrongPassword + ".missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, took := runAgentEnv(t, nil, testenv.AgentArgs(bad, discovery, append(tc.args, "--timeout", "60s")...)...)
			if code != tc.code {
				t.Errorf("exit %d; want %d:\n%s", code, tc.code, out)
			}
			for _, s := range tc.says {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if took > 15*time.Second {
				t.Errorf("took %s: a refusal is final, not retried until the timeout", took)
			}
			noSecrets(t, "the agent's output", out, r.secrets)
			if es := r.entries(t, discovery); len(es) != 0 {
				t.Errorf("the token holds %v", es)
			}
			noEnvFile(t, bad)
		})
	}

	hosts := testenv.Hosts(t, "tls", 3)
	procs := make([]*testenv.Process, len(hosts))
	for i, h := range hosts {
		procs[i] = testenv.StartHost(t, agentBin, h, discovery, r.flags...)
	}
	for i, h := range hosts {
		testenv.WaitHealthy(t, procs[i], 60*time.Second, h.ClientURL())
	}
	checkCluster(t, discovery, hosts)
	for _, p := range procs {
		noSecrets(t, p.Name+"'s output", p.Output(), r.secrets)
	}
	if es := r.entries(t, discovery); len(es) != 3 {
		t.Errorf("the token holds %d entries; want 3", len(es))
	}
}

// secureCluster is a running cluster with client and peer TLS, client and
// peer certificate auth, v3 auth and the gRPC gateway off, as operators
// run it; the hosts that join it get certificates of its CA.
type secureCluster struct {
	ms    []*testenv.Etcd
	ca    *testenv.CA
	users *testenv.EtcdUsers
	admin testenv.Cert
}

func newSecureCluster(t *testing.T, bin string) *secureCluster {
	t.Helper()
	var cfgs []testenv.EtcdConfig
	ca := testenv.NewCA(t, "cluster-ca")
	for _, h := range testenv.Hosts(t, "sec", 3) {
		cfgs = append(cfgs, testenv.EtcdConfig{Bin: bin, Name: h.Name, Addr: h.Addr, ClientPort: 2379, PeerPort: 2380, CA: ca,
			ClientTLS: true, ClientCertAuth: true, PeerTLS: true, PeerCertAuth: true, DisableGateway: true})
	}
	ms := testenv.StartEtcdCluster(t, cfgs...)
	return &secureCluster{ms: ms, ca: ca, users: testenv.EnableAuth(t, ms[0], testenv.AuthSpec{}), admin: ca.Client(t, "")}
}

// hostArgs are a joining host's agent flags and etcd flags for the cluster.
func (c *secureCluster) hostArgs(t *testing.T, h testenv.Host) (agentFlags, etcdFlags []string) {
	// etcd checks a peer's certificate against the address it dials from;
	// on loopback every host dials from 127.0.0.1, which "localhost"
	// resolves to (a real host dials from its own address).
	cert := c.ca.Server(t, h.Name, []netip.Addr{h.Addr}, "localhost")
	agentFlags = []string{"--scheme", "https",
		"--cluster-cacert", cert.CAFile, "--cluster-cert", c.admin.CertFile, "--cluster-key", c.admin.KeyFile,
		"--cluster-user", "root", "--cluster-password-file", c.users.Root.PasswordFile,
		"--peer-cacert", cert.CAFile, "--peer-cert", cert.CertFile, "--peer-key", cert.KeyFile,
		"--on-full", "join"}
	etcdFlags = []string{"--cert-file", cert.CertFile, "--key-file", cert.KeyFile, "--trusted-ca-file", cert.CAFile, "--client-cert-auth",
		"--peer-cert-file", cert.CertFile, "--peer-key-file", cert.KeyFile, "--peer-trusted-ca-file", cert.CAFile, "--peer-client-cert-auth",
		"--enable-grpc-gateway=false"}
	return agentFlags, etcdFlags
}

type listedMember struct {
	ID        uint64   `json:"ID"`
	Name      string   `json:"name"`
	PeerURLs  []string `json:"peerURLs"`
	IsLearner bool     `json:"isLearner"`
}

// members is the cluster's member list as root sees it through gRPC.
func (c *secureCluster) members(t *testing.T) []listedMember {
	t.Helper()
	out, err := c.ms[0].Etcdctl(t, &c.users.Root, "member", "list", "-w", "json")
	testenv.Must(t, err, "member list")
	var l struct{ Members []listedMember }
	testenv.Must(t, json.Unmarshal([]byte(out), &l), "member list %s", out)
	return l.Members
}

// fullToken is a v2 token that the cluster's three members fill, as if
// they had bootstrapped from it, so that a later host with --on-full=join
// finds them.
func (c *secureCluster) fullToken(t *testing.T) string {
	t.Helper()
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, len(c.ms))
	for _, m := range c.ms {
		putRaw(t, discovery, agent.FormatID(agent.MemberID([]string{m.PeerURL}, discovery)), m.Name+"="+m.PeerURL)
	}
	return discovery
}

// A host joins a TLS and auth cluster with the gateway off as a learner;
// promote (its ExecStartPost) makes it a voter. The same host, having lost
// its data dir, is refused without --replace and replaces its old member
// with it. On etcd 3.4 and 3.7.
func TestLearnerJoinsATLSAuthCluster(t *testing.T) {
	for _, version := range []string{"3.4", "3.7"} {
		t.Run("etcd"+version, func(t *testing.T) {
			bin := etcdBin(t, version)
			c := newSecureCluster(t, bin)
			discovery := c.fullToken(t)
			h := testenv.Hosts(t, "late", 1)[0]
			agentFlags, etcdFlags := c.hostArgs(t, h)
			p := testenv.StartHostEtcdArgs(t, agentBin, bin, h, etcdFlags, testenv.AgentArgs(h, discovery, agentFlags...))
			waitFor(t, 90*time.Second, "the late host to be a voter", func() bool {
				for _, m := range c.members(t) {
					if m.Name == h.Name && !m.IsLearner {
						return true
					}
				}
				return false
			})
			out := p.Output()
			for _, want := range []string{"as=learner", "promoted this member to a voter"} {
				if !strings.Contains(out, want) {
					t.Errorf("the host's output lacks %q:\n%s", want, out)
				}
			}
			noSecrets(t, "the host's output", out, []string{c.users.Root.Password})
			if n := len(c.members(t)); n != 4 {
				t.Errorf("%d members; want 4", n)
			}

			// The host loses its data dir and state: its old member holds
			// its peer URL and no longer answers.
			var old uint64
			for _, m := range c.members(t) {
				if m.Name == h.Name {
					old = m.ID
				}
			}
			p.Stop()
			testenv.Must(t, os.RemoveAll(h.DataDir()), "remove the data dir")
			testenv.Must(t, os.RemoveAll(h.StateDir()), "remove the state dir")
			code, out := runAgent(t, testenv.AgentArgs(h, discovery, append(agentFlags, "--timeout", "30s")...)...)
			if code != exitConflict || !strings.Contains(out, "etcdctl member remove") {
				t.Errorf("without --replace: exit %d, want %d naming etcdctl member remove:\n%s", code, exitConflict, out)
			}
			p = testenv.StartHostEtcdArgs(t, agentBin, bin, h, etcdFlags, testenv.AgentArgs(h, discovery, append(agentFlags, "--replace")...))
			waitFor(t, 90*time.Second, "the replaced host to be a voter again, as a new member", func() bool {
				for _, m := range c.members(t) {
					if m.Name == h.Name && !m.IsLearner && m.ID != old {
						return true
					}
				}
				return false
			})
			if out := p.Output(); !strings.Contains(out, "removed_id="+agent.FormatID(old)) {
				t.Errorf("the replacing host did not say which member it removed:\n%s", out)
			}
			if n := len(c.members(t)); n != 4 {
				t.Errorf("%d members after the replacement; want 4", n)
			}
		})
	}
}
