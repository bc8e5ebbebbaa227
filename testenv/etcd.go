package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EtcdConfig describes one etcd member for StartEtcd and StartEtcdCluster.
// The zero value is a plain-http member of Debian's etcd on 127.0.0.1 with
// free ports.
type EtcdConfig struct {
	Bin  string     // etcd binary; default EtcdBinary(t)
	Name string     // --name; default "etcd", or "etcd<i>" in a cluster
	Addr netip.Addr // address of the client and peer URLs; default 127.0.0.1
	// ClientPort and PeerPort default to ports free on Addr.
	ClientPort, PeerPort int

	// CA issues the certificates below that are not given, and is the CA
	// the member trusts for client and peer certificates.
	CA *CA
	// ClientTLS serves the client URL over https with ServerCert;
	// ClientCertAuth adds --client-cert-auth and --trusted-ca-file.
	ClientTLS, ClientCertAuth bool
	// PeerTLS serves and dials the peer URLs over https with PeerCert,
	// trusting CA (--peer-trusted-ca-file); PeerCertAuth adds
	// --peer-client-cert-auth.
	PeerTLS, PeerCertAuth bool
	// ServerCert is the client URL's certificate; default one from
	// CA.Server with the IP SAN Addr and the DNS SAN "localhost".
	ServerCert *Cert
	// PeerCert is the peer URL's certificate; default ServerCert.
	PeerCert *Cert
	// AdminCert is the client certificate the helpers present (readiness,
	// Etcdctl); default CA.Client("testenv-admin"), a CN that is no etcd
	// user, so it authorizes nothing by itself once auth is enabled.
	AdminCert *Cert

	EnableV2       bool // --enable-v2 (etcd 3.4 and 3.5 only)
	DisableGateway bool // --enable-grpc-gateway=false

	// InitialCluster and ClusterState are --initial-cluster and
	// --initial-cluster-state; defaults: this member alone (or every member
	// given to StartEtcdCluster) and "new".
	InitialCluster string
	ClusterState   string
	Args           []string // more flags
}

// Etcd is a running etcd member.
type Etcd struct {
	Name      string
	Process   *Process
	Addr      netip.Addr
	ClientURL string // http:// or https://
	PeerURL   string
	// CAFile is the CA a client trusts to reach this member ("" without
	// TLS): ServerCert's issuer.
	CAFile                          string
	ServerCert, PeerCert, AdminCert *Cert // nil where TLS is off
	Config                          EtcdConfig
}

// Credentials are an etcd user's name and password; PasswordFile holds the
// password alone, no newline, mode 0600.
type Credentials struct {
	Name, Password, PasswordFile string
}

// StartEtcd starts one member, a cluster of one unless cfg says otherwise,
// and waits up to 30 s until it reports healthy.
func StartEtcd(t testing.TB, cfg EtcdConfig) *Etcd {
	t.Helper()
	return StartEtcdCluster(t, cfg)[0]
}

// StartEtcdCluster starts one member per config as one new cluster (each
// --initial-cluster lists them all unless set) and waits up to 30 s until
// every member reports healthy. Members need distinct names and URLs: give
// each its own Addr, or leave the ports free.
func StartEtcdCluster(t testing.TB, cfgs ...EtcdConfig) []*Etcd {
	t.Helper()
	SkipIfShort(t)
	ms := make([]*Etcd, len(cfgs))
	var initial []string
	for i, cfg := range cfgs {
		if cfg.Name == "" && len(cfgs) > 1 {
			cfg.Name = fmt.Sprintf("etcd%d", i+1)
		}
		ms[i] = prepareEtcd(t, cfg)
		initial = append(initial, ms[i].Name+"="+ms[i].PeerURL)
	}
	for _, m := range ms {
		if m.Config.InitialCluster == "" {
			m.Config.InitialCluster = strings.Join(initial, ",")
		}
		m.start(t)
	}
	for _, m := range ms {
		m.WaitHealthy(t, 30*time.Second)
	}
	return ms
}

// prepareEtcd fills cfg's defaults, issues its certificates and returns the
// member, not started.
func prepareEtcd(t testing.TB, cfg EtcdConfig) *Etcd {
	t.Helper()
	if cfg.Bin == "" {
		cfg.Bin = EtcdBinary(t)
	}
	if cfg.Name == "" {
		cfg.Name = "etcd"
	}
	if !cfg.Addr.IsValid() {
		cfg.Addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if cfg.ClientPort == 0 {
		cfg.ClientPort = FreePort(t, cfg.Addr.String())
	}
	if cfg.PeerPort == 0 {
		cfg.PeerPort = FreePort(t, cfg.Addr.String())
	}
	if cfg.ClusterState == "" {
		cfg.ClusterState = "new"
	}
	useTLS := cfg.ClientTLS || cfg.PeerTLS
	if useTLS && cfg.CA == nil {
		t.Fatalf("etcd %s: TLS needs a CA", cfg.Name)
	}
	if useTLS {
		if cfg.ServerCert == nil {
			c := cfg.CA.Server(t, cfg.Name, []netip.Addr{cfg.Addr}, "localhost")
			cfg.ServerCert = &c
		}
		if cfg.PeerCert == nil {
			cfg.PeerCert = cfg.ServerCert
		}
		if cfg.AdminCert == nil {
			c := cfg.CA.Client(t, "testenv-admin")
			cfg.AdminCert = &c
		}
	}
	m := &Etcd{Name: cfg.Name, Addr: cfg.Addr, Config: cfg}
	m.ClientURL = urlOf(cfg.ClientTLS, cfg.Addr, cfg.ClientPort)
	m.PeerURL = urlOf(cfg.PeerTLS, cfg.Addr, cfg.PeerPort)
	if cfg.ClientTLS {
		m.ServerCert, m.AdminCert, m.CAFile = cfg.ServerCert, cfg.AdminCert, cfg.ServerCert.CAFile
	}
	if cfg.PeerTLS {
		m.PeerCert = cfg.PeerCert
	}
	return m
}

func urlOf(https bool, a netip.Addr, port int) string {
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	return scheme + netip.AddrPortFrom(a, uint16(port)).String()
}

// args returns the member's etcd command line (without the binary).
func (m *Etcd) args(dataDir string) []string {
	cfg := m.Config
	args := []string{
		"--name", cfg.Name,
		"--data-dir", dataDir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", cfg.InitialCluster,
		"--initial-cluster-state", cfg.ClusterState,
	}
	if cfg.ClientTLS {
		args = append(args, "--cert-file", cfg.ServerCert.CertFile, "--key-file", cfg.ServerCert.KeyFile)
		if cfg.ClientCertAuth {
			args = append(args, "--client-cert-auth", "--trusted-ca-file", cfg.CA.CertFile)
		}
	}
	if cfg.PeerTLS {
		args = append(args, "--peer-cert-file", cfg.PeerCert.CertFile, "--peer-key-file", cfg.PeerCert.KeyFile,
			"--peer-trusted-ca-file", cfg.CA.CertFile)
		if cfg.PeerCertAuth {
			args = append(args, "--peer-client-cert-auth")
		}
	}
	if cfg.EnableV2 {
		args = append(args, "--enable-v2")
	}
	if cfg.DisableGateway {
		args = append(args, "--enable-grpc-gateway=false")
	}
	return append(args, cfg.Args...)
}

func (m *Etcd) start(t testing.TB) {
	t.Helper()
	m.Process = Start(t, m.Name, m.Config.Bin, m.args(filepath.Join(t.TempDir(), m.Name)), nil)
}

// HTTPClient returns the HTTP client the helpers use on the member's client
// URL: it presents AdminCert and accepts a server certificate that chains
// to the member's CA, whatever its names and validity period, so a member
// deliberately given a wrong or expired certificate can still be waited
// for and set up. Tests of what a client sees build their own client.
func (m *Etcd) HTTPClient() (*http.Client, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	admin := m.adminCert()
	if admin == nil {
		return c, nil
	}
	cfg, err := admin.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", m.Name, err)
	}
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no server certificate")
		}
		leaf := cs.PeerCertificates[0]
		at := time.Now()
		if at.Before(leaf.NotBefore) || at.After(leaf.NotAfter) {
			at = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at})
		return err
	}
	c.Transport = &http.Transport{TLSClientConfig: cfg}
	return c, nil
}

// WaitHealthy polls the member's /health (with its client certificate
// under TLS) every 20 ms until it reports healthy, failing the test after d
// or when the process exits.
func (m *Etcd) WaitHealthy(t testing.TB, d time.Duration) {
	t.Helper()
	c, err := m.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, c, m.Process, d, m.ClientURL)
}

// EtcdctlBinary returns the etcdctl binary to test with: $ETCDCTL_BIN, or
// /usr/bin/etcdctl from Debian's etcd-client. It skips the test when there
// is none.
func EtcdctlBinary(t testing.TB) string {
	t.Helper()
	return binary(t, "ETCDCTL_BIN", "/usr/bin/etcdctl", "etcd-client")
}

// Etcdctl runs etcdctl (v3 API) against the member's client URL with a 30 s
// limit, over TLS with AdminCert, as user as when as is not nil, and
// returns its combined output; its error ends with etcdctl's last line.
func (m *Etcd) Etcdctl(t testing.TB, as *Credentials, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Etcdctl(ctx, EtcdctlBinary(t), m.ClientURL, m.adminCert(), as, args...)
}

// adminCert is what the helpers present on the member's client URL:
// AdminCert, trusting the member's CA; nil without client TLS.
func (m *Etcd) adminCert() *Cert {
	if m.AdminCert == nil {
		return nil
	}
	c := *m.AdminCert
	c.CAFile = m.CAFile
	return &c
}

// Etcdctl runs etcdctl (v3 API) with args against endpoint and returns its
// combined output. With cert, it trusts cert.CAFile and presents
// cert.CertFile when set; with as, it authenticates with --user and
// --password.
func Etcdctl(ctx context.Context, bin, endpoint string, cert *Cert, as *Credentials, args ...string) (string, error) {
	all := []string{"--endpoints", endpoint, "--dial-timeout", "3s", "--command-timeout", "10s"}
	if cert != nil {
		all = append(all, "--cacert", cert.CAFile)
		if cert.CertFile != "" {
			all = append(all, "--cert", cert.CertFile, "--key", cert.KeyFile)
		}
	}
	if as != nil {
		all = append(all, "--user", as.Name, "--password", as.Password)
	}
	cmd := exec.CommandContext(ctx, bin, append(all, args...)...)
	cmd.Env = []string{"ETCDCTL_API=3", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("etcdctl %s: %w: %s", strings.Join(args, " "), err, lastLine(string(out)))
	}
	return string(out), nil
}

// lastLine is the last non-empty line of s: etcdctl's "Error: ..." after
// its client's log lines.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// PutV2 writes value at the v2 keys API URL keyURL (a plain set, as a
// misbehaving host or an operator could), failing the test unless etcd
// answers 2xx.
func PutV2(t testing.TB, keyURL, value string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, keyURL, strings.NewReader(url.Values{"value": {value}}.Encode()))
	Must(t, err, "request")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	Must(t, err, "put %s", keyURL)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("put %s: %s", keyURL, resp.Status)
	}
}
