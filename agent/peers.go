package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ClusterMember is one member of a running cluster.
type ClusterMember struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner"`
}

// started reports whether the member has run: etcd publishes a member's
// name and client URLs when it starts; a member added with member add has
// neither until then.
func (m ClusterMember) started() bool { return len(m.ClientURLs) > 0 }

// check validates what the env file may take from a member: its name (or
// none, unstarted) and its URLs.
func (m ClusterMember) check() error {
	if m.ID == 0 || len(m.PeerURLs) == 0 {
		return fmt.Errorf("member %x without an ID or peer URLs", m.ID)
	}
	if m.Name != "" {
		if err := ValidateName(m.Name); err != nil {
			return fmt.Errorf("member %x: %w", m.ID, err)
		}
	}
	for _, u := range append(slices.Clone(m.PeerURLs), m.ClientURLs...) {
		if err := ValidateURL(u); err != nil {
			return fmt.Errorf("member %x: %w", m.ID, err)
		}
	}
	return nil
}

// errInvalidMembers reports a member list that fails validation.
var errInvalidMembers = errors.New("invalid member list")

// checkMembers validates a member list from a running cluster.
func checkMembers(from string, ms []ClusterMember) error {
	if len(ms) == 0 {
		return fmt.Errorf("%w from %s: empty", errInvalidMembers, from)
	}
	for _, m := range ms {
		if err := m.check(); err != nil {
			return fmt.Errorf("%w from %s: %w", errInvalidMembers, from, err)
		}
	}
	return nil
}

// Peers asks etcd members on their peer URLs. It speaks etcd's peer API
// by hand because no client library does: GET PEER-URL/members is what an
// etcd member itself asks its peers when it starts with a static initial
// cluster; every etcd from 3.4 to 3.7 answers it from the moment it
// listens, before the cluster has a leader, and without client
// credentials (the peer port's TLS aside).
type Peers struct {
	// TLS is for peer URLs with https: the CA that signed the peers'
	// certificates, and a client certificate where peers demand one. nil:
	// the system's trust store.
	TLS *tls.Config
	// Addrs maps peer URL host names (lower case) to the addresses to
	// dial, for names the SRV answers already resolved.
	Addrs map[string]netip.Addr
	// Local, when valid, is the address questions leave from: this host's
	// own, as etcd's peers see each other. etcd checks a peer client
	// certificate's IP addresses against the address it comes from.
	Local netip.Addr
}

// client is an HTTP client for peer URLs, each request bounded by timeout.
func (p Peers) client(timeout time.Duration, tlsConf *tls.Config) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			TLSClientConfig:   tlsConf,
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var dialer net.Dialer
				if host, port, err := net.SplitHostPort(addr); err == nil {
					if ip, ok := p.Addrs[strings.ToLower(host)]; ok {
						addr = net.JoinHostPort(ip.String(), port)
						host = ip.String()
					}
					// Leave from this host's own address, where the peer
					// is of the same family.
					if ip, err := netip.ParseAddr(host); err == nil && p.Local.IsValid() && !p.Local.IsUnspecified() && ip.Is4() == p.Local.Is4() {
						dialer.LocalAddr = &net.TCPAddr{IP: p.Local.AsSlice()}
					}
				}
				return dialer.DialContext(ctx, network, addr)
			},
		},
	}
}

// peerTimeout bounds one question to one peer.
const peerTimeout = 2 * time.Second

// Members asks every peer URL at once for the cluster's member list and
// returns the first valid answer; nil without an error when none answered
// (no member runs; Silence says why). A TLS failure is ErrAccess: the
// peers will not answer until the peer TLS settings are right.
func (p Peers) Members(ctx context.Context, peerURLs []string) ([]ClusterMember, error) {
	ms, _, err := p.members(ctx, peerURLs)
	return ms, err
}

// members is Members that also says why the peers that did not answer
// did not.
func (p Peers) members(ctx context.Context, peerURLs []string) ([]ClusterMember, error, error) {
	type answer struct {
		members []ClusterMember
		err     error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := p.client(peerTimeout, p.TLS)
	answers := make(chan answer, len(peerURLs))
	for _, u := range peerURLs {
		go func() {
			ms, err := p.fetch(ctx, c, u)
			answers <- answer{ms, err}
		}()
	}
	var final error
	var silent []error
	for range peerURLs {
		a := <-answers
		switch {
		case a.err == nil:
			return a.members, nil, nil
		case errors.Is(a.err, errInvalidMembers), errors.Is(a.err, ErrAccess):
			final = a.err
		default:
			silent = append(silent, a.err)
		}
	}
	return nil, errors.Join(silent...), final
}

func (p Peers) fetch(ctx context.Context, c *http.Client, peerURL string) ([]ClusterMember, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peerURL, "/")+"/members", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		if TLSFailure(err) {
			return nil, fmt.Errorf("%w: peer %s: %w", ErrAccess, peerURL, err)
		}
		if nt := NotTLS(ctx, "peer", peerURL, err); nt != nil {
			return nil, nt
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/members: %s", peerURL, Clip(resp.Status))
	}
	var ms []ClusterMember
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ms); err != nil {
		return nil, fmt.Errorf("%w from %s/members: %v", errInvalidMembers, peerURL, err)
	}
	if err := checkMembers(peerURL+"/members", ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// Serves reports whether something answers HTTP on peerURL: only that it
// answers matters, nothing is sent and nothing received is trusted, so the
// server's certificate is not verified (a client certificate from TLS is
// still presented, for peers that demand one).
func (p Peers) Serves(ctx context.Context, peerURL string) bool {
	conf := &tls.Config{InsecureSkipVerify: true}
	if p.TLS != nil {
		conf = p.TLS.Clone()
		conf.InsecureSkipVerify = true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL+"/version", nil)
	if err != nil {
		return false
	}
	resp, err := p.client(250*time.Millisecond, conf).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// TLSFailure reports whether err is a TLS failure that retrying does not
// mend: the server's certificate does not verify, the server refused ours
// (it sent a TLS alert), or the other side does not speak TLS.
func TLSFailure(err error) bool {
	var (
		rec tls.RecordHeaderError
		cv  *tls.CertificateVerificationError
		op  *net.OpError
	)
	return errors.As(err, &rec) || errors.As(err, &cv) || (errors.As(err, &op) && op.Op == "remote error")
}

// SpeaksPlainHTTP reports whether the server at hostport answers plain
// HTTP. A TLS handshake with an etcd port that serves plain HTTP ends in a
// bare EOF (etcd closes the connection), which looks like a server going
// away; asking in plain HTTP tells the two apart, so that an https URL
// for an http port fails at once instead of being retried.
func SpeaksPlainHTTP(ctx context.Context, hostport string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return false
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("GET /version HTTP/1.0\r\n\r\n")); err != nil {
		return false
	}
	b := make([]byte, 5)
	_, err = io.ReadFull(conn, b)
	return err == nil && string(b) == "HTTP/"
}

// notTLSError is the refusal of an https URL whose port speaks plain HTTP.
func notTLSError(what, u string) error {
	return fmt.Errorf("%w: %s answers plain HTTP, not TLS: use an http:// URL, or the port that serves TLS", ErrAccess, what+" "+u)
}

// NotTLS returns ErrAccess when err, from an https URL u, is an EOF and
// the server there speaks plain HTTP; nil otherwise.
func NotTLS(ctx context.Context, what, u string, err error) error {
	pu, perr := url.Parse(u)
	if perr != nil || pu.Scheme != "https" || !errors.Is(err, io.EOF) || !SpeaksPlainHTTP(ctx, pu.Host) {
		return nil
	}
	return notTLSError(what, u)
}
