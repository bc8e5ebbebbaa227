package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

func runTokenNew(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var endpoints []string
	var size int
	var prefix string
	var creds agent.Credentials
	fs := newFlagSet("token new", "token new --endpoints URL[,URL...] --size N [--prefix /discovery]")
	b := newBinder(fs)
	b.strs(&endpoints, "Endpoints", "endpoints", "client URLs of the etcd cluster (3.4/3.5 with --enable-v2) that holds tokens")
	b.int(&size, "Size", "size", 0, "number of members of the new cluster (required, at least 1)")
	b.str(&prefix, "Prefix", "prefix", "/discovery", "v2 directory under which tokens are made")
	b.credentials(&creds, "DiscoveryAuth", "discovery", "the registry", true, true)
	if code := parseCommand(fs, args, nil, stdout, stderr, env); code >= 0 {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	open := func(discovery string) (agent.TokenCreator, error) { return v2Registry(discovery, creds, log) }
	u, err := agent.NewToken(ctx, endpoints, prefix, size, open, log)
	if err != nil {
		return b.names.fail(stderr, nil, "token new", err)
	}
	fmt.Fprintln(stdout, u)
	return exitOK
}

func runTokenShow(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var creds agent.Credentials
	fs := newFlagSet("token show", "token show URL")
	b := newBinder(fs)
	b.credentials(&creds, "DiscoveryAuth", "discovery", "the registry", true, true)
	if code := parseCommand(fs, args, []string{"URL"}, stdout, stderr, env); code >= 0 {
		return code
	}
	discovery := fs.Arg(0)
	if err := agent.CheckDiscoveryURL(discovery); err != nil {
		return usageError(stderr, "token show", "discovery URL %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	reg, err := v2Registry(discovery, creds, log)
	if err != nil {
		return b.names.fail(stderr, nil, "token show", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := agent.ShowToken(ctx, reg)
	if err != nil {
		return b.names.fail(stderr, nil, "token show", err)
	}
	if bad := printToken(stdout, info); bad > 0 {
		return exitRegistryData
	}
	return exitOK
}

// printToken prints a token's size and its registrations, one line each,
// and returns how many are not valid members. Keys, values and problems
// are registry data: they are escaped and bounded (agent.Quote), so no key
// or value can add a line, move the cursor or flood the terminal.
func printToken(w io.Writer, info *agent.TokenInfo) (bad int) {
	fmt.Fprintf(w, "token: %s\nsize:  %d\nregistered: %d\n", printable(info.Token), info.Size, len(info.Entries))
	for i, e := range info.Entries {
		mark := "member"
		if !e.InCluster {
			mark = "extra (does not count)"
		}
		if e.Member == nil {
			bad++
			mark += ", MALFORMED"
		}
		if e.Problem != "" {
			mark += ": " + printable(e.Problem)
		}
		fmt.Fprintf(w, "%3d  %-18s  %-42s  index=%d  %s\n", i+1, agent.Quote(e.Key), agent.Quote(e.Value), e.Created, mark)
	}
	if bad > 0 {
		fmt.Fprintf(w, "%d malformed registration(s)\n", bad)
	}
	return bad
}

func runWithdraw(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	cfg := agent.Config{}
	fs := newFlagSet("withdraw", "withdraw --publish-server HOST:PORT --publish-zone ZONE --tsig-key-file FILE [flags]")
	b := newBinder(fs)
	b.str(&cfg.Name, "Name", "name", shortHostname(), "member name, the first label of the SRV target (default: the short host name)")
	b.str(&cfg.AdvertiseAddress, "AdvertiseAddress", "advertise-address", agent.DefaultAddressTemplate, "the address that was published: an IP literal or a go-sockaddr template")
	b.int(&cfg.PeerPort, "PeerPort", "peer-port", 2380, "etcd peer port that was published")
	b.int(&cfg.ClientPort, "ClientPort", "client-port", 2379, "etcd client port that was published")
	b.str(&cfg.Scheme, "Scheme", "scheme", "http", "http or https (https means the -ssl services)")
	b.dns(&cfg.DNS)
	cfg.DNS.Check = "off"
	if code := parseCommand(fs, args, nil, stdout, stderr, env); code >= 0 {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := cfg.ValidateWithdraw(); err != nil {
		return b.names.fail(stderr, log, "withdraw", err)
	}
	u, err := updater(cfg.DNS, log)
	if err != nil {
		return b.names.fail(stderr, log, "withdraw", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := agent.Withdraw(ctx, cfg, u, log); err != nil {
		return b.names.fail(stderr, log, "withdraw", err)
	}
	return exitOK
}
