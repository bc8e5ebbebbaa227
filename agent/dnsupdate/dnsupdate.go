// Package dnsupdate publishes and withdraws one etcd member's DNS records
// for etcd's SRV discovery (_etcd-server[-ssl][-NAME]._tcp and
// _etcd-client[-ssl][-NAME]._tcp SRV records plus the target's A or AAAA
// record) with RFC 2136 UPDATE messages signed with TSIG (RFC 8945), sent to
// an authoritative server such as BIND, Knot or PowerDNS.
//
// Every member owns only its own records. Publish adds them to the shared
// RRsets and Withdraw deletes exactly them; neither ever replaces or
// deletes a whole RRset, so members that publish at the same moment cannot
// clobber each other. The price: records of an earlier incarnation with
// another address or port stay until they are withdrawn with the old Host.
//
// Updates go over TCP only, as nsupdate -v sends them: answers are never
// truncated, so no UDP-to-TCP fallback is needed, an off-path sender cannot
// slip in a forged datagram, and BIND, Knot and PowerDNS all take updates
// over TCP. Answers must carry a valid TSIG signature made with the same key.
package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// ErrInvalidConfig reports an Updater that cannot send: no server or zone,
// or a host outside the zone.
var ErrInvalidConfig = errors.New("invalid DNS update configuration")

// DefaultTimeout bounds one exchange with the server when
// Updater.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// fudge is the TSIG time window in seconds, the value RFC 8945 section
// 10 recommends and BIND's nsupdate uses.
const fudge = 300

// Updater sends signed RFC 2136 updates for one zone to one server.
type Updater struct {
	Server  string        // the zone's primary server, host:port (e.g. "192.0.2.53:53")
	Zone    string        // the zone (the owner of its SOA record); the final dot is optional
	Key     Key           // TSIG key the server grants the update
	Timeout time.Duration // bounds each exchange; 0 means DefaultTimeout

	// now is the clock TSIG signatures are dated with; nil means
	// time.Now. Tests set it to provoke BADTIME.
	now func() time.Time
}

// Publish adds h's records (Host.RRs) to the zone in one UPDATE message,
// using RFC 2136 section 2.5.1 "Add To An RRset" for each record, with no
// prerequisites. Publishing again is a no-op for the server (RFC 2136
// section 3.4.2.2: an RR identical to an existing one is not added again;
// a TTL that differs from the RRset's is the server's choice: BIND sets
// the RRset's TTL to it, Knot leaves records that exist as they are). Errors
// from the server are *UpdateError.
func (u *Updater) Publish(ctx context.Context, h Host) error {
	return u.send(ctx, "publish", h, publishMsg)
}

// Withdraw deletes exactly h's records (Host.RRs) from the zone in one
// UPDATE message, using RFC 2136 section 2.5.4 "Delete An RR From An
// RRset" (class NONE, TTL 0) for each record; other members' records in the
// same RRsets stay. Withdrawing records that are not there is a no-op.
// Errors from the server are *UpdateError.
func (u *Updater) Withdraw(ctx context.Context, h Host) error {
	return u.send(ctx, "withdraw", h, withdrawMsg)
}

// Probe sends a signed UPDATE that changes nothing: its only content is
// the prerequisite that the zone's SOA RRset exists (RFC 2136 section
// 2.4.1, "RRset exists (value independent)"), which always holds. It
// meets what Publish would meet before any record is looked at: a server
// that does not answer, a zone it does not serve, a key it does not know,
// a wrong secret or algorithm, a clock too far off. It cannot tell whether
// the key may change h's records: servers check that per record. Errors
// from the server are *UpdateError.
func (u *Updater) Probe(ctx context.Context, h Host) error {
	if err := u.check(h); err != nil {
		return fmt.Errorf("dnsupdate: check %s: %w", h.Target(), err)
	}
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(u.Zone))
	m.RRsetUsed([]dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: dns.Fqdn(u.Zone), Rrtype: dns.TypeSOA}}})
	u.sign(m)
	r, err := u.exchange(ctx, m)
	return u.answerError("check", h, m, r, err)
}

// publishMsg builds an UPDATE for zone that adds each of rrs to its RRset:
// RFC 2136 section 2.5.1 "Add To An RRset" (class IN, the record's TTL),
// with no prerequisites (section 2.4) and the zone section (section 2.3)
// naming zone's SOA.
func publishMsg(zone string, rrs []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.Insert(rrs)
	return m
}

// withdrawMsg builds an UPDATE for zone that deletes each of rrs from its
// RRset: RFC 2136 section 2.5.4 "Delete An RR From An RRset" (class NONE,
// TTL 0, the record's RDATA), with no prerequisites.
func withdrawMsg(zone string, rrs []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.Remove(rrs)
	return m
}

// check validates the Updater and h before anything is sent.
func (u *Updater) check(h Host) error {
	if err := h.Validate(); err != nil {
		return err
	}
	if u.Server == "" {
		return fmt.Errorf("%w: no DNS server to send updates to (want host:port, e.g. 192.0.2.53:53)", ErrInvalidConfig)
	}
	if _, _, err := net.SplitHostPort(u.Server); err != nil {
		return fmt.Errorf("%w: DNS server %q: want host:port, e.g. 192.0.2.53:53", ErrInvalidConfig, u.Server)
	}
	if u.Zone == "" {
		return fmt.Errorf("%w: no zone", ErrInvalidConfig)
	}
	if _, ok := dns.IsDomainName(u.Zone); !ok {
		return fmt.Errorf("%w: zone %q is not a domain name", ErrInvalidConfig, u.Zone)
	}
	if err := u.Key.Validate(); err != nil {
		return err
	}
	zone := dns.Fqdn(u.Zone)
	if !dns.IsSubDomain(zone, h.domain()) {
		return fmt.Errorf("%w: SRV domain %s is outside zone %s, so the server would answer NOTZONE: "+
			"publish into the zone that contains the SRV domain, or choose an SRV domain inside %s",
			ErrInvalidConfig, h.domain(), zone, zone)
	}
	return nil
}

// sign appends the TSIG record stub that miekg/dns fills in when it sends
// m (RFC 8945 section 4.2); it must be the last record of m.
func (u *Updater) sign(m *dns.Msg) {
	now := time.Now
	if u.now != nil {
		now = u.now
	}
	m.SetTsig(u.Key.tsigName(), u.Key.tsigAlgorithm(), fudge, now().Unix())
}

func (u *Updater) timeout() time.Duration {
	if u.Timeout > 0 {
		return u.Timeout
	}
	return DefaultTimeout
}

// send builds the UPDATE for h with build, signs it, sends it and
// interprets the answer.
func (u *Updater) send(ctx context.Context, op string, h Host, build func(string, []dns.RR) *dns.Msg) error {
	if err := u.check(h); err != nil {
		return fmt.Errorf("dnsupdate: %s %s: %w", op, h.Target(), err)
	}
	m := build(u.Zone, h.RRs())
	u.sign(m)
	r, err := u.exchange(ctx, m)
	return u.answerError(op, h, m, r, err)
}

// exchange sends m over TCP and reads the answer, verifying its TSIG. It
// returns the answer even when the verification failed (then err is set),
// and a nil answer when none arrived. The exchange ends when the timeout
// passes or ctx ends.
func (u *Updater) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	timeout := u.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{
		Net:        "tcp",
		Timeout:    timeout,
		TsigSecret: map[string]string{u.Key.tsigName(): u.Key.Secret},
	}
	conn, err := c.DialContext(ctx, u.Server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Deadlines follow ctx's deadline, but not its cancellation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return r, err
}
