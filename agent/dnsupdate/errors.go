package dnsupdate

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// UpdateError is an UPDATE that the server did not apply, or whose answer
// did not arrive or could not be trusted. Its message says what the answer
// means and what to fix; it never contains the key's secret.
type UpdateError struct {
	Op      string // "publish" or "withdraw"
	Target  string // the host's SRV target, naming whose records these are
	Server  string // host:port the update went to
	Zone    string // the zone of the update
	KeyName string // the TSIG key the update was signed with

	// Rcode is the answer's response code (dns.RcodeRefused, ...), or -1
	// when no usable answer arrived.
	Rcode int
	// TSIGError is the error field of the answer's TSIG record
	// (dns.RcodeBadSig, dns.RcodeBadKey, dns.RcodeBadTime, ...); 0 if the
	// answer had none. A server that rejects the signature answers NOTAUTH
	// with one of these (RFC 8945 section 5.2).
	TSIGError int
	// Err is the transport error or the failed verification of the
	// answer's signature, if any.
	Err error

	hint string // meaning and remedy
}

// Code names the failure: the rcode, "/" and the TSIG error if there is
// one ("NOTAUTH/BADSIG"), "no answer" or "untrusted answer".
func (e *UpdateError) Code() string {
	switch {
	case e.Rcode < 0:
		return "no answer"
	case e.TSIGError != 0:
		return rcodeName(e.Rcode) + "/" + tsigErrorName(e.TSIGError)
	case e.Rcode == dns.RcodeSuccess:
		return "untrusted answer"
	}
	return rcodeName(e.Rcode)
}

func (e *UpdateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dnsupdate: %s %s via %s (zone %s, key %q): %s", e.Op, e.Target, e.Server, e.Zone, e.KeyName, e.Code())
	if e.Err != nil && e.Rcode < 0 {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.hint != "" {
		b.WriteString(": ")
		b.WriteString(e.hint)
	}
	return b.String()
}

func (e *UpdateError) Unwrap() error { return e.Err }

// Retryable reports whether trying again later may succeed without
// changing anything: no answer arrived, or the server answered SERVFAIL.
// Every other failure needs an operator to change the configuration of the
// server, the key, the zone or the clock.
func (e *UpdateError) Retryable() bool {
	return e.Rcode < 0 || e.Rcode == dns.RcodeServerFailure
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// tsigErrorName names a TSIG error; 16 is BADSIG there, not BADVERS.
func tsigErrorName(code int) string {
	if code == dns.RcodeBadSig {
		return "BADSIG"
	}
	return rcodeName(code)
}

// answerError interprets the answer r (nil if none arrived) to the UPDATE
// req, and err from sending it or verifying r's signature; nil means the
// server applied the update and signed its answer with our key.
func (u *Updater) answerError(op string, h Host, req, r *dns.Msg, err error) error {
	e := &UpdateError{
		Op: op, Target: h.Target(), Server: u.Server, Zone: dns.Fqdn(u.Zone), KeyName: u.Key.Name,
		Rcode: -1, Err: err,
	}
	if r == nil || r.Id != req.Id || !r.Response {
		if err == nil {
			err = errors.New("the answer does not match the update")
			e.Err = err
		}
		e.hint = fmt.Sprintf("check that %s is the zone's primary server and accepts DNS over TCP there", u.Server)
		return e
	}
	e.Rcode = r.Rcode
	t := r.IsTsig()
	if t != nil {
		e.TSIGError = int(t.Error)
	}
	switch {
	case e.TSIGError != 0:
		e.hint = u.tsigHint(t)
	case r.Rcode != dns.RcodeSuccess:
		e.hint = u.rcodeHint(r.Rcode, h, t != nil)
	case t == nil:
		e.hint = "the server answered without a TSIG signature, so the answer cannot be trusted and the update may or may not have been applied; " +
			"check that " + u.Server + " is the zone's primary and that nothing between us rewrites DNS"
	case err != nil:
		e.hint = fmt.Sprintf("the signature of the server's answer did not verify (%v): the answer may be forged, or our clock is off by more than %d s; the update may or may not have been applied", err, fudge)
	default:
		return nil
	}
	return e
}

// tsigHint explains a TSIG error in an answer (RFC 8945 section 5.2).
func (u *Updater) tsigHint(t *dns.TSIG) string {
	alg := normalAlgorithm(u.Key.Algorithm)
	switch int(t.Error) {
	case dns.RcodeBadKey:
		return fmt.Sprintf("the server does not know key %q with algorithm %s, or (Knot) no ACL of the zone lets it update: "+
			"the key's name and algorithm must match a key on the server exactly; "+
			"install this key file's key there (BIND: include it in named.conf; Knot: a key: entry and an acl: with action: update for the zone), "+
			"or use the key file the server's administrator issued", u.Key.Name, alg)
	case dns.RcodeBadSig:
		return fmt.Sprintf("the server knows key %q but our signature did not verify: "+
			"the secret in the key file differs from the server's copy of the key (or the algorithm differs); copy the key file from the server again", u.Key.Name)
	case dns.RcodeBadTime:
		skew := ""
		if server, ok := tsigOtherTime(t); ok {
			d := time.Duration(int64(server)-int64(t.TimeSigned)) * time.Second
			skew = fmt.Sprintf(" (the server's clock is %s ahead of the signing time)", d)
		}
		return fmt.Sprintf("the clocks of the server and this host differ by more than the %d s TSIG fudge%s: synchronise both with NTP", t.Fudge, skew)
	case dns.RcodeBadTrunc:
		return "the server refused our truncated MAC; this client sends full MACs, so something rewrote the message"
	case dns.RcodeBadAlg:
		return fmt.Sprintf("the server does not support algorithm %s: make a key with an algorithm it supports (hmac-sha256)", alg)
	}
	return "the server rejected the TSIG signature"
}

// tsigOtherTime decodes the server's time that a BADTIME answer carries in
// the TSIG Other Data field (RFC 8945 section 5.2.3).
func tsigOtherTime(t *dns.TSIG) (uint64, bool) {
	b, err := hex.DecodeString(t.OtherData)
	if err != nil || len(b) != 6 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// rcodeHint explains an rcode in an answer without a TSIG error (RFC 2136
// section 2.2); signed tells whether the server signed its answer.
func (u *Updater) rcodeHint(rc int, h Host, signed bool) string {
	zone := dns.Fqdn(u.Zone)
	switch rc {
	case dns.RcodeRefused:
		if !signed {
			// PowerDNS answers a signature it rejects this way, where BIND
			// and Knot send NOTAUTH with a TSIG error.
			return fmt.Sprintf("the server refused the update without signing its answer: it did not accept key %q "+
				"(its secret, name or algorithm differs from the server's copy, or the clocks differ by more than %d s), "+
				"or it takes no updates from this address; check the key and the server's log", u.Key.Name, fudge)
		}
		return fmt.Sprintf("the server does not let key %q update these records (%s and %s SRV, %s A/AAAA) in zone %s, "+
			"updates are off, or it is a secondary; grant them: "+
			"BIND: in zone %q, update-policy { grant %q subdomain %s SRV A AAAA; }; "+
			"PowerDNS: dnsupdate=yes, allow-dnsupdate-from with this host's address, and pdnsutil set-meta %s TSIG-ALLOW-DNSUPDATE %s",
			u.Key.Name, h.PeerService(), h.ClientService(), h.Target(), zone,
			strings.TrimSuffix(zone, "."), u.Key.Name, h.domain(), strings.TrimSuffix(zone, "."), u.Key.Name)
	case dns.RcodeNotAuth:
		return fmt.Sprintf("the server is not authoritative for zone %s, or did not accept our signature: "+
			"check the zone name and that %s is the zone's primary server", zone, u.Server)
	case dns.RcodeNotZone:
		return fmt.Sprintf("the server says a name in the update is outside zone %s: "+
			"the SRV domain %s must be in the zone and not in a child zone delegated from it", zone, h.domain())
	case dns.RcodeServerFailure:
		return "the server failed to apply the update (zone not loaded, journal not writable, ...); see its log"
	case dns.RcodeNotImplemented:
		return fmt.Sprintf("the server at %s does not implement dynamic updates (RFC 2136) for this zone", u.Server)
	case dns.RcodeFormatError:
		return "the server could not parse the update"
	case dns.RcodeNameError, dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNXRrset:
		return "the server reported a failed prerequisite, but the update has none"
	}
	return "the server did not apply the update"
}
