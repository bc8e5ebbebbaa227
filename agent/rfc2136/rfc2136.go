// Package rfc2136 publishes and withdraws one etcd member's DNS records with
// TSIG-signed dynamic updates (RFC 2136, RFC 8945): the SRV records through
// which etcd's --discovery-srv and its clients find the cluster, and the
// address record of the SRV target.
//
// A host only ever adds or deletes its own resource records (RFC 2136
// section 2.5.1 "Add To An RRset" and 2.5.4 "Delete An RR From An RRset"),
// never a whole RRset, so hosts publishing at the same instant cannot
// clobber each other, and adding what is already there changes nothing.
package rfc2136

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Key is a TSIG key. Its String and LogValue never show the secret.
type Key struct {
	Name      string // fully qualified
	Algorithm string // fully qualified, e.g. hmac-sha256.
	Secret    string // base64
}

func (k Key) String() string { return fmt.Sprintf("key %s (%s)", k.Name, k.Algorithm) }

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string { return k.String() }

// LogValue keeps slog from printing the secret.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

var (
	keyNameRE   = regexp.MustCompile(`key\s+"?([A-Za-z0-9._-]+)"?\s*\{`)
	algorithmRE = regexp.MustCompile(`algorithm\s+"?([A-Za-z0-9-]+)"?\s*;`)
	secretRE    = regexp.MustCompile(`secret\s+"([^"]*)"\s*;`)
	blockRE     = regexp.MustCompile(`(?s)/\*.*?\*/`)
	lineRE      = regexp.MustCompile(`(?m)(#|//).*$`)
)

var algorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// ReadKeyFile reads a key in the format tsig-keygen writes:
//
//	key "name" {
//		algorithm hmac-sha256;
//		secret "base64";
//	};
//
// Errors name the file and what is wrong, never the secret.
func ReadKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read TSIG key: %w", err)
	}
	text := stripComments(string(b))
	var k Key
	m := keyNameRE.FindStringSubmatch(text)
	if m == nil {
		return Key{}, fmt.Errorf("TSIG key file %s: no `key \"NAME\" {` block; write it with tsig-keygen", path)
	}
	k.Name = dns.Fqdn(strings.ToLower(m[1]))
	m = algorithmRE.FindStringSubmatch(text)
	if m == nil {
		return Key{}, fmt.Errorf("TSIG key file %s: no algorithm", path)
	}
	alg, ok := algorithms[strings.ToLower(m[1])]
	if !ok {
		return Key{}, fmt.Errorf("TSIG key file %s: algorithm %q is not one of hmac-sha1, -sha224, -sha256, -sha384, -sha512", path, m[1])
	}
	k.Algorithm = alg
	m = secretRE.FindStringSubmatch(text)
	if m == nil {
		return Key{}, fmt.Errorf("TSIG key file %s: no secret \"...\"; statement", path)
	}
	if raw, err := base64.StdEncoding.DecodeString(m[1]); err != nil || len(raw) == 0 {
		return Key{}, fmt.Errorf("TSIG key file %s: the secret is not base64", path)
	}
	k.Secret = m[1]
	return k, nil
}

// stripComments removes #, // and /* */ comments of named.conf syntax.
func stripComments(s string) string {
	return lineRE.ReplaceAllString(blockRE.ReplaceAllString(s, " "), " ")
}

// Host is one member's records.
type Host struct {
	Domain     string // SRV domain (etcd's --discovery-srv), fully qualified
	Name       string // member name, the first label of the SRV target
	Addr       netip.Addr
	PeerPort   int
	ClientPort int
	Scheme     string // http or https (https selects the -ssl services)
	SRVName    string // optional service suffix (--discovery-srv-name)
	TTL        uint32
}

// Target is the SRV target: Name.Domain.
func (h Host) Target() string { return dns.Fqdn(h.Name + "." + h.Domain) }

func service(base, scheme, srvName string) string {
	if scheme == "https" {
		base += "-ssl"
	}
	if srvName != "" {
		base += "-" + srvName
	}
	return "_" + base + "._tcp."
}

// RRs are the host's records: the peer SRV, the client SRV and the A or
// AAAA record of the target.
func (h Host) RRs() []dns.RR {
	target := h.Target()
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: h.TTL}
	}
	rrs := []dns.RR{
		&dns.SRV{Hdr: hdr(service("etcd-server", h.Scheme, h.SRVName)+h.Domain, dns.TypeSRV), Port: uint16(h.PeerPort), Target: target},
		&dns.SRV{Hdr: hdr(service("etcd-client", h.Scheme, h.SRVName)+h.Domain, dns.TypeSRV), Port: uint16(h.ClientPort), Target: target},
	}
	if h.Addr.Is4() {
		rrs = append(rrs, &dns.A{Hdr: hdr(target, dns.TypeA), A: net.IP(h.Addr.AsSlice())})
	} else {
		rrs = append(rrs, &dns.AAAA{Hdr: hdr(target, dns.TypeAAAA), AAAA: net.IP(h.Addr.AsSlice())})
	}
	return rrs
}

// Updater sends updates for one zone to one server.
type Updater struct {
	Server  string // host:port
	Zone    string // fully qualified
	Key     Key
	Timeout time.Duration // per exchange; 0 means 5s
}

// PublishMsg is the update that adds the host's records (RFC 2136 2.5.1).
func (u *Updater) PublishMsg(h Host) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(u.Zone))
	m.Insert(h.RRs())
	return m
}

// WithdrawMsg is the update that deletes exactly the host's records (RFC
// 2136 2.5.4: class NONE, TTL 0).
func (u *Updater) WithdrawMsg(h Host) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(u.Zone))
	m.Remove(h.RRs())
	return m
}

// Publish adds the host's records in one update.
func (u *Updater) Publish(ctx context.Context, h Host) error {
	return u.send(ctx, "publish", u.PublishMsg(h))
}

// Withdraw deletes the host's records in one update.
func (u *Updater) Withdraw(ctx context.Context, h Host) error {
	return u.send(ctx, "withdraw", u.WithdrawMsg(h))
}

// Error is an update the server did not accept.
type Error struct {
	Op, Server, Zone, Key string
	Rcode                 int
	TSIGError             int // from the answer's TSIG record, 0 if none
}

func (e *Error) Error() string {
	what := dns.RcodeToString[e.Rcode]
	if e.TSIGError != 0 {
		what += "/" + dns.RcodeToString[e.TSIGError]
	}
	return fmt.Sprintf("%s: %s answered %s for zone %s: %s", e.Op, e.Server, what, e.Zone, e.hint())
}

func (e *Error) hint() string {
	switch {
	case e.TSIGError == dns.RcodeBadKey:
		return fmt.Sprintf("the server does not know TSIG key %s with this algorithm; add the key file's key {} block to its configuration", e.Key)
	case e.TSIGError == dns.RcodeBadSig:
		return fmt.Sprintf("the secret of TSIG key %s differs from the server's; copy the server's key file", e.Key)
	case e.TSIGError == dns.RcodeBadTime:
		return "the clocks of this host and the server differ by more than the TSIG fudge (300 s); synchronise them (NTP)"
	case e.Rcode == dns.RcodeRefused:
		return fmt.Sprintf(`the server does not allow key %s to update these names; with BIND: update-policy { grant %s zonesub ANY; }; in zone %q`, e.Key, strings.TrimSuffix(e.Key, "."), strings.TrimSuffix(e.Zone, "."))
	case e.Rcode == dns.RcodeNotAuth:
		return fmt.Sprintf("the server is not authoritative for %s, or did not accept key %s; check --publish-server, --publish-zone and the key", e.Zone, e.Key)
	case e.Rcode == dns.RcodeNotZone:
		return fmt.Sprintf("a record name is outside zone %s; check --srv-domain and --publish-zone", e.Zone)
	case e.Rcode == dns.RcodeServerFailure:
		return "the server failed to apply the update; see its log"
	}
	return "see the server's log"
}

func (u *Updater) send(ctx context.Context, op string, m *dns.Msg) error {
	timeout := u.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: "tcp", Timeout: timeout, TsigSecret: map[string]string{u.Key.Name: u.Key.Secret}}
	m.SetTsig(u.Key.Name, u.Key.Algorithm, 300, time.Now().Unix())
	resp, _, err := c.ExchangeContext(ctx, m, u.Server)
	if resp != nil && resp.Rcode != dns.RcodeSuccess {
		e := &Error{Op: op, Server: u.Server, Zone: dns.Fqdn(u.Zone), Key: u.Key.Name, Rcode: resp.Rcode}
		if t := resp.IsTsig(); t != nil {
			e.TSIGError = int(t.Error)
		}
		return e
	}
	if err != nil {
		if errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrSecret) {
			return fmt.Errorf("%s: the answer of %s is not signed with key %s: %w", op, u.Server, u.Key.Name, err)
		}
		return fmt.Errorf("%s: send update to %s: %w", op, u.Server, err)
	}
	return nil
}
