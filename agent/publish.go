package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/dnsupdate"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// dnsHost is this host's records as the DNS settings describe them.
func dnsHost(d DNSConfig, name, scheme string, adv netip.Addr, peerPort, clientPort int) dnsupdate.Host {
	return dnsupdate.Host{
		Domain: d.Domain, Name: name, Addr: adv, PeerPort: peerPort, ClientPort: clientPort,
		Scheme: scheme, SRVName: d.SRVName, TTL: uint32(d.TTL.Seconds()),
	}
}

func updater(d DNSConfig, log *slog.Logger) (*dnsupdate.Updater, error) {
	key, err := dnsupdate.ReadKeyFile(d.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: --tsig-key-file: %w", ErrConfig, err)
	}
	if exposed, err := dnsupdate.KeyFileExposed(d.KeyFile); err == nil && exposed {
		log.Warn("the TSIG key file can be read by other users; chmod 600 it", "path", d.KeyFile)
	}
	return &dnsupdate.Updater{Server: d.Server, Zone: d.Zone, Key: key}, nil
}

// publish sends this host's records in one update and checks them the way
// etcd's SRV discovery will read them.
func publish(ctx context.Context, d DNSConfig, h dnsupdate.Host, log *slog.Logger) error {
	u, err := updater(d, log)
	if err != nil {
		return err
	}
	if err := u.Publish(ctx, h); err != nil {
		return fmt.Errorf("%w: publish to %s: %w", ErrDNS, d.Server, err)
	}
	log.Info("published DNS records", "server", d.Server, "target", h.Target(), "address", h.Addr.String())
	if d.Check == "off" {
		return nil
	}
	res := &resolver.Resolver{Servers: []string{d.Server}}
	err = checkPublished(ctx, res, h)
	if err != nil && d.Check == "warn" {
		log.Warn("published DNS records do not check out", "err", err)
		return nil
	}
	if err == nil {
		log.Info("published DNS records resolve as etcd will read them", "target", h.Target())
	}
	return err
}

// Withdraw deletes exactly this host's DNS records.
func Withdraw(ctx context.Context, cfg Config, log *slog.Logger) error {
	var errs []error
	if err := ValidateName(cfg.Name); err != nil {
		errs = append(errs, err)
	}
	if !cfg.DNS.Enabled() {
		errs = append(errs, errors.New("--publish-server: required"))
	}
	if cfg.Scheme != "http" && cfg.Scheme != "https" {
		errs = append(errs, fmt.Errorf("--scheme: %q must be http or https", cfg.Scheme))
	}
	errs = append(errs, cfg.DNS.validate(cfg.Name)...)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	adv, _, err := cfg.addresses()
	if err != nil {
		return err
	}
	u, err := updater(cfg.DNS, log)
	if err != nil {
		return err
	}
	h := dnsHost(cfg.DNS, cfg.Name, cfg.Scheme, adv, cfg.PeerPort, cfg.ClientPort)
	if err := u.Withdraw(ctx, h); err != nil {
		return fmt.Errorf("%w: withdraw from %s: %w", ErrDNS, cfg.DNS.Server, err)
	}
	log.Info("withdrew DNS records", "server", cfg.DNS.Server, "target", h.Target())
	return nil
}
