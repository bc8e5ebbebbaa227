package testenv

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// etcdVersion is an etcd the same test runs against.
type etcdVersion struct {
	name string
	bin  func(t *testing.T) string
}

// etcdVersions are Debian's etcd 3.4.23 and 3.7.3 built from the module
// proxy.
func etcdVersions() []etcdVersion {
	return []etcdVersion{
		{"3.4", func(t *testing.T) string { return EtcdBinary(t) }},
		{"3.7", func(t *testing.T) string { return BuildEtcd(t, "v3.7.3") }},
	}
}

// fetch sends a request with a client of its own (no connection reuse) and
// returns the status and the trimmed body, or the error.
func fetch(c *http.Client, method, url, auth string, body io.Reader) (int, string, error) {
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, "", err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func clientTLS(t *testing.T, c Cert) *tls.Config {
	t.Helper()
	cfg, err := c.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A member with client and peer TLS and --client-cert-auth serves a client
// whose certificate its CA issued (also one valid for only 3 minutes) and
// refuses a client without a certificate, with another CA's or with an
// expired one; a client that trusts another CA refuses the member. The
// wanted errors are what a Go client gets: they differ between 3.4 and 3.7.
func TestEtcdClientCertAuth(t *testing.T) {
	SkipIfShort(t)
	for _, v := range etcdVersions() {
		t.Run(v.name, func(t *testing.T) {
			ca, other := NewCA(t, "ca"), NewCA(t, "other")
			m := StartEtcd(t, EtcdConfig{Bin: v.bin(t), CA: ca, ClientTLS: true, ClientCertAuth: true, PeerTLS: true, PeerCertAuth: true})
			valid := ca.Client(t, "alice")
			foreign := other.Client(t, "alice")
			foreignTLS := clientTLS(t, Cert{CertFile: foreign.CertFile, KeyFile: foreign.KeyFile, CAFile: ca.CertFile})
			// A Go client sends a certificate only if its issuer is among
			// the CAs the server asks for; this one sends it anyway.
			forced := foreignTLS.Clone()
			pair := forced.Certificates[0]
			forced.Certificates = nil
			forced.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
			cases := []struct {
				name string
				cfg  *tls.Config
				want map[string]string // version -> error text; none: served
			}{
				{"valid", clientTLS(t, valid), nil},
				{"valid for 3 minutes", clientTLS(t, ca.Client(t, "alice", ValidFor(3*time.Minute))), nil},
				{"no certificate", clientTLS(t, Cert{CAFile: ca.CertFile}), map[string]string{
					"3.4": "remote error: tls: bad certificate",
					"3.7": "remote error: tls: certificate required",
				}},
				{"other CA's certificate", foreignTLS, map[string]string{
					"3.4": "remote error: tls: bad certificate",
					"3.7": "remote error: tls: certificate required",
				}},
				{"other CA's certificate sent anyway", forced, map[string]string{
					"3.4": "remote error: tls: bad certificate",
					"3.7": "remote error: tls: unknown certificate authority",
				}},
				{"expired certificate", clientTLS(t, ca.Client(t, "alice", Expired())), map[string]string{
					"3.4": "remote error: tls: bad certificate",
					"3.7": "remote error: tls: expired certificate",
				}},
				{"client trusts another CA", clientTLS(t, Cert{CertFile: valid.CertFile, KeyFile: valid.KeyFile, CAFile: other.CertFile}), map[string]string{
					"3.4": "tls: failed to verify certificate: x509: certificate signed by unknown authority",
					"3.7": "tls: failed to verify certificate: x509: certificate signed by unknown authority",
				}},
			}
			for _, c := range cases {
				code, body, err := fetch(tlsClient(c.cfg), http.MethodGet, m.ClientURL+"/version", "", nil)
				want := c.want[v.name]
				switch {
				case want == "" && (err != nil || code != http.StatusOK || !strings.Contains(body, `"etcdserver"`)):
					t.Errorf("%s: %d %s %v; want served", c.name, code, body, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: %d %s %v; want an error with %q", c.name, code, body, err, want)
				}
			}
			// gRPC (etcdctl) with a valid certificate.
			if _, err := Etcdctl(context.Background(), EtcdctlBinary(t), m.ClientURL, &valid, nil, "put", "k", "v"); err != nil {
				t.Errorf("etcdctl with a valid certificate: %v", err)
			}
			for _, l := range strings.Split(m.Process.Output(), "\n") {
				if strings.Contains(l, "rejected connection") {
					t.Log("etcd:", l)
				}
			}
		})
	}
}

// A client refuses a member whose certificate has expired, another CA
// issued, or that has no IP SAN for the address dialled (and accepts that
// one by its DNS name).
func TestEtcdServerCertificate(t *testing.T) {
	SkipIfShort(t)
	ca, other := NewCA(t, "ca"), NewCA(t, "other")
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	expired := ca.Issue(t, CertSpec{CN: "etcd", IPs: lo, Server: true, Client: true}, Expired())
	foreign := other.Server(t, "etcd", lo)
	noIP := ca.Server(t, "etcd", nil, "localhost")
	cases := []struct {
		name       string
		cert       Cert
		serverName string
		want       string // "" if served
	}{
		{"expired", expired, "", "tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time"},
		{"other CA", foreign, "", "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"no IP SAN", noIP, "", "tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"},
		{"no IP SAN, by DNS name", noIP, "localhost", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := StartEtcd(t, EtcdConfig{CA: ca, ClientTLS: true, ServerCert: &c.cert})
			cfg := clientTLS(t, Cert{CAFile: ca.CertFile})
			cfg.ServerName = c.serverName
			code, body, err := fetch(tlsClient(cfg), http.MethodGet, m.ClientURL+"/version", "", nil)
			switch {
			case c.want == "" && (err != nil || code != http.StatusOK):
				t.Errorf("%d %s %v; want served", code, body, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%d %s %v; want an error with %q", code, body, err, c.want)
			}
		})
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// gatewayError is the JSON gateway's error body: 3.4 writes error, message
// and code, 3.7 message and code.
type gatewayError struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
}

// With v3 auth enabled on a member with --client-cert-auth: through gRPC
// (etcdctl) a request without credentials is refused, the user's put under
// its prefix served and outside refused, and a client certificate whose CN
// is the user name stands for the user. Through the JSON gateway, any
// client certificate with a CN is refused; with one without, the user
// authenticates and its token gets the same answers.
func TestEtcdAuth(t *testing.T) {
	SkipIfShort(t)
	const (
		denied  = "etcdserver: permission denied"
		badAuth = "etcdserver: authentication failed, invalid user ID or password"
	)
	for _, v := range etcdVersions() {
		t.Run(v.name, func(t *testing.T) {
			bin := v.bin(t)
			ca := NewCA(t, "ca")
			m := StartEtcd(t, EtcdConfig{Bin: bin, CA: ca, ClientTLS: true, ClientCertAuth: true, PeerTLS: true})
			u := EnableAuth(t, m, AuthSpec{})
			cnUser := ca.Client(t, u.User.Name)
			cnUser.CAFile = ca.CertFile
			grpc := []struct {
				name string
				cert *Cert // default m.AdminCert (CN testenv-admin, no user)
				as   *Credentials
				key  string
				want string // "" if served
			}{
				{"no credentials", nil, nil, "/testenv/a", denied},
				{"user in its prefix", nil, &u.User, "/testenv/a", ""},
				{"user in the discovery prefix", nil, &u.User, "/_etcd/registry/tok/_config/size", ""},
				{"user outside its prefix", nil, &u.User, "/other/a", denied},
				{"wrong password", nil, &Credentials{Name: u.User.Name, Password: "wrong"}, "/testenv/a", badAuth},
				{"missing user", nil, &Credentials{Name: "nobody", Password: "x"}, "/testenv/a", badAuth},
				{"root outside the prefix", nil, &u.Root, "/other/a", ""},
				{"CN user in its prefix", &cnUser, nil, "/testenv/cn", ""},
				{"CN user outside its prefix", &cnUser, nil, "/other/cn", denied},
			}
			for _, c := range grpc {
				var out string
				var err error
				if c.cert == nil {
					out, err = m.Etcdctl(t, c.as, "put", c.key, "v")
				} else {
					out, err = Etcdctl(context.Background(), EtcdctlBinary(t), m.ClientURL, c.cert, c.as, "put", c.key, "v")
				}
				switch {
				case c.want == "" && err != nil:
					t.Errorf("gRPC %s: %v; want served", c.name, err)
				case c.want != "" && (err == nil || !strings.Contains(out, "Error: "+c.want)):
					t.Errorf("gRPC %s: %v %s; want %q", c.name, err, out, c.want)
				}
			}

			// The gateway refuses a certificate with a CN once auth is on.
			put := `{"key":"` + b64("/testenv/g") + `","value":"` + b64("v") + `"}`
			admin, err := m.HTTPClient()
			if err != nil {
				t.Fatal(err)
			}
			code, body, err := fetch(admin, http.MethodPost, m.ClientURL+"/v3/kv/put", "", strings.NewReader(put))
			const cnRefused = "CommonName of client sending a request against gateway will be ignored and not used as expected"
			if err != nil || code != http.StatusBadRequest || body != cnRefused {
				t.Errorf("gateway with a CN certificate: %d %s %v; want 400 %q", code, body, err, cnRefused)
			}
			// A certificate without CN passes.
			c := tlsClient(clientTLS(t, ca.Client(t, "")))
			post := func(path, token string, body any) (int, string) {
				b, _ := json.Marshal(body)
				code, rb, err := fetch(c, http.MethodPost, m.ClientURL+path, token, strings.NewReader(string(b)))
				if err != nil {
					t.Fatalf("POST %s: %v", path, err)
				}
				return code, rb
			}
			authenticate := func(name, password string) (int, string) {
				return post("/v3/auth/authenticate", "", map[string]string{"name": name, "password": password})
			}
			putKey := func(token, key string) (int, string) {
				return post("/v3/kv/put", token, map[string]string{"key": b64(key), "value": b64("v")})
			}
			code, body = authenticate(u.User.Name, u.User.Password)
			var tok struct{ Token string }
			if code != http.StatusOK || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
				t.Fatalf("gateway authenticate: %d %s", code, body)
			}
			gw := []struct {
				name string
				do   func() (int, string)
				want int // HTTP status
				err  gatewayError
			}{
				{"authenticate with a wrong password", func() (int, string) { return authenticate(u.User.Name, "wrong") }, 400, gatewayError{badAuth, 3}},
				{"authenticate a missing user", func() (int, string) { return authenticate("nobody", "x") }, 400, gatewayError{badAuth, 3}},
				{"put without token", func() (int, string) { return putKey("", "/testenv/g") }, 403, gatewayError{denied, 7}},
				{"put in the user's prefix", func() (int, string) { return putKey(tok.Token, "/testenv/g") }, 200, gatewayError{}},
				{"put outside the user's prefix", func() (int, string) { return putKey(tok.Token, "/other/g") }, 403, gatewayError{denied, 7}},
				{"put with a bogus token", func() (int, string) { return putKey("bogus", "/testenv/g") }, 401, gatewayError{"etcdserver: invalid auth token", 16}},
			}
			for _, g := range gw {
				code, body := g.do()
				var e gatewayError
				_ = json.Unmarshal([]byte(body), &e)
				if code != g.want || e != g.err {
					t.Errorf("gateway %s: %d %s; want %d %+v", g.name, code, body, g.want, g.err)
				}
			}
			// Without TLS, a request without credentials has no user name.
			plain := StartEtcd(t, EtcdConfig{Bin: bin, Name: "plain"})
			EnableAuth(t, plain, AuthSpec{})
			const noName = "etcdserver: user name is empty"
			if out, err := plain.Etcdctl(t, nil, "put", "/testenv/a", "v"); err == nil || !strings.Contains(out, "Error: "+noName) {
				t.Errorf("gRPC without TLS and credentials: %v %s; want %q", err, out, noName)
			}
			code, body, err = fetch(http.DefaultClient, http.MethodPost, plain.ClientURL+"/v3/kv/put", "", strings.NewReader(put))
			var e gatewayError
			_ = json.Unmarshal([]byte(body), &e)
			if err != nil || code != http.StatusBadRequest || e != (gatewayError{noName, 3}) {
				t.Errorf("gateway without TLS and credentials: %d %s %v; want 400 %q", code, body, err, noName)
			}
		})
	}
}

// With --enable-grpc-gateway=false, the JSON gateway's routes are 404 while
// gRPC, /health and /version are served: on a TLS member with client-cert
// auth and v3 auth, as operators run it.
func TestEtcdGatewayOff(t *testing.T) {
	SkipIfShort(t)
	for _, v := range etcdVersions() {
		t.Run(v.name, func(t *testing.T) {
			ca := NewCA(t, "ca")
			m := StartEtcd(t, EtcdConfig{Bin: v.bin(t), CA: ca, ClientTLS: true, ClientCertAuth: true, PeerTLS: true, PeerCertAuth: true, DisableGateway: true})
			u := EnableAuth(t, m, AuthSpec{})
			c := tlsClient(clientTLS(t, ca.Client(t, "")))
			for _, path := range []string{"/v3/kv/range", "/v3/auth/authenticate", "/v3/cluster/member/list"} {
				code, body, err := fetch(c, http.MethodPost, m.ClientURL+path, "", strings.NewReader("{}"))
				if err != nil || code != http.StatusNotFound {
					t.Errorf("POST %s: %d %s %v; want 404", path, code, body, err)
				}
			}
			for _, path := range []string{"/health", "/version"} {
				if code, body, err := fetch(c, http.MethodGet, m.ClientURL+path, "", nil); err != nil || code != http.StatusOK {
					t.Errorf("GET %s: %d %s %v; want 200", path, code, body, err)
				}
			}
			if _, err := m.Etcdctl(t, &u.User, "put", "/_etcd/registry/tok/_config/size", "3"); err != nil {
				t.Fatalf("gRPC put: %v", err)
			}
			out, err := m.Etcdctl(t, &u.User, "get", "--print-value-only", "/_etcd/registry/tok/_config/size")
			if err != nil || strings.TrimSpace(out) != "3" {
				t.Errorf("gRPC get: %q %v; want 3", out, err)
			}
		})
	}
}

// With v2 auth on a 3.4 --enable-v2 registry (TLS, --client-cert-auth),
// the v2 keys API refuses a request without credentials, with a wrong
// password or outside the user's prefixes, and serves the user's requests
// (basic auth, or a client certificate with the user's CN) in the
// discovery directory, including a recursive read of a token.
func TestEtcdV2Auth(t *testing.T) {
	SkipIfShort(t)
	ca := NewCA(t, "ca")
	m := StartEtcd(t, EtcdConfig{CA: ca, ClientTLS: true, ClientCertAuth: true, EnableV2: true})
	u := EnableV2Auth(t, m, AuthSpec{})
	c := tlsClient(clientTLS(t, ca.Client(t, "testenv-client")))
	basic := func(cr Credentials) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(cr.Name+":"+cr.Password))
	}
	const refused = `{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}`
	keys := m.ClientURL + "/v2/keys"
	cases := []struct {
		name, method, url, auth string
		want                    int
		body                    string // the whole body if not empty
	}{
		{"no credentials", http.MethodPut, keys + "/_etcd/registry/tok/_config/size?value=3", "", 401, refused},
		{"wrong password", http.MethodPut, keys + "/_etcd/registry/tok/_config/size?value=3", basic(Credentials{Name: u.User.Name, Password: "wrong"}), 401, refused},
		{"missing user", http.MethodPut, keys + "/_etcd/registry/tok/_config/size?value=3", basic(Credentials{Name: "nobody", Password: "x"}), 401, refused},
		{"user creates the size", http.MethodPut, keys + "/_etcd/registry/tok/_config/size?prevExist=false&value=3", basic(u.User), 201, ""},
		{"user registers", http.MethodPut, keys + "/_etcd/registry/tok/abc?prevExist=false&value=n1%3Dhttp%3A%2F%2F127.0.0.1%3A2380", basic(u.User), 201, ""},
		{"user lists the token", http.MethodGet, keys + "/_etcd/registry/tok?recursive=true&sorted=true", basic(u.User), 200, ""},
		{"user watches the token", http.MethodGet, keys + "/_etcd/registry/tok?wait=true&recursive=true&waitIndex=1", basic(u.User), 200, ""},
		{"user outside its prefixes", http.MethodPut, keys + "/other?value=1", basic(u.User), 401, refused},
		{"user lists the registry root", http.MethodGet, keys + "/_etcd/registry?recursive=true", basic(u.User), 401, refused},
		{"no credentials reads", http.MethodGet, keys + "/_etcd/registry/tok", "", 401, refused},
		{"root outside the prefixes", http.MethodPut, keys + "/other?value=1", basic(u.Root), 201, ""},
	}
	for _, tc := range cases {
		code, body, err := fetch(c, tc.method, tc.url, tc.auth, nil)
		if err != nil || code != tc.want || (tc.body != "" && body != tc.body) {
			t.Errorf("%s: %d %s %v; want %d %s", tc.name, code, body, err, tc.want, tc.body)
		}
		if tc.name == "user lists the token" && !strings.Contains(body, `"/_etcd/registry/tok/abc"`) {
			t.Errorf("%s: %s; want the registration", tc.name, body)
		}
	}
	// With --client-cert-auth, a certificate whose CN is a v2 user stands
	// for that user when the request has no basic auth.
	cn := tlsClient(clientTLS(t, ca.Client(t, u.User.Name)))
	if code, body, err := fetch(cn, http.MethodGet, keys+"/_etcd/registry/tok", "", nil); err != nil || code != http.StatusOK {
		t.Errorf("CN user reads the token: %d %s %v; want 200", code, body, err)
	}
	if code, body, err := fetch(cn, http.MethodGet, keys+"/other", "", nil); err != nil || code != http.StatusUnauthorized || body != refused {
		t.Errorf("CN user outside its prefixes: %d %s %v; want 401 %s", code, body, err, refused)
	}
	// What etcd's --discovery and the agent ask outside /v2/keys needs no
	// credentials.
	for _, path := range []string{"/v2/members", "/version", "/health"} {
		if code, body, err := fetch(c, http.MethodGet, m.ClientURL+path, "", nil); err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %s %v; want 200", path, code, body, err)
		}
	}
}

// Three members with client and peer TLS and peer client-cert auth on
// their own loopback addresses form one cluster; with v3 auth on, an
// ordinary user may not add a member, and a fourth joins as a learner
// through root and is promoted: on 3.7 through a follower, on 3.4 only
// through the leader.
func TestEtcdClusterLearner(t *testing.T) {
	SkipIfShort(t)
	for _, v := range etcdVersions() {
		t.Run(v.name, func(t *testing.T) {
			bin := v.bin(t)
			ca := NewCA(t, "ca")
			hosts := Hosts(t, "m", 4)
			var cfgs []EtcdConfig
			for _, h := range hosts[:3] {
				cfgs = append(cfgs, EtcdConfig{Bin: bin, Name: h.Name, Addr: h.Addr, ClientPort: 2379, PeerPort: 2380,
					CA: ca, ClientTLS: true, ClientCertAuth: true, PeerTLS: true, PeerCertAuth: true})
			}
			ms := StartEtcdCluster(t, cfgs...)
			u := EnableAuth(t, ms[0], AuthSpec{})
			if _, err := ms[0].Etcdctl(t, &u.User, "put", "/testenv/k", "v"); err != nil {
				t.Fatal(err)
			}
			out, err := ms[2].Etcdctl(t, &u.User, "get", "--print-value-only", "/testenv/k")
			if err != nil || strings.TrimSpace(out) != "v" {
				t.Fatalf("get from another member: %q %v", out, err)
			}
			if _, err := ms[0].Etcdctl(t, &u.User, "member", "add", "x", "--learner", "--peer-urls", "https://127.0.0.9:2380"); err == nil ||
				!strings.Contains(err.Error(), "etcdserver: permission denied") {
				t.Errorf("member add by a user without the root role: %v; want permission denied", err)
			}
			h := hosts[3]
			learner, learnerID := joinAsLearner(t, ms[1], &u.Root, EtcdConfig{Bin: bin, Name: h.Name, Addr: h.Addr, ClientPort: 2379, PeerPort: 2380,
				CA: ca, ClientTLS: true, ClientCertAuth: true, PeerTLS: true, PeerCertAuth: true})
			out, err = ms[0].Etcdctl(t, &u.Root, "member", "list")
			if err != nil || strings.Count(out, "\n") != 4 || !strings.Contains(out, learnerID+", started, "+h.Name+", "+learner.PeerURL+", "+learner.ClientURL+", true") {
				t.Fatalf("member list after the learner joined: %v\n%s", err, out)
			}
			// Through a follower, etcd 3.4 cannot promote with auth on
			// (etcd issue 20757; fixed in 3.5.x and 3.6).
			lead := leader(t, &u.Root, ms...)
			follower := ms[0]
			if follower == lead {
				follower = ms[1]
			}
			if v.name == "3.4" {
				_, err := follower.Etcdctl(t, &u.Root, "member", "promote", learnerID)
				if err == nil || !strings.HasSuffix(err.Error(), "Error: etcdserver: request timed out") {
					t.Errorf("promote through a follower of 3.4: %v; want request timed out", err)
				}
				promoteLearner(t, lead, &u.Root, learner, learnerID)
			} else {
				promoteLearner(t, follower, &u.Root, learner, learnerID)
			}
			out, err = ms[0].Etcdctl(t, &u.Root, "member", "list")
			if err != nil || !strings.Contains(out, learnerID+", started, "+h.Name+", "+learner.PeerURL+", "+learner.ClientURL+", false") {
				t.Fatalf("member list after the promotion: %v\n%s", err, out)
			}
			out, err = learner.Etcdctl(t, &u.User, "get", "--print-value-only", "/testenv/k")
			if err != nil || strings.TrimSpace(out) != "v" {
				t.Errorf("get from the promoted member: %q %v", out, err)
			}
		})
	}
}

// joinAsLearner adds the member cfg describes to via's cluster as a learner
// (etcdctl member add --learner, as as: root when auth is enabled), starts it
// with the --initial-cluster etcd answered and --initial-cluster-state
// existing, and waits up to 30 s until it reports healthy. id is its member
// ID in hex, as etcdctl prints it.
func joinAsLearner(t *testing.T, via *Etcd, as *Credentials, cfg EtcdConfig) (m *Etcd, id string) {
	t.Helper()
	m = prepareEtcd(t, cfg)
	// A member refuses to add one ("etcdserver: unhealthy cluster") until it
	// has been connected to its peers for a few seconds.
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		out, err = via.Etcdctl(t, as, "member", "add", m.Name, "--learner", "--peer-urls", m.PeerURL)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "unhealthy cluster") || time.Now().After(deadline) {
			t.Fatalf("add learner %s: %v", m.Name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Member 5b3e0e0c1e5f8d9a added to cluster ...
	// ETCD_INITIAL_CLUSTER="a=https://...,b=https://..."
	// etcdctl pads the ID to 16 columns with spaces ("%16x"), so an ID
	// with a leading zero digit follows two spaces.
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "Member "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				id = f[0]
			}
		}
		if v, ok := strings.CutPrefix(line, "ETCD_INITIAL_CLUSTER="); ok {
			m.Config.InitialCluster = strings.Trim(v, `"`)
		}
	}
	if id == "" || m.Config.InitialCluster == "" {
		t.Fatalf("add learner %s: cannot read etcdctl's answer:\n%s", m.Name, out)
	}
	m.Config.ClusterState = "existing"
	m.start(t)
	m.WaitHealthy(t, 30*time.Second)
	return m, id
}

// promoteLearner promotes learner, whose member ID is id, to a voting
// member through via, as as, retrying every 200 ms for up to 30 s while etcd answers that the learner
// is not yet in sync with the leader. With auth enabled, etcd 3.4 (and 3.5
// before the fix of etcd issue 20757) promotes only through the leader: a
// follower forwards the request without the user, and the client gets
// "etcdserver: request timed out" after about 7 s; see leader.
func promoteLearner(t *testing.T, via *Etcd, as *Credentials, learner *Etcd, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for try := 1; ; try++ {
		_, err := via.Etcdctl(t, as, "member", "promote", id)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "not in sync") || time.Now().After(deadline) {
			t.Fatalf("promote learner %s through %s (try %d): %v", learner.Name, via.Name, try, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leader returns the member of ms that is the raft leader, asking each
// (etcdctl endpoint status, as as) every 200 ms for up to 10 s until one
// says it is.
func leader(t *testing.T, as *Credentials, ms ...*Etcd) *Etcd {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var errs []error
		for _, m := range ms {
			out, err := m.Etcdctl(t, as, "endpoint", "status", "-w", "json")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var st []struct {
				Status struct {
					Header struct {
						MemberID uint64 `json:"member_id"`
					} `json:"header"`
					Leader uint64 `json:"leader"`
				}
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
				errs = append(errs, fmt.Errorf("%s: endpoint status %q: %v", m.Name, out, err))
				continue
			}
			if st[0].Status.Leader != 0 && st[0].Status.Leader == st[0].Status.Header.MemberID {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader among %d members after 10 s: %v", len(ms), errors.Join(errs...))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
