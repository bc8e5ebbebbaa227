package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CA is a test certificate authority: an ECDSA P-256 key and a self-signed
// certificate, written as PEM into a t.TempDir().
type CA struct {
	Name     string
	CertFile string // the CA certificate (PEM): what a peer trusts
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
}

// Cert is a certificate a CA issued: its PEM files, the issuing CA's
// certificate file, and when it stops being valid.
type Cert struct {
	CertFile string
	KeyFile  string // mode 0600
	CAFile   string // the issuing CA's certificate
	NotAfter time.Time
}

// CertSpec is what Issue puts into a certificate.
type CertSpec struct {
	CN  string       // subject common name; etcd's user name for a client certificate
	IPs []netip.Addr // IP SANs
	DNS []string     // DNS SANs
	// Server and Client set the extended key usages serverAuth and
	// clientAuth; etcd's peer certificates need both.
	Server, Client bool
	// NotBefore defaults to an hour ago, NotAfter to a day from now.
	NotBefore, NotAfter time.Time
}

// CertOption changes a CertSpec before Issue signs it.
type CertOption func(*CertSpec)

// Expired makes a certificate that expired an hour ago (valid for the day
// before).
func Expired() CertOption {
	return func(s *CertSpec) {
		s.NotBefore = time.Now().Add(-25 * time.Hour)
		s.NotAfter = time.Now().Add(-time.Hour)
	}
}

// ValidFor makes a certificate valid from a minute ago until d from now.
func ValidFor(d time.Duration) CertOption {
	return func(s *CertSpec) {
		s.NotBefore = time.Now().Add(-time.Minute)
		s.NotAfter = time.Now().Add(d)
	}
}

// NewCA makes a CA whose certificate is valid from a week ago to a week
// from now, so the certificates it issues, expired ones too, fall within.
// Two CAs made by NewCA never trust each other's certificates.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"etcd-discovery-agent tests"}},
		NotBefore:             time.Now().Add(-7 * 24 * time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), fileName(name)+"-ca.crt")
	writePEM(t, certFile, "CERTIFICATE", der, 0o644)
	return &CA{Name: name, CertFile: certFile, cert: cert, key: key}
}

// Server issues a certificate for an etcd member, usable both on its client
// URL and as its peer certificate (serverAuth and clientAuth), for exactly
// the given IP and DNS SANs: pass ::1 as well if a test dials [::1].
func (ca *CA) Server(t testing.TB, name string, ips []netip.Addr, dns ...string) Cert {
	t.Helper()
	return ca.Issue(t, CertSpec{CN: name, IPs: ips, DNS: dns, Server: true, Client: true})
}

// Client issues a client certificate (clientAuth) whose CN is cn: with
// --client-cert-auth and auth enabled, etcd takes the CN as the user name
// of a request that carries no token.
func (ca *CA) Client(t testing.TB, cn string, opts ...CertOption) Cert {
	t.Helper()
	return ca.Issue(t, CertSpec{CN: cn, Client: true}, opts...)
}

// Issue signs a certificate for spec, changed by opts, and writes it and its
// key (mode 0600) into a new t.TempDir().
func (ca *CA) Issue(t testing.TB, spec CertSpec, opts ...CertOption) Cert {
	t.Helper()
	for _, o := range opts {
		o(&spec)
	}
	if spec.NotBefore.IsZero() {
		spec.NotBefore = time.Now().Add(-time.Hour)
	}
	if spec.NotAfter.IsZero() {
		spec.NotAfter = time.Now().Add(24 * time.Hour)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: spec.CN},
		NotBefore:    spec.NotBefore,
		NotAfter:     spec.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     spec.DNS,
	}
	for _, ip := range spec.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	if spec.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issue %q from CA %s: %v", spec.CN, ca.Name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := fileName(spec.CN)
	c := Cert{
		CertFile: filepath.Join(dir, base+".crt"),
		KeyFile:  filepath.Join(dir, base+".key"),
		CAFile:   ca.CertFile,
		NotAfter: spec.NotAfter,
	}
	writePEM(t, c.CertFile, "CERTIFICATE", der, 0o644)
	writePEM(t, c.KeyFile, "PRIVATE KEY", keyDER, 0o600)
	return c
}

// ClientTLS returns a TLS client configuration that trusts c.CAFile and,
// when c has a certificate, presents it.
func (c Cert) ClientTLS() (*tls.Config, error) {
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", c.CAFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte, mode os.FileMode) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

// fileName turns a certificate name into a file name.
func fileName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
	if name == "" || name == "." || name == ".." {
		return "cert"
	}
	return name
}
