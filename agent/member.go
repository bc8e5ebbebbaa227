package agent

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Member is one etcd member as the discovery registry and etcd's
// --initial-cluster describe it: a name and its peer URLs.
type Member struct {
	Name     string
	PeerURLs []string
}

// MemberID computes etcd's member ID: SHA-1 over the peer URLs sorted as
// strings and concatenated without a separator, followed by the cluster
// token; the ID is the first eight bytes of the digest, big-endian. For v2
// discovery the token is the whole discovery URL, byte for byte.
func MemberID(peerURLs []string, token string) uint64 {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	h := sha1.New()
	for _, u := range urls {
		h.Write([]byte(u))
	}
	h.Write([]byte(token))
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// ClusterID computes etcd's cluster ID from the member IDs: SHA-1 over the
// IDs sorted ascending, each as eight big-endian bytes.
func ClusterID(ids []uint64) uint64 {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	b := make([]byte, 0, 8*len(sorted))
	for _, id := range sorted {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// FormatID renders an ID the way etcd prints it: lower-case hex without
// zero padding.
func FormatID(id uint64) string { return strconv.FormatUint(id, 16) }

// RegistryValue renders the value a member stores under its key in a
// discovery token: one name=url pair per peer URL, sorted as strings and
// joined by commas, exactly as etcd's own discovery client writes it.
func (m Member) RegistryValue() string {
	pairs := make([]string, len(m.PeerURLs))
	for i, u := range m.PeerURLs {
		pairs[i] = m.Name + "=" + u
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// ErrInvalidMember reports a member name or URL that is unsafe or malformed.
var ErrInvalidMember = errors.New("invalid member")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateName accepts member names that are safe in --initial-cluster and
// in an environment file: 1 to 128 letters, digits, '.', '_' or '-',
// starting with a letter or digit.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: name %s: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidMember, Quote(name))
	}
	return nil
}

var hostnameRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// ValidateURL accepts the URLs etcd hashes into member IDs:
// scheme://host:port with scheme http or https, host an IP literal (IPv6 in
// brackets) or a DNS name, an explicit port, nothing else, and already in
// the canonical form Go's url.URL.String prints, so that every reader hashes
// the same bytes.
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: URL %s: %s", ErrInvalidMember, Quote(raw), Clip(err.Error()))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: URL %s: scheme must be http or https", ErrInvalidMember, Quote(raw))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Path != "" || u.ForceQuery {
		return fmt.Errorf("%w: URL %s: only scheme://host:port is allowed", ErrInvalidMember, Quote(raw))
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return fmt.Errorf("%w: URL %s: host must carry a port: %s", ErrInvalidMember, Quote(raw), Clip(err.Error()))
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || port != strconv.FormatUint(p, 10) {
		return fmt.Errorf("%w: URL %s: port %s is not a number from 1 to 65535", ErrInvalidMember, Quote(raw), Quote(port))
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" || addr.String() != host {
			return fmt.Errorf("%w: URL %s: IP address must be in canonical form without a zone (%s)", ErrInvalidMember, Quote(raw), addr.WithZone(""))
		}
	} else if !hostnameRE.MatchString(host) || len(host) > 253 {
		return fmt.Errorf("%w: URL %s: host %s is neither an IP address nor a DNS name", ErrInvalidMember, Quote(raw), Quote(host))
	}
	if u.String() != raw {
		return fmt.Errorf("%w: URL %s is not in canonical form (%s)", ErrInvalidMember, Quote(raw), Quote(u.String()))
	}
	return nil
}

// ParseCluster parses a name=url[,name=url...] list, the format of a
// registry value and of --initial-cluster, and validates every name and URL.
// Pairs with the same name are merged into one member; members keep the
// order of their first pair. A URL that appears under two names is refused,
// as etcd refuses it.
func ParseCluster(s string) ([]Member, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty member list", ErrInvalidMember)
	}
	var members []Member
	index := map[string]int{}
	seen := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		name, u, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %s is not name=url", ErrInvalidMember, Quote(pair))
		}
		if err := ValidateName(name); err != nil {
			return nil, err
		}
		if err := ValidateURL(u); err != nil {
			return nil, err
		}
		if other, dup := seen[u]; dup {
			return nil, fmt.Errorf("%w: URL %s is claimed by %q and %q", ErrInvalidMember, u, other, name)
		}
		seen[u] = name
		i, ok := index[name]
		if !ok {
			i = len(members)
			index[name] = i
			members = append(members, Member{Name: name})
		}
		members[i].PeerURLs = append(members[i].PeerURLs, u)
	}
	return members, nil
}

// InitialCluster renders members as etcd's --initial-cluster value.
func InitialCluster(members []Member) string {
	parts := make([]string, 0, len(members))
	for _, m := range members {
		for _, u := range m.PeerURLs {
			parts = append(parts, m.Name+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

// HostURL builds scheme://addr:port, with brackets around IPv6 addresses.
func HostURL(scheme string, addr netip.Addr, port int) string {
	return scheme + "://" + netip.AddrPortFrom(addr, uint16(port)).String()
}
