// Package agent is the core of etcd-discovery-agent: it finds the host's
// address, takes part in an etcd v2 discovery-token rendezvous exactly as
// etcd's own --discovery client does, and writes the environment file from
// which etcd starts with a static --initial-cluster.
//
// Because the agent, not etcd, runs the rendezvous, the env file carries
// ETCD_INITIAL_CLUSTER_TOKEN = the discovery URL. etcd hashes that token
// into member and cluster IDs the same way v2 discovery hashes the URL, so
// members started by the agent and members running etcd's own --discovery on
// the same token form one cluster, and etcd versions without v2 discovery
// (3.7) can still be bootstrapped from a token.
package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/registry"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

// Errors that decide the outcome of a run; cmd maps them to exit codes.
var (
	// ErrConfig reports unusable configuration.
	ErrConfig = errors.New("configuration")
	// ErrTokenFull reports a token that already holds its size of members
	// without this host.
	ErrTokenFull = errors.New("discovery token is full")
	// ErrConflict reports a name or member ID that another host holds.
	ErrConflict = errors.New("conflict")
	// ErrRegistryData reports a token whose content cannot be trusted: no
	// size, a bad size, or an entry that is not a valid member.
	ErrRegistryData = errors.New("unusable discovery token")
	// ErrTimeout reports that the overall deadline passed while waiting.
	ErrTimeout = errors.New("timed out")
)

// OnFull says what a host does when the token is full without it.
type OnFull string

// The choices for OnFull.
const (
	OnFullExit  OnFull = "exit"
	OnFullProxy OnFull = "proxy"
	OnFullJoin  OnFull = "join" // add this host to the running cluster
)

// Config is everything bootstrap needs. Zero values are not defaults; cmd
// fills the documented defaults.
type Config struct {
	Name      string // member name
	Discovery string // discovery URL (token directory)

	// SRV discovery, instead of a token: the cluster is what the SRV records
	// of DiscoverySRV say once they show Size members.
	DiscoverySRV string
	Size         int
	DNSResolvers []string // servers for SRV lookups; empty means /etc/resolv.conf
	ClusterToken string   // ETCD_INITIAL_CLUSTER_TOKEN in SRV mode (etcd's default: etcd-cluster)
	Output       string   // SRV mode: "static" (ETCD_INITIAL_CLUSTER) or "discovery-srv" (ETCD_DISCOVERY_SRV)

	AdvertiseAddress string // literal IP or go-sockaddr template
	ListenAddress    string // literal IP or template; empty means the advertise address
	PeerPort         int
	ClientPort       int
	Scheme           string // http or https
	ListenLoopback   bool   // also listen for clients on the loopback address

	DataDir  string // etcd's data dir, inspected for an initialised member
	EnvFile  string // where the environment file goes
	StateDir string // where the last rendezvous is cached

	Timeout time.Duration // overall deadline
	OnFull  OnFull
	// PeerWait bounds how long a member waits for the lead member (lowest
	// peer URL) to answer on its peer port before its etcd may start; 0
	// disables the ordered start.
	PeerWait time.Duration
	// EtcdVersion is the local etcd's version (e.g. "3.4.23"), used to refuse
	// --on-full=proxy where etcd has no v2 proxy; empty when unknown.
	EtcdVersion string

	DNS DNSConfig // publishing of SRV records; off when DNS.Server is empty
}

// DNSConfig says where and how a member publishes its DNS records: the SRV
// records of _etcd-server[-ssl][-NAME]._tcp and _etcd-client[-ssl][-NAME]._tcp
// under Domain pointing at NAME.Domain, and that target's A or AAAA record.
type DNSConfig struct {
	Server  string        // authoritative server taking RFC 2136 updates, host:port
	Zone    string        // zone the records are in
	Domain  string        // SRV domain (etcd's --discovery-srv); defaults to Zone
	SRVName string        // service suffix (etcd's --discovery-srv-name)
	KeyFile string        // TSIG key in tsig-keygen format
	TTL     time.Duration // of the published records
	Check   string        // after publishing: "error", "warn" or "off"
}

// Enabled reports whether records are to be published.
func (d DNSConfig) Enabled() bool { return d.Server != "" }

// validate checks the DNS settings for a member named name.
func (d *DNSConfig) validate(name string) []error {
	if !d.Enabled() {
		return nil
	}
	var errs []error
	if d.Zone == "" {
		errs = append(errs, errors.New("--publish-zone: required with --publish-server"))
	}
	if d.Domain == "" {
		d.Domain = d.Zone
	}
	d.Zone, d.Domain = dnsName(d.Zone), dnsName(d.Domain)
	if d.Zone != "." && d.Domain != d.Zone && !strings.HasSuffix(d.Domain, "."+d.Zone) {
		errs = append(errs, fmt.Errorf("--srv-domain %s is not inside --publish-zone %s", d.Domain, d.Zone))
	}
	if !dnsLabelRE.MatchString(name) {
		errs = append(errs, fmt.Errorf("--name %q: with --publish-server the name becomes the DNS label of the SRV target; use letters, digits and inner '-' only (at most 63)", name))
	}
	if d.SRVName != "" && !dnsLabelRE.MatchString(d.SRVName) {
		errs = append(errs, fmt.Errorf("--srv-name %q: use letters, digits and inner '-' only", d.SRVName))
	}
	if d.KeyFile == "" {
		errs = append(errs, errors.New("--tsig-key-file: required with --publish-server (a key file as tsig-keygen writes it)"))
	}
	if d.TTL < time.Second || d.TTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("--dns-ttl %s: use 1s to 24h", d.TTL))
	}
	switch d.Check {
	case "error", "warn", "off":
	default:
		errs = append(errs, fmt.Errorf("--dns-check %q: use error, warn or off", d.Check))
	}
	return errs
}

var dnsLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// dnsName lower-cases a domain name and makes it fully qualified.
func dnsName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// Validate checks the parts of the configuration that need no I/O.
func (c *Config) Validate() error {
	var errs []error
	if err := ValidateName(c.Name); err != nil {
		errs = append(errs, fmt.Errorf("--name: %w", err))
	}
	switch {
	case c.Discovery != "" && c.DiscoverySRV != "":
		errs = append(errs, errors.New("--discovery and --discovery-srv: give one of them"))
	case c.DiscoverySRV != "":
		if c.Size < 1 {
			errs = append(errs, fmt.Errorf("--size %d: with --discovery-srv give the number of members to wait for", c.Size))
		}
		if c.Output != "static" && c.Output != "discovery-srv" {
			errs = append(errs, fmt.Errorf("--output %q: use static or discovery-srv", c.Output))
		}
		if c.ClusterToken == "" {
			errs = append(errs, errors.New("--cluster-token: must not be empty"))
		}
		for _, s := range c.DNSResolvers {
			if _, err := resolver.ParseServer(s); err != nil {
				errs = append(errs, fmt.Errorf("--dns-resolver %w", err))
			}
		}
		if c.DNS.Enabled() && c.DNS.Domain == "" {
			c.DNS.Domain = c.DiscoverySRV
		}
	case c.Discovery == "":
		errs = append(errs, errors.New("--discovery: a discovery URL (make one with 'etcd-discovery-agent token new') or --discovery-srv DOMAIN is required"))
	default:
		if _, err := registry.ParseURL(c.Discovery); err != nil {
			errs = append(errs, fmt.Errorf("--discovery: %w", err))
		}
	}
	for _, p := range []struct {
		flag string
		v    int
	}{{"--peer-port", c.PeerPort}, {"--client-port", c.ClientPort}} {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d is not a port from 1 to 65535", p.flag, p.v))
		}
	}
	if c.PeerPort == c.ClientPort {
		errs = append(errs, fmt.Errorf("--peer-port and --client-port are both %d", c.PeerPort))
	}
	if c.Scheme != "http" && c.Scheme != "https" {
		errs = append(errs, fmt.Errorf("--scheme: %q must be http or https", c.Scheme))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required"))
	}
	if c.EnvFile == "" {
		errs = append(errs, errors.New("--env-file: required"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("--state-dir: required"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %s must be positive", c.Timeout))
	}
	if c.PeerWait < 0 {
		errs = append(errs, fmt.Errorf("--peer-wait: %s must not be negative", c.PeerWait))
	}
	switch c.OnFull {
	case OnFullExit, OnFullJoin:
	case OnFullProxy:
		if major, minor, ok := parseVersion(c.EtcdVersion); ok && (major > 3 || major == 3 && minor >= 6) {
			errs = append(errs, fmt.Errorf("--on-full=proxy: etcd %s has no v2 proxy (removed in 3.6); use --on-full=exit", c.EtcdVersion))
		}
	default:
		errs = append(errs, fmt.Errorf("--on-full: %q must be exit, proxy or join", c.OnFull))
	}
	errs = append(errs, c.DNS.validate(c.Name)...)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

// addresses resolves the advertise and listen addresses.
func (c *Config) addresses() (advertise, listen netip.Addr, err error) {
	advertise, err = ResolveAddress(c.AdvertiseAddress)
	if err != nil {
		return advertise, listen, fmt.Errorf("%w: --advertise-address: %w", ErrConfig, err)
	}
	if !advertise.IsValid() || advertise.IsUnspecified() || !unicast(advertise) {
		return advertise, listen, fmt.Errorf("%w: --advertise-address: %s cannot be reached by peers; give the host's own address", ErrConfig, advertise)
	}
	listen = advertise
	if c.ListenAddress != "" {
		if listen, err = ResolveAddress(c.ListenAddress); err != nil {
			return advertise, listen, fmt.Errorf("%w: --listen-address: %w", ErrConfig, err)
		}
		// The unspecified address (listen on every address) is fine.
		if !unicast(listen) {
			return advertise, listen, fmt.Errorf("%w: --listen-address: %s is not an address of this host; give the host's own address (or 0.0.0.0 or ::)", ErrConfig, listen)
		}
	}
	return advertise, listen, nil
}

// unicast reports whether addr can be one host's address: not multicast
// and not the IPv4 limited broadcast address.
func unicast(addr netip.Addr) bool {
	return !addr.IsMulticast() && addr != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func parseVersion(v string) (major, minor int, ok bool) {
	_, err := fmt.Sscanf(v, "%d.%d", &major, &minor)
	return major, minor, err == nil
}
