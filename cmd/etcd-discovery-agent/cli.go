package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// Exit codes, documented in --help and the README.
const (
	exitOK           = 0
	exitFailure      = 1 // anything else: I/O errors, registry refusals, interruption
	exitUsage        = 2 // bad usage or configuration
	exitTokenFull    = 3 // token full and --on-full=exit
	exitTimeout      = 4 // --timeout passed while waiting
	exitConflict     = 5 // name, member ID or peer URL held by another host
	exitRegistryData = 6 // token missing, bad size, or an invalid registration
	exitDNS          = 7 // DNS update refused, or published records do not check out
)

// envPrefix prefixes the environment variable that can set each flag.
const envPrefix = "EDA_"

// version is set by the Makefile with -ldflags -X main.version=...
var version = ""

const usage = `etcd-discovery-agent: bring up etcd clusters by discovery token.

Usage:
  etcd-discovery-agent bootstrap [flags]     register this host and write etcd's env file
  etcd-discovery-agent token new [flags]     create a discovery token, print its URL
  etcd-discovery-agent token show URL        show a token's size and registrations
  etcd-discovery-agent withdraw [flags]      delete this host's DNS records
  etcd-discovery-agent address [flags]       print the address a template selects
  etcd-discovery-agent lookup [flags]        print the cluster DNS SRV records describe
  etcd-discovery-agent version               print the version

Every flag can also be set from the environment: --some-flag as
` + envPrefix + `SOME_FLAG (a flag given on the command line wins).

Exit codes:
  0  done; for bootstrap: a usable env file was written
  1  failure (I/O, registry refused a request, interrupted)
  2  bad usage or configuration
  3  the token is full without this host and --on-full=exit
  4  timed out (--timeout) waiting for the registry, the token, the SRV
     records or the running cluster (to add this host)
  5  conflict: the name, member ID or peer URL is held by another host
  6  the token is missing or holds invalid data (bad size, malformed entry)
  7  DNS: the update was refused, or the published records would mislead etcd

Run 'etcd-discovery-agent COMMAND --help' for a command's flags.
`

type lookupEnv func(string) (string, bool)

func run(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "bootstrap":
		return runBootstrap(ctx, args[1:], stdout, stderr, env)
	case "token":
		if len(args) > 1 && args[1] == "new" {
			return runTokenNew(ctx, args[2:], stdout, stderr, env)
		}
		if len(args) > 1 && args[1] == "show" {
			return runTokenShow(ctx, args[2:], stdout, stderr, env)
		}
		fmt.Fprint(stderr, "usage: etcd-discovery-agent token new|show ...\n")
		return exitUsage
	case "address":
		return runAddress(args[1:], stdout, stderr, env)
	case "withdraw":
		return runWithdraw(ctx, args[1:], stdout, stderr, env)
	case "lookup":
		return runLookup(ctx, args[1:], stdout, stderr, env)
	case "version", "--version":
		fmt.Fprintln(stdout, "etcd-discovery-agent", versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "etcd-discovery-agent: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable. It returns the exit code to use when
// the caller must stop (help or error), or -1 to go on.
func parseFlags(fs *pflag.FlagSet, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		return exitUsage
	}
	var bad []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := env(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				bad = append(bad, fmt.Sprintf("%s=%q: %v", name, v, err))
			}
		}
	})
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "invalid environment: %s\n", strings.Join(bad, "; "))
		return exitUsage
	}
	return -1
}

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newFlagSet(name, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: etcd-discovery-agent %s\n\nFlags (each also settable as %sFLAG_NAME):\n%s\n%s", synopsis, envPrefix, fs.FlagUsages(), exitCodesHelp())
	}
	return fs
}

func exitCodesHelp() string {
	_, after, _ := strings.Cut(usage, "Exit codes:\n")
	codes, _, _ := strings.Cut(after, "\n\n")
	return "Exit codes:\n" + codes + "\n"
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func shortHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

func runBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	cfg := agent.Config{}
	var onFull, logLevel, etcdBinary string
	fs := newFlagSet("bootstrap", "bootstrap [flags]")
	fs.StringVar(&cfg.Name, "name", shortHostname(), "member name (default: the short host name)")
	fs.StringVar(&cfg.Discovery, "discovery", "", "discovery URL of the token, e.g. http://10.0.0.1:2379/v2/keys/discovery/<token> (required)")
	fs.StringVar(&cfg.DiscoverySRV, "discovery-srv", "", "instead of --discovery: form the cluster from the SRV records of this domain, as etcd's --discovery-srv (also with http records on etcd 3.4)")
	fs.IntVar(&cfg.Size, "size", 0, "with --discovery-srv: wait, within --timeout, until the records show this many members")
	fs.StringSliceVar(&cfg.DNSResolvers, "dns-resolver", nil, "with --discovery-srv: DNS servers to ask, IP or IP:PORT (default: /etc/resolv.conf)")
	fs.StringVar(&cfg.ClusterToken, "cluster-token", "etcd-cluster", "with --discovery-srv: ETCD_INITIAL_CLUSTER_TOKEN (etcd's own SRV bootstrap uses --initial-cluster-token, default etcd-cluster)")
	fs.StringVar(&cfg.Output, "output", "static", "with --discovery-srv: static (write ETCD_INITIAL_CLUSTER) or discovery-srv (write ETCD_DISCOVERY_SRV for an etcd that reads the records itself)")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", agent.DefaultAddressTemplate, "address peers and clients reach this host at: an IP literal or a go-sockaddr template that yields exactly one address")
	fs.StringVar(&cfg.ListenAddress, "listen-address", "", "address etcd listens on (IP literal or template; default: the advertise address)")
	fs.IntVar(&cfg.PeerPort, "peer-port", 2380, "etcd peer port")
	fs.IntVar(&cfg.ClientPort, "client-port", 2379, "etcd client port")
	fs.StringVar(&cfg.Scheme, "scheme", "http", "URL scheme of peer and client URLs: http or https")
	fs.BoolVar(&cfg.ListenLoopback, "listen-loopback", false, "also listen for clients on loopback, so a local etcdctl works")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/etcd/default", "etcd's data dir; if it holds a member, the registry is not contacted")
	fs.StringVar(&cfg.EnvFile, "env-file", "/run/etcd-discovery-agent/etcd.env", "environment file to write for etcd's EnvironmentFile=")
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/etcd-discovery-agent", "persistent directory caching the rendezvous result for restarts")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "overall deadline, including the wait for the token to fill")
	fs.StringVar(&onFull, "on-full", "exit", "when the token is full without this host: exit, proxy (an etcd v2 proxy; etcd 3.4/3.5 only), or join (add this host to the token's running cluster)")
	fs.DurationVar(&cfg.PeerWait, "peer-wait", 5*time.Second, "at most this long, wait until the member with the lowest peer URL serves before returning (0 disables)")
	fs.StringVar(&etcdBinary, "etcd-binary", "/usr/bin/etcd", "local etcd binary, asked for its version to check --on-full=proxy")
	addDNSFlags(fs, &cfg.DNS)
	fs.StringVar(&cfg.DNS.Check, "dns-check", "error", "after publishing, check the records as etcd's SRV discovery will: error, warn or off")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bootstrap: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "bootstrap:", err)
		return exitUsage
	}
	cfg.OnFull = agent.OnFull(onFull)
	if cfg.OnFull == agent.OnFullProxy {
		cfg.EtcdVersion = etcdVersion(ctx, etcdBinary)
	}
	res, err := agent.Bootstrap(ctx, cfg, versionString(), log)
	if err != nil {
		return fail(stderr, log, "bootstrap", err)
	}
	log.Info("done", "role", res.Role, "state", res.State, "source", res.Source, "env_file", res.EnvFile)
	return exitOK
}

// addDNSFlags adds the flags that say where this host's DNS records go.
func addDNSFlags(fs *pflag.FlagSet, d *agent.DNSConfig) {
	fs.StringVar(&d.Server, "publish-server", "", "publish this host's SRV and A/AAAA records with RFC 2136 updates to this DNS server, HOST:PORT")
	fs.StringVar(&d.Zone, "publish-zone", "", "DNS zone the records go into (required with --publish-server)")
	fs.StringVar(&d.Domain, "srv-domain", "", "SRV domain, as etcd's --discovery-srv (default: the zone)")
	fs.StringVar(&d.SRVName, "srv-name", "", "SRV service suffix, as etcd's --discovery-srv-name")
	fs.StringVar(&d.KeyFile, "tsig-key-file", "", "TSIG key file as tsig-keygen writes it (required with --publish-server)")
	fs.DurationVar(&d.TTL, "dns-ttl", time.Minute, "TTL of the published records")
}

var etcdVersionRE = regexp.MustCompile(`etcd Version: (\d+\.\d+\.\d+)`)

// etcdVersion asks the local etcd binary for its version; "" if unknown.
func etcdVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	if m := etcdVersionRE.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

// fail logs err once and maps it to its exit code.
func fail(stderr io.Writer, log *slog.Logger, cmd string, err error) int {
	code := exitFailure
	switch {
	case errors.Is(err, agent.ErrConfig), errors.Is(err, agent.ErrAddress):
		code = exitUsage
	case errors.Is(err, agent.ErrTokenFull):
		code = exitTokenFull
	case errors.Is(err, agent.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		code = exitTimeout
	case errors.Is(err, agent.ErrConflict):
		code = exitConflict
	case errors.Is(err, agent.ErrRegistryData):
		code = exitRegistryData
	case errors.Is(err, agent.ErrDNS):
		code = exitDNS
	case errors.Is(err, context.Canceled):
		err = fmt.Errorf("interrupted: %w", err)
	}
	if log != nil {
		log.Error(cmd+" failed", "err", err, "exit_code", code)
	} else {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
	}
	return code
}

func runWithdraw(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	cfg := agent.Config{}
	fs := newFlagSet("withdraw", "withdraw --publish-server HOST:PORT --publish-zone ZONE --tsig-key-file FILE [flags]")
	fs.StringVar(&cfg.Name, "name", shortHostname(), "member name, the first label of the SRV target (default: the short host name)")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", agent.DefaultAddressTemplate, "the address that was published: an IP literal or a go-sockaddr template")
	fs.IntVar(&cfg.PeerPort, "peer-port", 2380, "etcd peer port that was published")
	fs.IntVar(&cfg.ClientPort, "client-port", 2379, "etcd client port that was published")
	fs.StringVar(&cfg.Scheme, "scheme", "http", "http or https (https means the -ssl services)")
	addDNSFlags(fs, &cfg.DNS)
	cfg.DNS.Check = "off"
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := agent.Withdraw(ctx, cfg, log); err != nil {
		return fail(stderr, log, "withdraw", err)
	}
	return exitOK
}

func runTokenNew(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var endpoints []string
	var size int
	var prefix string
	fs := newFlagSet("token new", "token new --endpoints URL[,URL...] --size N [--prefix /discovery]")
	fs.StringSliceVar(&endpoints, "endpoints", nil, "client URLs of the etcd cluster (3.4/3.5 with --enable-v2) that holds tokens")
	fs.IntVar(&size, "size", 0, "number of members of the new cluster (required, at least 1)")
	fs.StringVar(&prefix, "prefix", "/discovery", "v2 directory under which tokens are made")
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u, err := agent.NewToken(ctx, endpoints, prefix, size, log)
	if err != nil {
		return fail(stderr, nil, "token new", err)
	}
	fmt.Fprintln(stdout, u)
	return exitOK
}

func runTokenShow(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	fs := newFlagSet("token show", "token show URL")
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: etcd-discovery-agent token show URL")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := agent.ShowToken(ctx, fs.Arg(0))
	if err != nil {
		return fail(stderr, nil, "token show", err)
	}
	fmt.Fprintf(stdout, "token: %s\nsize:  %d\nregistered: %d\n", info.URL, info.Size, len(info.Entries))
	bad := 0
	for i, e := range info.Entries {
		mark := "member"
		if !e.InCluster {
			mark = "extra (beyond size)"
		}
		if e.Problem != "" {
			bad++
			mark += ", MALFORMED: " + e.Problem
		}
		fmt.Fprintf(stdout, "%3d  %-16s  %-40q  index=%d  %s\n", i+1, e.Key, e.Value, e.CreatedIndex, mark)
	}
	if bad > 0 {
		fmt.Fprintf(stdout, "%d malformed registration(s)\n", bad)
		return exitRegistryData
	}
	return exitOK
}

func runAddress(args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var spec string
	fs := newFlagSet("address", "address [--advertise-address TEMPLATE]")
	fs.StringVar(&spec, "advertise-address", agent.DefaultAddressTemplate, "IP literal or go-sockaddr template to evaluate on this host")
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	addr, err := agent.ResolveAddress(spec)
	if err != nil {
		return fail(stderr, nil, "address", err)
	}
	fmt.Fprintln(stdout, addr)
	return exitOK
}
