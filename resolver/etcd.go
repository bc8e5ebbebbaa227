package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrNoSelf is wrapped by Cluster's error when no SRV record resolves to one
// of the member's advertised peer addresses; the message then reads like
// etcd's: cannot find local etcd member "NAME" in SRV records ...
var ErrNoSelf = errors.New("cannot find local etcd member")

// defaultSchemes is etcd's order: https records first, then http.
var defaultSchemes = []string{"https", "http"}

// ServerService returns the SRV service etcd queries for the peers of a
// cluster: "etcd-server-ssl" for https, "etcd-server" for http, followed by
// "-"+srvName when srvName (--discovery-srv-name) is not empty.
func ServerService(scheme, srvName string) string { return service("etcd-server", scheme, srvName) }

// ClientService returns the SRV service etcd's clients query:
// "etcd-client-ssl" for https, "etcd-client" for http, followed by
// "-"+srvName when srvName is not empty.
func ClientService(scheme, srvName string) string { return service("etcd-client", scheme, srvName) }

func service(base, scheme, srvName string) string {
	if scheme == "https" {
		base += "-ssl"
	}
	if srvName != "" {
		base += "-" + srvName
	}
	return base
}

func checkSchemes(schemes []string) ([]string, error) {
	if len(schemes) == 0 {
		return defaultSchemes, nil
	}
	for _, s := range schemes {
		if s != "http" && s != "https" {
			return nil, fmt.Errorf("scheme %q: want http or https", s)
		}
	}
	return schemes, nil
}

// Peer is one SRV record of a cluster's server service, resolved as etcd
// resolves it.
type Peer struct {
	Scheme string // "https" (from _etcd-server-ssl) or "http" (_etcd-server)
	Target string // the SRV target, fully qualified (with the trailing dot)
	Port   uint16
	// Addr is what etcd compares with its advertised peer addresses: the
	// target's first IPv4 address, else its first address (the choice of
	// net.ResolveTCPAddr; answer order here, where Go's resolver may sort
	// several addresses by RFC 6724), with the record's port. It is the
	// zero value when Err is set.
	Addr netip.AddrPort
	// Addrs are all the target's addresses, IPv4 first.
	Addrs []netip.Addr
	// Err says why the target did not resolve; etcd skips such records.
	Err error
}

// URL is the peer URL etcd builds from the record: the SRV target without
// its trailing dot and the port, neither the advertised URL nor the IP
// ("https://infra1.example.test:2380").
func (p Peer) URL() string {
	return p.Scheme + "://" + net.JoinHostPort(strings.TrimSuffix(p.Target, "."), strconv.Itoa(int(p.Port)))
}

// Peers looks up the peer SRV records of domain for each scheme (by default
// https then http, etcd's order: _etcd-server-ssl[-srvName]._tcp.domain,
// then _etcd-server[-srvName]._tcp.domain) and resolves every target: with
// the addresses the SRV answer carries in its additional section, and with
// A and AAAA lookups for targets it carries none of. So against a server
// authoritative for the targets, one query per scheme is enough.
//
// It returns the records of every service that answered, unresolvable ones
// included (with Err set), and the errors of the services that did not
// (joined). Like etcd, treat discovery as failed only when no returned Peer
// resolved.
func (r *Resolver) Peers(ctx context.Context, domain, srvName string, schemes ...string) ([]Peer, error) {
	schemes, err := checkSchemes(schemes)
	if err != nil {
		return nil, err
	}
	var (
		peers []Peer
		errs  []error
		cache = map[string]Peer{} // target → its addresses or error
	)
	for _, scheme := range schemes {
		srvs, extra, err := r.lookupSRV(ctx, ServerService(scheme, srvName), "tcp", domain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range srvs {
			target := strings.ToLower(s.Target)
			resolved, ok := cache[target]
			if !ok {
				resolved.Addrs, ok = extra[target]
				if !ok {
					resolved.Addrs, resolved.Err = r.LookupHost(ctx, s.Target)
				}
				cache[target] = resolved
			}
			p := Peer{Scheme: scheme, Target: s.Target, Port: s.Port, Addrs: resolved.Addrs, Err: resolved.Err}
			if p.Err == nil {
				p.Addr = netip.AddrPortFrom(firstAddr(p.Addrs), s.Port)
			}
			peers = append(peers, p)
		}
	}
	return peers, joinErrors(errs)
}

// firstAddr is the address net.ResolveTCPAddr picks of addrs (not empty):
// the first IPv4 address, else the first address.
func firstAddr(addrs []netip.Addr) netip.Addr {
	for _, a := range addrs {
		if a.Is4() {
			return a
		}
	}
	return addrs[0]
}

// Cluster derives the --initial-cluster that etcd 3.5 and later derive with
// --discovery-srv domain, --discovery-srv-name srvName,
// --initial-advertise-peer-urls advertisePeerURLs and --name selfName
// (etcd's embed.Config.PeerURLsMapAndToken and client/pkg/srv.GetCluster):
//
//   - each advertised peer URL's host:port is resolved (a failure fails the
//     whole lookup);
//   - for https (_etcd-server-ssl[-srvName]._tcp.domain), then http
//     (_etcd-server[-srvName]._tcp.domain), each SRV record in RFC 2782
//     order becomes NAME=SCHEME://TARGET:PORT, with TARGET without its
//     trailing dot; records whose target does not resolve are skipped;
//   - NAME is selfName when the record's resolved address and port equal
//     an advertised one, else a placeholder "0", "1", ... counted per
//     service over the other records (both services start at "0", so with
//     both record sets two hosts can share a name: publish one set only);
//   - a self record whose scheme differs from the advertised URL's is
//     skipped;
//   - entries are joined with ","; a service whose lookup fails is ignored
//     unless no entry is left, and selfName must be among the entries.
//
// etcd 3.4 differs: it throws plain-http results away (http SRV bootstrap
// does not work there). Errors name the lookups that failed; ErrNoSelf's
// lists what each record resolved to.
//
// schemes limits the services asked (etcd asks both); a member that knows
// every member uses its own scheme asks one and saves a query.
func (r *Resolver) Cluster(ctx context.Context, domain, srvName string, advertisePeerURLs []string, selfName string, schemes ...string) (string, error) {
	cluster, _, err := r.ClusterPeers(ctx, domain, srvName, advertisePeerURLs, selfName, schemes...)
	return cluster, err
}

// ClusterPeers is Cluster that also returns the records it derived the
// cluster from, with their addresses, so that a caller can reach the
// members without resolving their names again.
func (r *Resolver) ClusterPeers(ctx context.Context, domain, srvName string, advertisePeerURLs []string, selfName string, schemes ...string) (string, []Peer, error) {
	if len(advertisePeerURLs) == 0 {
		return "", nil, errors.New("no advertised peer URLs")
	}
	self := map[netip.AddrPort]*url.URL{}
	var selfAddrs []string
	for _, s := range advertisePeerURLs {
		u, err := url.Parse(s)
		if err != nil {
			return "", nil, fmt.Errorf("advertised peer URL: %w", err)
		}
		host, port := u.Hostname(), u.Port()
		n, err := strconv.ParseUint(port, 10, 16)
		if host == "" || err != nil {
			return "", nil, fmt.Errorf("advertised peer URL %q: want scheme://host:port", s)
		}
		addrs, err := r.LookupHost(ctx, host)
		if err != nil {
			return "", nil, fmt.Errorf("resolve advertised peer URL %s: %w", s, err)
		}
		ap := netip.AddrPortFrom(firstAddr(addrs), uint16(n))
		self[ap] = u
		selfAddrs = append(selfAddrs, ap.String())
	}

	peers, lookupErr := r.Peers(ctx, domain, srvName, schemes...)
	var (
		parts []string
		names = map[string]bool{}
		seen  []string // every record and what became of it, for ErrNoSelf
	)
	for _, scheme := range defaultSchemes {
		placeholder := 0
		for _, p := range peers {
			if p.Scheme != scheme {
				continue
			}
			if p.Err != nil {
				seen = append(seen, fmt.Sprintf("%s (skipped: %v)", p.URL(), p.Err))
				continue
			}
			name := selfName
			u, isSelf := self[p.Addr]
			if !isSelf {
				name = strconv.Itoa(placeholder)
				placeholder++
			}
			if isSelf && u.Scheme != scheme {
				seen = append(seen, fmt.Sprintf("%s (%s, skipped: scheme differs from advertised %s)", p.URL(), p.Addr, u))
				continue
			}
			seen = append(seen, fmt.Sprintf("%s (%s)", p.URL(), p.Addr))
			parts = append(parts, name+"="+p.URL())
			names[name] = true
		}
	}
	if len(parts) == 0 {
		switch {
		case lookupErr == nil:
			return "", nil, fmt.Errorf("SRV discovery for %s: no usable record: %s", domain, strings.Join(seen, ", "))
		case len(seen) > 0:
			return "", nil, fmt.Errorf("SRV discovery for %s: no usable record: %s; %w", domain, strings.Join(seen, ", "), lookupErr)
		}
		return "", nil, fmt.Errorf("SRV discovery for %s: %w", domain, lookupErr)
	}
	if !names[selfName] {
		return "", nil, fmt.Errorf("%w %q in SRV records of %s: advertised peer URLs resolve to %s; records: %s",
			ErrNoSelf, selfName, strings.TrimSuffix(domain, "."), strings.Join(selfAddrs, ", "), strings.Join(seen, ", "))
	}
	return strings.Join(parts, ","), peers, nil
}

// ClientURLs returns the client endpoints etcdctl --discovery-srv domain
// [--discovery-srv-name srvName] uses: for each scheme (by default https,
// then http) the records of _etcd-client-ssl[-srvName]._tcp.domain and
// _etcd-client[-srvName]._tcp.domain in RFC 2782 order as
// SCHEME://TARGET:PORT. As in etcdctl, TARGET keeps its trailing dot
// ("https://infra1.example.test.:2379"), and the lookup fails only when
// every service's lookup failed.
func (r *Resolver) ClientURLs(ctx context.Context, domain, srvName string, schemes ...string) ([]string, error) {
	schemes, err := checkSchemes(schemes)
	if err != nil {
		return nil, err
	}
	var (
		urls []string
		errs []error
	)
	for _, scheme := range schemes {
		srvs, err := r.LookupSRV(ctx, ClientService(scheme, srvName), "tcp", domain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range srvs {
			u := url.URL{Scheme: scheme, Host: net.JoinHostPort(s.Target, strconv.Itoa(int(s.Port)))}
			urls = append(urls, u.String())
		}
	}
	if len(errs) == len(schemes) {
		return nil, joinErrors(errs)
	}
	return urls, nil
}
