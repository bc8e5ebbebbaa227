package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/resolver"
)

const lookupHelp = `Prints the cluster that etcd's DNS SRV discovery (--discovery-srv) finds:
the records of _etcd-server-ssl[-NAME]._tcp.DOMAIN (https) and then
_etcd-server[-NAME]._tcp.DOMAIN (http), each in RFC 2782 order, as one
--initial-cluster line NAME=SCHEME://TARGET:PORT,... where TARGET is the
SRV target without its trailing dot (etcd 3.5+; etcd 3.4 ignores the http
records). Records whose target does not resolve are skipped, as etcd skips
them, with a warning on stderr.

Names: etcd names the records that are not itself "0", "1", ... (counted per
scheme). Printed from outside the cluster that would name no one, so by
default each entry is named after its target's first label (infra1 for
infra1.example.test.), or the whole target (then -PORT, then SCHEME-) where
that is ambiguous. --placeholder-names prints etcd's own "0", "1", ...
With --initial-advertise-peer-urls the line is exactly what an etcd member
started with those URLs and --name derives (its own entry named --name,
the others placeholders), or the error that member would stop with.

--client prints instead the client endpoints etcdctl --discovery-srv uses,
one per line, from _etcd-client-ssl[-NAME]._tcp.DOMAIN (https) and
_etcd-client[-NAME]._tcp.DOMAIN (http); as in etcdctl they keep the
target's trailing dot (https://infra1.example.test.:2379).

Queries go over UDP (EDNS0, 1232 bytes), then TCP when truncated, to each
--dns-resolver in turn; /etc/hosts and search domains are not used.
`

const lookupExitCodes = `Exit codes:
  0  printed
  1  DNS failure (the message names the query, the server and the answer's
     rcode), no usable record, or this member not among the records
  2  bad usage or configuration
`

func runLookup(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var (
		domain, srvName, scheme, self string
		servers, advertise            []string
		client, placeholders          bool
		timeout                       time.Duration
	)
	fs := newFlagSet("lookup", "lookup --srv-domain DOMAIN [flags]")
	fs.StringVar(&domain, "srv-domain", "", "DNS domain of the SRV records, as etcd's --discovery-srv (required)")
	fs.StringVar(&srvName, "srv-name", "", "service name suffix, as etcd's --discovery-srv-name: _etcd-server-NAME._tcp.DOMAIN")
	fs.StringSliceVar(&servers, "dns-resolver", nil, "DNS servers to ask in turn, IP or IP:PORT (default: the nameservers of /etc/resolv.conf)")
	fs.StringVar(&scheme, "scheme", "", "only the records of this scheme: https (_etcd-server-ssl) or http (_etcd-server) (default: both, https first)")
	fs.BoolVar(&client, "client", false, "print the client URLs (_etcd-client-ssl, _etcd-client) one per line instead")
	fs.BoolVar(&placeholders, "placeholder-names", false, `name the entries "0", "1", ... per scheme, as etcd names the members that are not itself`)
	fs.StringSliceVar(&advertise, "initial-advertise-peer-urls", nil, "derive the cluster as the etcd member with these peer URLs and --name would")
	fs.StringVar(&self, "name", shortHostname(), "member name, with --initial-advertise-peer-urls")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "bound of the whole lookup (each query: 2s)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: etcd-discovery-agent lookup --srv-domain DOMAIN [flags]\n\n%s\nFlags (each also settable as %sFLAG_NAME):\n%s\n%s",
			lookupHelp, envPrefix, fs.FlagUsages(), lookupExitCodes)
	}
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	usageErr := func(format string, a ...any) int {
		return usageError(stderr, "lookup", format, a...)
	}
	switch {
	case domain == "":
		return usageErr("--srv-domain is required")
	case scheme != "" && scheme != "http" && scheme != "https":
		return usageErr("--scheme %q: use http or https", scheme)
	case client && (placeholders || len(advertise) > 0):
		return usageErr("--client does not go with --placeholder-names or --initial-advertise-peer-urls")
	case len(advertise) > 0 && (placeholders || scheme != ""):
		return usageErr("--initial-advertise-peer-urls derives etcd's own names from both schemes: drop --placeholder-names and --scheme")
	case len(advertise) > 0 && self == "":
		return usageErr("--name is required with --initial-advertise-peer-urls")
	case timeout <= 0:
		return usageErr("--timeout must be positive")
	}
	r, err := lookupResolver(servers)
	if err != nil {
		return usageErr("%v", err)
	}
	var schemes []string
	if scheme != "" {
		schemes = []string{scheme}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	switch {
	case client:
		urls, err := r.ClientURLs(ctx, domain, srvName, schemes...)
		if err != nil {
			fmt.Fprintf(stderr, "etcd-discovery-agent lookup: client URLs of %s: %v\n", domain, err)
			return exitFailure
		}
		for _, u := range urls {
			fmt.Fprintln(stdout, u)
		}
	case len(advertise) > 0:
		cluster, err := r.Cluster(ctx, domain, srvName, advertise, self)
		if err != nil {
			fmt.Fprintf(stderr, "etcd-discovery-agent lookup: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(stdout, cluster)
	default:
		peers, err := r.Peers(ctx, domain, srvName, schemes...)
		var usable []resolver.Peer
		for _, p := range peers {
			if p.Err != nil {
				fmt.Fprintf(stderr, "etcd-discovery-agent lookup: warning: skipped %s, as etcd would: %v\n", p.URL(), p.Err)
				continue
			}
			usable = append(usable, p)
		}
		if len(usable) == 0 {
			if err == nil {
				err = fmt.Errorf("no SRV record of %s resolved", domain)
			}
			fmt.Fprintf(stderr, "etcd-discovery-agent lookup: SRV discovery for %s: %v\n", domain, err)
			return exitFailure
		}
		if err != nil && !resolver.IsNotFound(err) {
			fmt.Fprintf(stderr, "etcd-discovery-agent lookup: warning: %v\n", err)
		}
		fmt.Fprintln(stdout, initialCluster(usable, placeholders))
	}
	return exitOK
}

// lookupResolver asks the given servers (IP or IP:PORT), or the nameservers
// of /etc/resolv.conf.
func lookupResolver(servers []string) (*resolver.Resolver, error) {
	r, err := resolver.New(servers, "/etc/resolv.conf")
	switch {
	case err != nil && len(servers) == 0:
		return nil, fmt.Errorf("--dns-resolver not given and %w", err)
	case err != nil:
		return nil, fmt.Errorf("--dns-resolver %w", err)
	}
	return r, nil
}

// initialCluster renders peers (https before http, as Peers returns them)
// as NAME=URL,... with etcd's placeholder names or names from the targets.
func initialCluster(peers []resolver.Peer, placeholders bool) string {
	var names []string
	if placeholders {
		count := map[string]int{}
		for _, p := range peers {
			names = append(names, strconv.Itoa(count[p.Scheme]))
			count[p.Scheme]++
		}
	} else {
		names = targetNames(peers)
	}
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = names[i] + "=" + p.URL()
	}
	return strings.Join(parts, ",")
}

// targetNames names each peer after its target's first label; peers whose
// name would be shared fall back to the whole target, then target-PORT,
// then SCHEME-target-PORT (unique: one service has no duplicate records).
func targetNames(peers []resolver.Peer) []string {
	levels := []func(p resolver.Peer) string{
		func(p resolver.Peer) string {
			label, _, _ := strings.Cut(strings.TrimSuffix(p.Target, "."), ".")
			return label
		},
		func(p resolver.Peer) string { return strings.TrimSuffix(p.Target, ".") },
		func(p resolver.Peer) string {
			return strings.TrimSuffix(p.Target, ".") + "-" + strconv.Itoa(int(p.Port))
		},
		func(p resolver.Peer) string {
			return p.Scheme + "-" + strings.TrimSuffix(p.Target, ".") + "-" + strconv.Itoa(int(p.Port))
		},
	}
	level := make([]int, len(peers))
	names := make([]string, len(peers))
	for range levels {
		count := map[string]int{}
		for i, p := range peers {
			names[i] = levels[level[i]](p)
			count[names[i]]++
		}
		raised := false
		for i := range peers {
			if count[names[i]] > 1 && level[i] < len(levels)-1 {
				level[i]++
				raised = true
			}
		}
		if !raised {
			break
		}
	}
	return names
}
