package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/dnsupdate"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// Publisher publishes and withdraws one host's DNS records.
type Publisher interface {
	// Probe changes nothing, and fails as Publish would on the server,
	// the zone and the key (not on what the key may change).
	Probe(ctx context.Context, h dnsupdate.Host) error
	Publish(ctx context.Context, h dnsupdate.Host) error
	Withdraw(ctx context.Context, h dnsupdate.Host) error
}

// dnsHost is this host's records as the DNS settings describe them.
func dnsHost(d DNSConfig, name, scheme string, adv netip.Addr, peerPort, clientPort int) dnsupdate.Host {
	return dnsupdate.Host{
		Domain: d.Domain, Name: name, Addr: adv, PeerPort: peerPort, ClientPort: clientPort,
		Scheme: scheme, SRVName: d.SRVName, TTL: uint32(d.TTL.Seconds()),
	}
}

func (b *bootstrap) records() dnsupdate.Host {
	return dnsHost(b.cfg.DNS, b.cfg.Name, b.cfg.Scheme, b.adv, b.cfg.PeerPort, b.cfg.ClientPort)
}

// publish sends this host's records, if any are to be published, and
// checks them the way etcd's SRV discovery will read them. Every failure
// here is ErrDNS, a server that does not answer included.
func (b *bootstrap) publish(ctx context.Context) error {
	if !b.cfg.DNS.Enabled() {
		return nil
	}
	d, h := b.cfg.DNS, b.records()
	if err := b.deps.Publisher.Publish(ctx, h); err != nil {
		return fmt.Errorf("%w: publish to %s: %w", ErrDNS, d.Server, err)
	}
	b.log.Info("published DNS records", "server", d.Server, "target", h.Target(), "address", h.Addr.String())
	if d.Check == "off" {
		return nil
	}
	err := checkPublished(ctx, &resolver.Resolver{Servers: []string{d.Server}}, h)
	switch {
	case err != nil && d.Check == "warn":
		b.log.Warn("published DNS records do not check out", "err", err)
		return nil
	case err != nil:
		return err
	}
	b.log.Info("published DNS records resolve as etcd will read them", "target", h.Target())
	return nil
}

// probe checks, before the first write to the registry, that this host
// will be able to publish: a server that does not answer, a zone it does
// not serve or a key it does not take would otherwise be found only after
// the token filled with this host, whose key the others then count.
func (b *bootstrap) probe(ctx context.Context) error {
	if !b.cfg.DNS.Enabled() {
		return nil
	}
	if err := b.deps.Publisher.Probe(ctx, b.records()); err != nil {
		return fmt.Errorf("%w: before registering, the DNS server %s: %w", ErrDNS, b.cfg.DNS.Server, err)
	}
	return nil
}

// withdraw takes this host's records back after a failure (why).
func (b *bootstrap) withdraw(ctx context.Context, why error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	h := b.records()
	if err := b.deps.Publisher.Withdraw(ctx, h); err != nil {
		b.log.Warn("could not withdraw this host's DNS records", "why", why.Error(), "err", err)
		return
	}
	b.log.Info("withdrew this host's DNS records: the cluster did not form with it", "why", why.Error(), "target", h.Target())
}

// ValidateWithdraw checks the settings the withdraw command needs, the
// address among them.
func (c *Config) ValidateWithdraw() error {
	_, err := c.validateWithdraw()
	return err
}

// validateWithdraw is ValidateWithdraw, returning the advertised address.
func (c *Config) validateWithdraw() (netip.Addr, error) {
	errs := []error{checkName(c.Name)}
	if !c.DNS.Enabled() {
		errs = append(errs, fieldErr("DNS.Server", "required: the server to withdraw the records from"))
	}
	errs = append(errs, checkScheme(c.Scheme))
	errs = append(errs, c.DNS.validate(c.Name)...)
	if err := configError(errs); err != nil {
		return netip.Addr{}, err
	}
	adv, _, err := c.addresses()
	return adv, err
}

// Withdraw deletes exactly this host's DNS records through p: the
// withdraw command.
func Withdraw(ctx context.Context, cfg Config, p Publisher, log *slog.Logger) error {
	adv, err := cfg.validateWithdraw()
	if err != nil {
		return err
	}
	h := dnsHost(cfg.DNS, cfg.Name, cfg.Scheme, adv, cfg.PeerPort, cfg.ClientPort)
	if err := p.Withdraw(ctx, h); err != nil {
		return fmt.Errorf("%w: withdraw from %s: %w", ErrDNS, cfg.DNS.Server, err)
	}
	log.Info("withdrew DNS records", "server", cfg.DNS.Server, "target", h.Target())
	return nil
}
