package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
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
// fills the documented defaults. Errors about a setting name its field
// (FieldError), which cmd shows as the flag that sets it.
type Config struct {
	Name string // member name

	// Where the cluster comes from: one of a v2 token (Discovery), a v3
	// token (DiscoveryToken in the etcd at DiscoveryEndpoints), or SRV
	// records (DiscoverySRV).
	Discovery          string   // v2 discovery URL (token directory)
	DiscoveryToken     string   // v3 discovery token, as etcd's --discovery-token
	DiscoveryEndpoints []string // client URLs of the etcd holding v3 tokens
	// DiscoveryAuth is how the agent authenticates to the registry.
	DiscoveryAuth Credentials

	// SRV discovery, instead of a token: the cluster is what the SRV records
	// of DiscoverySRV say once they show Size members.
	DiscoverySRV string
	Size         int
	DNSResolvers []string // servers for SRV lookups; empty means /etc/resolv.conf
	ClusterToken string   // ETCD_INITIAL_CLUSTER_TOKEN in SRV mode (etcd's default: etcd-cluster)

	// Output is what the env file tells etcd: "static", the member list
	// (ETCD_INITIAL_CLUSTER, every etcd version); or, for an etcd that
	// runs its own discovery once the agent saw the token fill,
	// "discovery" (v2 token, ETCD_DISCOVERY: etcd 3.4 to 3.6),
	// "discovery-token" (v3 token, ETCD_DISCOVERY_TOKEN: etcd 3.6 and
	// later) or "discovery-srv" (SRV records, ETCD_DISCOVERY_SRV).
	Output string

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
	// JoinAs says how a host joins a running cluster (OnFull join, a late
	// host in SRV mode): as a learner that promote makes a voter, or as a
	// voter at once.
	JoinAs JoinAs
	// Replace lets a joining host remove a member that holds its name or
	// peer URL (it lost its data dir), if that member does not answer.
	Replace bool
	// PeerWait bounds how long a member waits for the lead member (lowest
	// peer URL) to answer on its peer port before its etcd may start; 0
	// disables the ordered start.
	PeerWait time.Duration
	// EtcdVersion is the local etcd's version (e.g. "3.4.23"), which
	// decides whether an Output other than static, or OnFull proxy, can
	// work; empty when unknown (and then only static and no proxy are
	// accepted).
	EtcdVersion string

	// ClusterAuth is how the agent authenticates to a running cluster's
	// client URLs (join, the lock); PeerTLS the TLS files for its peer
	// URLs (the member-list probe, the ordered start).
	ClusterAuth Credentials
	PeerTLS     Credentials

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

var dnsLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// dnsName lower-cases a domain name and makes it fully qualified.
func dnsName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// checkDomain accepts a DNS name of letter-digit-hyphen labels.
func checkDomain(field, s string) error {
	d := strings.TrimSuffix(strings.TrimSpace(s), ".")
	if d == "" || len(d) > 253 {
		return fieldErr(field, "%q is not a DNS name", s)
	}
	for l := range strings.SplitSeq(d, ".") {
		if !dnsLabelRE.MatchString(l) {
			return fieldErr(field, "%q is not a DNS name: label %q; use letters, digits and inner '-' (at most 63 per label)", s, l)
		}
	}
	return nil
}

// checkServer accepts host:port with an explicit port.
func checkServer(field, s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fieldErr(field, "%q: give the server as HOST:PORT, for example 10.0.0.53:53", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fieldErr(field, "%q: port %q is not from 1 to 65535", s, port)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if checkDomain(field, host) != nil {
			return fieldErr(field, "%q: %q is neither an IP address nor a host name", s, host)
		}
	}
	return nil
}

// validate checks the DNS settings for a member named name and fills
// Domain from Zone.
func (d *DNSConfig) validate(name string) []error {
	if !d.Enabled() {
		return nil
	}
	var errs []error
	if err := checkServer("DNS.Server", d.Server); err != nil {
		errs = append(errs, err)
	}
	if d.Zone == "" {
		errs = append(errs, fieldErr("DNS.Zone", "required when publishing records"))
	} else if err := checkDomain("DNS.Zone", d.Zone); err != nil {
		errs = append(errs, err)
	}
	if d.Domain == "" {
		d.Domain = d.Zone
	} else if err := checkDomain("DNS.Domain", d.Domain); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		d.Zone, d.Domain = dnsName(d.Zone), dnsName(d.Domain)
		if d.Zone != "." && d.Domain != d.Zone && !strings.HasSuffix(d.Domain, "."+d.Zone) {
			errs = append(errs, fieldErr("DNS.Domain", "%s is not inside the zone %s", d.Domain, d.Zone))
		}
	}
	if !dnsLabelRE.MatchString(name) {
		errs = append(errs, fieldErr("Name", "%q: when records are published the name becomes the DNS label of the SRV target; use letters, digits and inner '-' only (at most 63)", name))
	}
	if d.SRVName != "" && (!dnsLabelRE.MatchString(d.SRVName) || len(d.SRVName) > 46) {
		errs = append(errs, fieldErr("DNS.SRVName", "%q: use letters, digits and inner '-' only (at most 46)", d.SRVName))
	}
	if d.KeyFile == "" {
		errs = append(errs, fieldErr("DNS.KeyFile", "required when publishing records (a key file as tsig-keygen writes it)"))
	}
	if d.TTL < time.Second || d.TTL > 24*time.Hour {
		errs = append(errs, fieldErr("DNS.TTL", "%s: use 1s to 24h", d.TTL))
	}
	switch d.Check {
	case "error", "warn", "off":
	default:
		errs = append(errs, fieldErr("DNS.Check", "%q: use error, warn or off", d.Check))
	}
	return errs
}

// tokenSegment is one plain path segment: nothing that needs escaping,
// not starting with a dot.
const tokenSegment = `[A-Za-z0-9_~-][A-Za-z0-9._~-]*`

// tokenPathRE is a token path etcd and every reader address identically:
// plain segments, no dot segments, nothing that needs escaping.
var tokenPathRE = regexp.MustCompile(`^(/` + tokenSegment + `)+$`)

// CheckDiscoveryURL accepts a v2 discovery URL that every host and etcd
// itself read alike: http or https, a host, a token path of plain segments
// (letters, digits, '.', '_', '~', '-'; no dot segments, no
// percent-encoding), no trailing slash, query, fragment or user info, and
// written in the canonical form Go prints, since the whole string is hashed
// into member IDs byte for byte.
func CheckDiscoveryURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a URL: %v", Quote(raw), err)
	}
	canonical := *u
	canonical.RawQuery, canonical.Fragment, canonical.ForceQuery, canonical.User = "", "", false, nil
	canonical.Path = path.Clean("/" + strings.TrimSuffix(u.Path, "/"))
	canonical.RawPath = ""
	hint := fmt.Sprintf("; write it as %s on every host", canonical.String())
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s: the scheme must be http or https", Quote(raw))
	case u.Host == "":
		return fmt.Errorf("%s: no host", Quote(raw))
	case u.User != nil:
		return fmt.Errorf("%s: user info in the URL is not supported; use the registry user and password file settings%s", Quote(raw), hint)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fmt.Errorf("%s: remove the query or fragment: etcd hashes the whole URL into member IDs%s", Quote(raw), hint)
	case strings.Trim(u.Path, "/") == "":
		return fmt.Errorf("%s: no token path", Quote(raw))
	case strings.HasSuffix(u.Path, "/"):
		return fmt.Errorf("%s: remove the trailing slash: etcd hashes the whole URL into member IDs, so every host must use the identical URL%s", Quote(raw), hint)
	case u.RawPath != "" || strings.Contains(raw, "%") || !tokenPathRE.MatchString(u.Path) || path.Clean(u.Path) != u.Path:
		return fmt.Errorf("%s: the token path must be plain segments of letters, digits, '.', '_', '~' and '-' without dot segments or percent-encoding, so that every host and the registry name the same keys%s", Quote(raw), hint)
	case u.String() != raw:
		return fmt.Errorf("%s is not in canonical form%s", Quote(raw), hint)
	}
	return nil
}

// Validate checks the parts of the configuration that need no I/O, and
// fills the defaults that follow from other settings.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkName(c.Name))
	add(c.validateSource())
	add(c.validateOutput())
	add(c.DiscoveryAuth.validate("DiscoveryAuth"))
	add(c.ClusterAuth.validate("ClusterAuth"))
	add(c.PeerTLS.validate("PeerTLS"))
	add(checkPort("PeerPort", c.PeerPort))
	add(checkPort("ClientPort", c.ClientPort))
	if c.PeerPort == c.ClientPort {
		add(fieldErr("ClientPort", "%d is the peer port too; etcd needs two ports", c.ClientPort))
	}
	add(checkScheme(c.Scheme))
	for _, f := range []struct{ field, value string }{{"DataDir", c.DataDir}, {"EnvFile", c.EnvFile}, {"StateDir", c.StateDir}} {
		if f.value == "" {
			add(fieldErr(f.field, "required"))
		}
	}
	add(checkTimeout(c.Timeout))
	if c.PeerWait < 0 {
		add(fieldErr("PeerWait", "%s must not be negative", c.PeerWait))
	}
	switch c.OnFull {
	case OnFullExit, OnFullJoin:
	case OnFullProxy:
		switch v, ok := c.etcdVersion(); {
		case !ok:
			add(c.unknownVersion("whether a v2 proxy can run"))
		case !v.before(3, 6):
			add(fieldErr("OnFull", "proxy: etcd %s has no v2 proxy (removed in 3.6); let the host exit or join", c.EtcdVersion))
		}
	default:
		add(fieldErr("OnFull", "%q must be exit, proxy or join", c.OnFull))
	}
	if c.JoinAs != JoinAsLearner && c.JoinAs != JoinAsVoter {
		add(fieldErr("JoinAs", "%q must be learner or voter", c.JoinAs))
	}
	errs = append(errs, c.DNS.validate(c.Name)...)
	return configError(errs)
}

// The checks of this host's identity that every command makes, each a
// FieldError or nil.

func checkName(name string) error {
	if err := ValidateName(name); err != nil {
		return &FieldError{Field: "Name", Err: err}
	}
	return nil
}

func checkScheme(scheme string) error {
	if scheme != "http" && scheme != "https" {
		return fieldErr("Scheme", "%q must be http or https", scheme)
	}
	return nil
}

func checkPort(field string, port int) error {
	if port < 1 || port > 65535 {
		return fieldErr(field, "%d is not a port from 1 to 65535", port)
	}
	return nil
}

func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return fieldErr("Timeout", "%s must be positive", d)
	}
	return nil
}

// validateSource checks where the cluster comes from: exactly one of a v2
// token, a v3 token and SRV records.
func (c *Config) validateSource() error {
	given := 0
	for _, s := range []string{c.Discovery, c.DiscoveryToken, c.DiscoverySRV} {
		if s != "" {
			given++
		}
	}
	switch {
	case given > 1:
		return fieldErr("Discovery", "give one of a v2 discovery URL, a v3 discovery token and an SRV domain, not several")
	case given == 0:
		return fieldErr("Discovery", "required: a discovery URL or a v3 discovery token (make one with 'etcd-discovery-agent token new'), or an SRV domain to form the cluster from")
	case len(c.DiscoveryEndpoints) > 0 && c.DiscoveryToken == "":
		return fieldErr("DiscoveryEndpoints", "go with a v3 discovery token only")
	case c.Discovery != "":
		if err := CheckDiscoveryURL(c.Discovery); err != nil {
			return &FieldError{Field: "Discovery", Err: err}
		}
	case c.DiscoveryToken != "":
		return c.validateV3Token()
	}
	if c.DiscoverySRV != "" {
		return c.validateSRV()
	}
	return nil
}

func (c *Config) validateV3Token() error {
	var errs []error
	if err := CheckDiscoveryToken(c.DiscoveryToken); err != nil {
		errs = append(errs, &FieldError{Field: "DiscoveryToken", Err: err})
	}
	if len(c.DiscoveryEndpoints) == 0 {
		errs = append(errs, fieldErr("DiscoveryEndpoints", "required with a v3 discovery token: the client URLs of the etcd that holds it"))
	}
	for _, ep := range c.DiscoveryEndpoints {
		if err := CheckEndpoint(ep); err != nil {
			errs = append(errs, &FieldError{Field: "DiscoveryEndpoints", Err: err})
		}
	}
	return errors.Join(errs...)
}

// CheckEndpoint accepts an etcd client URL: http or https, a host and a
// port, nothing else.
func CheckEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%s is not an etcd client URL such as https://10.0.0.1:2379", Quote(ep))
	}
	return nil
}

var discoveryTokenRE = regexp.MustCompile(`^` + tokenSegment + `$`)

// CheckDiscoveryToken accepts a v3 discovery token that is one plain path
// segment: etcd joins it into key paths (path.Join cleans "a/" and "a"
// into one key space) while it hashes the raw string into member IDs, so
// two spellings of one token would split the cluster silently.
func CheckDiscoveryToken(token string) error {
	switch {
	case token == "":
		return errors.New("empty token")
	case len(token) > 253 || !discoveryTokenRE.MatchString(token):
		return fmt.Errorf("%s is not one plain path segment: use letters, digits, '.', '_', '~' and '-' only (no slash, no \"..\"), identically on every host", Quote(token))
	}
	return nil
}

func (c *Config) validateSRV() error {
	var errs []error
	if err := checkDomain("DiscoverySRV", c.DiscoverySRV); err != nil {
		errs = append(errs, err)
	}
	if c.Size < 1 {
		errs = append(errs, fieldErr("Size", "%d: give the number of members to wait for", c.Size))
	}
	if c.ClusterToken == "" {
		errs = append(errs, fieldErr("ClusterToken", "must not be empty"))
	}
	for _, s := range c.DNSResolvers {
		if _, err := resolver.ParseServer(s); err != nil {
			errs = append(errs, &FieldError{Field: "DNSResolvers", Err: err})
		}
	}
	if c.DNS.Enabled() && c.DNS.Domain == "" {
		c.DNS.Domain = c.DiscoverySRV
	}
	return errors.Join(errs...)
}

// The outputs: what the env file tells etcd.
const (
	OutputStatic         = "static"
	OutputDiscovery      = "discovery"
	OutputDiscoveryToken = "discovery-token"
	OutputDiscoverySRV   = "discovery-srv"
)

// validateOutput checks that the output fits the source of the cluster
// and the local etcd's version.
func (c *Config) validateOutput() error {
	want := map[string]string{OutputDiscovery: "a v2 discovery URL", OutputDiscoveryToken: "a v3 discovery token", OutputDiscoverySRV: "an SRV domain"}
	has := map[string]bool{OutputDiscovery: c.Discovery != "", OutputDiscoveryToken: c.DiscoveryToken != "", OutputDiscoverySRV: c.DiscoverySRV != ""}
	if c.Output == OutputStatic {
		return nil
	}
	if _, known := want[c.Output]; !known {
		return fieldErr("Output", "%q: use static, discovery (v2 token), discovery-token (v3 token) or discovery-srv (SRV records)", c.Output)
	}
	if !has[c.Output] {
		return fieldErr("Output", "%s goes with %s", c.Output, want[c.Output])
	}
	v, ok := c.etcdVersion()
	if !ok {
		return c.unknownVersion("whether etcd can read output " + c.Output)
	}
	switch {
	case c.Output == OutputDiscovery && !v.before(3, 7):
		return fieldErr("Output", "discovery: etcd %s has no v2 discovery (removed in 3.7) and would ignore ETCD_DISCOVERY and start a one-member cluster; use static", c.EtcdVersion)
	case c.Output == OutputDiscoveryToken && v.before(3, 6):
		return fieldErr("Output", "discovery-token: etcd %s has no v3 discovery (added in 3.6); use static", c.EtcdVersion)
	case c.Output == OutputDiscoveryToken && c.DiscoveryAuth.PasswordFile != "":
		return fieldErr("Output", "discovery-token: etcd would need the registry password in its environment, and the agent writes no secret into the env file; use a client certificate for the registry, or static")
	case c.Output == OutputDiscoverySRV && c.Scheme == "http" && v.before(3, 5):
		return fieldErr("Output", "discovery-srv: etcd %s's own SRV discovery reads only _etcd-server-ssl records, not plain-http ones; use static, or https", c.EtcdVersion)
	}
	return nil
}

// version is an etcd major.minor.
type version struct{ major, minor int }

func (v version) before(major, minor int) bool {
	return v.major < major || v.major == major && v.minor < minor
}

// etcdVersion reads EtcdVersion as etcd --version prints it (3.7.3) or
// as its releases are tagged (v3.7.3).
func (c *Config) etcdVersion() (version, bool) {
	var v version
	_, err := fmt.Sscanf(strings.TrimPrefix(c.EtcdVersion, "v"), "%d.%d", &v.major, &v.minor)
	return v, err == nil
}

// unknownVersion is the error for an EtcdVersion, missing or unreadable,
// that decides what.
func (c *Config) unknownVersion(what string) error {
	if c.EtcdVersion != "" {
		return fieldErr("EtcdVersion", "%s is not an etcd version such as 3.7.3; the version decides %s", Quote(c.EtcdVersion), what)
	}
	return fieldErr("EtcdVersion", "the etcd version decides %s: give it, or the etcd binary this host runs", what)
}

// source names where the cluster comes from, for the state cache.
func (c *Config) source() string {
	switch {
	case c.DiscoverySRV != "":
		return "dns-srv:" + dnsName(c.DiscoverySRV)
	case c.DiscoveryToken != "":
		return "v3-token:" + c.DiscoveryToken
	}
	return c.Discovery
}

// clusterToken is ETCD_INITIAL_CLUSTER_TOKEN: the string the registry
// hashes into member IDs for a token (the v2 discovery URL, the v3 token),
// ClusterToken in SRV mode (as etcd's own --discovery-srv uses
// --initial-cluster-token).
func (c *Config) clusterToken() string {
	switch {
	case c.DiscoverySRV != "":
		return c.ClusterToken
	case c.DiscoveryToken != "":
		return c.DiscoveryToken
	}
	return c.Discovery
}
