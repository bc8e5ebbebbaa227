package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Each certificate verifies against its own CA for its usage, names and
// validity, and not against another CA; keys are private files.
func TestPKIVerify(t *testing.T) {
	ca, other := NewCA(t, "ca"), NewCA(t, "other")
	ips := []netip.Addr{netip.MustParseAddr("127.1.2.3"), netip.IPv6Loopback()}
	server := ca.Server(t, "member1", ips, "member1.example.test")
	client := ca.Client(t, "agent")
	expired := ca.Client(t, "agent", Expired())
	short := ca.Client(t, "agent", ValidFor(3*time.Minute))
	foreign := other.Client(t, "agent")

	roots := func(c *CA) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(readCert(t, c.CertFile))
		return p
	}
	cases := []struct {
		name   string
		cert   Cert
		opts   x509.VerifyOptions
		wantOK bool
		want   string // error text when not OK
	}{
		{"server by IPv4", server, x509.VerifyOptions{Roots: roots(ca), DNSName: "127.1.2.3", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, true, ""},
		{"server by ::1", server, x509.VerifyOptions{Roots: roots(ca), DNSName: "::1"}, true, ""},
		{"server by DNS name", server, x509.VerifyOptions{Roots: roots(ca), DNSName: "member1.example.test"}, true, ""},
		{"server as peer client", server, x509.VerifyOptions{Roots: roots(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true, ""},
		{"server by another IP", server, x509.VerifyOptions{Roots: roots(ca), DNSName: "127.0.0.1"}, false, "certificate is valid for 127.1.2.3, ::1, not 127.0.0.1"},
		{"client", client, x509.VerifyOptions{Roots: roots(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true, ""},
		{"client as server", client, x509.VerifyOptions{Roots: roots(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, false, "certificate specifies an incompatible key usage"},
		{"expired client", expired, x509.VerifyOptions{Roots: roots(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false, "certificate has expired or is not yet valid"},
		{"short-lived client now", short, x509.VerifyOptions{Roots: roots(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true, ""},
		{"short-lived client in 4 minutes", short, x509.VerifyOptions{Roots: roots(ca), CurrentTime: time.Now().Add(4 * time.Minute), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false, "certificate has expired or is not yet valid"},
		{"other CA's client", foreign, x509.VerifyOptions{Roots: roots(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false, "certificate signed by unknown authority"},
	}
	for _, c := range cases {
		_, err := readCert(t, c.cert.CertFile).Verify(c.opts)
		switch {
		case c.wantOK && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.wantOK && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v; want an error with %q", c.name, err, c.want)
		}
	}

	if got := readCert(t, client.CertFile).Subject.CommonName; got != "agent" {
		t.Errorf("client CN %q; want agent", got)
	}
	if !slices.Equal(readCert(t, server.CertFile).DNSNames, []string{"member1.example.test"}) {
		t.Errorf("server DNS names %v", readCert(t, server.CertFile).DNSNames)
	}
	if client.CAFile != ca.CertFile || foreign.CAFile != other.CertFile {
		t.Errorf("CAFile %s, %s; want the issuing CA's", client.CAFile, foreign.CAFile)
	}
	if got := time.Until(short.NotAfter); got < 2*time.Minute || got > 3*time.Minute {
		t.Errorf("short-lived NotAfter in %s; want about 3 minutes", got)
	}
	for _, c := range []Cert{server, client, expired} {
		st, err := os.Stat(c.KeyFile)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v; want mode 0600", c.KeyFile, err, st.Mode())
		}
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			t.Errorf("%s: %v", c.CertFile, err)
		}
	}
}

// A TLS server that requires client certificates of one CA accepts a
// client whose certificate that CA issued, with ClientTLS, and refuses the
// others in the handshake.
func TestPKIHandshake(t *testing.T) {
	ca, other := NewCA(t, "ca"), NewCA(t, "other")
	server := ca.Server(t, "srv", []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	pair, err := tls.LoadX509KeyPair(server.CertFile, server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, ca.CertFile))
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // the refused handshakes
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	url := "https://" + l.Addr().String() + "/"

	cases := []struct {
		name   string
		client Cert
		want   string // body, or error text
	}{
		{"own CA", ca.Client(t, "alice"), "alice"},
		{"no certificate", Cert{CAFile: ca.CertFile}, "remote error: tls: certificate required"},
		{"expired", ca.Client(t, "alice", Expired()), "remote error: tls: expired certificate"},
		{"trusts another CA", Cert{CAFile: other.CertFile}, "x509: certificate signed by unknown authority"},
	}
	for _, c := range cases {
		code, body, err := fetch(tlsClient(clientTLS(t, c.client)), http.MethodGet, url, "", nil)
		got := body
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, c.want) || (err == nil && code != http.StatusOK) {
			t.Errorf("%s: %d %q; want %q", c.name, code, got, c.want)
		}
	}
	// How a caller tells the two kinds apart: the server's alert is a
	// *net.OpError "remote error", the client's own refusal a
	// *tls.CertificateVerificationError around the x509 error.
	var opErr *net.OpError
	_, _, err = fetch(tlsClient(clientTLS(t, Cert{CAFile: ca.CertFile})), http.MethodGet, url, "", nil)
	if !errors.As(err, &opErr) || opErr.Op != "remote error" {
		t.Errorf("no certificate: %T %v; want a *net.OpError remote error", err, err)
	}
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	_, _, err = fetch(tlsClient(clientTLS(t, Cert{CAFile: other.CertFile})), http.MethodGet, url, "", nil)
	if !errors.As(err, &verr) || !errors.As(err, &unknown) {
		t.Errorf("trusts another CA: %T %v; want a *tls.CertificateVerificationError with an x509.UnknownAuthorityError", err, err)
	}
}
