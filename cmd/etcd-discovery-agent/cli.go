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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// commands are the first words run knows besides help.
var commands = []string{"bootstrap", "token", "withdraw", "address", "lookup", "version"}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "bootstrap":
		return runBootstrap(ctx, args[1:], stdout, stderr, env)
	case "token":
		return runToken(ctx, args[1:], stdout, stderr, env)
	case "address":
		return runAddress(args[1:], stdout, stderr, env)
	case "withdraw":
		return runWithdraw(ctx, args[1:], stdout, stderr, env)
	case "lookup":
		return runLookup(ctx, args[1:], stdout, stderr, env)
	case "version", "--version":
		return runVersion(args[1:], stdout, stderr, env)
	case "help", "-h", "--help":
		return runHelp(ctx, args[1:], stdout, stderr, env)
	}
	return usageError(stderr, "", "unknown command (%s): run 'etcd-discovery-agent --help' for the commands", agent.Quote(args[0]))
}

// runHelp prints the usage, or with a command, that command's --help.
func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	switch {
	case len(args) == 0, len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return exitOK
	case slices.Contains(commands, args[0]):
		return run(ctx, append(slices.Clone(args), "--help"), stdout, stderr, env)
	}
	return usageError(stderr, "help", "unknown command (%s): run 'etcd-discovery-agent --help' for the commands", agent.Quote(args[0]))
}

const tokenUsage = `Usage:
  etcd-discovery-agent token new [flags]     create a discovery token, print its URL
  etcd-discovery-agent token show URL        show a token's size and registrations

Run 'etcd-discovery-agent token new --help' for its flags.
`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	if len(args) == 0 {
		return usageError(stderr, "token", "subcommand missing: use 'token new' or 'token show'")
	}
	switch args[0] {
	case "new":
		return runTokenNew(ctx, args[1:], stdout, stderr, env)
	case "show":
		return runTokenShow(ctx, args[1:], stdout, stderr, env)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, tokenUsage)
		return exitOK
	}
	return usageError(stderr, "token", "unknown subcommand (%s): use 'token new' or 'token show'", agent.Quote(args[0]))
}

func runVersion(args []string, stdout, stderr io.Writer, env lookupEnv) int {
	fs := newFlagSet("version", "version")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: etcd-discovery-agent version\n\nPrints the version of etcd-discovery-agent.\n")
	}
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	fmt.Fprintln(stdout, "etcd-discovery-agent", versionString())
	return exitOK
}

// usageError prints one line, "etcd-discovery-agent CMD: what is wrong
// (the input): what to do", and returns exitUsage.
func usageError(stderr io.Writer, cmd, format string, a ...any) int {
	prefix := "etcd-discovery-agent"
	if cmd != "" {
		prefix += " " + cmd
	}
	fmt.Fprintf(stderr, "%s: %s\n", prefix, fmt.Sprintf(format, a...))
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

// parseFlags parses args, flags only, then fills every flag not given on
// the command line from its environment variable. It returns the exit code
// to use when the caller must stop (help or error), or -1 to go on.
func parseFlags(fs *pflag.FlagSet, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	return parseCommand(fs, args, nil, stdout, stderr, env)
}

// parseCommand is parseFlags for a command that takes exactly the
// arguments named in operands besides its flags. --help (or -h) prints the
// usage once, on stdout; every error is one line on stderr.
func parseCommand(fs *pflag.FlagSet, args, operands []string, stdout, stderr io.Writer, env lookupEnv) int {
	cmd := fs.Name()
	// pflag prints the usage itself when it meets --help; it is printed
	// here instead, once, to stdout.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	case err != nil:
		return usageError(stderr, cmd, "%s", flagError(err, cmd))
	case fs.NArg() > len(operands):
		takes := "no arguments"
		if len(operands) > 0 {
			takes = "only " + strings.Join(operands, " ")
		}
		return usageError(stderr, cmd, "unexpected argument (%s): %s takes %s; run 'etcd-discovery-agent %s --help'",
			agent.Quote(fs.Arg(len(operands))), cmd, takes, cmd)
	case fs.NArg() < len(operands):
		return usageError(stderr, cmd, "%s missing: run it as 'etcd-discovery-agent %s %s'", operands[fs.NArg()], cmd, strings.Join(operands, " "))
	}
	bad := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := env(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				what, hint := valueProblem(f, err)
				usageError(stderr, cmd, "%s %s (%s): %s, or unset %s", name, what, agent.Quote(v), hint, name)
				bad++
			}
		}
	})
	if bad > 0 {
		return exitUsage
	}
	return -1
}

// flagError says what is wrong with the command line, naming the input.
func flagError(err error, cmd string) string {
	flags := fmt.Sprintf("run 'etcd-discovery-agent %s --help' for the flags", cmd)
	var (
		invalid  *pflag.InvalidValueError
		required *pflag.ValueRequiredError
		unknown  *pflag.NotExistError
		syntax   *pflag.InvalidSyntaxError
	)
	switch {
	case errors.As(err, &invalid):
		what, hint := valueProblem(invalid.GetFlag(), err)
		return fmt.Sprintf("--%s %s (%s): %s", invalid.GetFlag().Name, what, agent.Quote(invalid.GetValue()), hint)
	case errors.As(err, &required):
		name := "--" + required.GetSpecifiedName()
		if required.GetSpecifiedShortnames() != "" {
			name = "-" + required.GetSpecifiedName()
		}
		return fmt.Sprintf("flag needs a value (%s): give it as %s VALUE or %s=VALUE", agent.Quote(name), name, name)
	case errors.As(err, &unknown):
		name := "--" + unknown.GetSpecifiedName()
		if unknown.GetSpecifiedShortnames() != "" {
			name = "-" + unknown.GetSpecifiedName()
		}
		return fmt.Sprintf("unknown flag (%s): %s", agent.Quote(name), flags)
	case errors.As(err, &syntax):
		return fmt.Sprintf("bad flag syntax (%s): write --name VALUE or --name=VALUE; %s", agent.Quote(syntax.GetSpecifiedFlag()), flags)
	}
	return fmt.Sprintf("%s: %s", printable(err.Error()), flags)
}

// valueProblem says why a value does not fit flag f, and what fits.
func valueProblem(f *pflag.Flag, err error) (what, hint string) {
	switch f.Value.Type() {
	case "int":
		hint = "give digits only"
		if f.DefValue != "0" {
			hint += ", such as " + f.DefValue
		}
		return "is not a whole number", hint
	case "duration":
		return "is not a duration", "give a number with a unit, such as 500ms, 30s or 10m"
	case "bool":
		return "is not a boolean", "give true or false"
	case "stringSlice":
		return "is not a comma-separated list", "separate the values with commas, unquoted"
	}
	return "is not valid", printable(err.Error())
}

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newFlagSet(name, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: etcd-discovery-agent %s\n\n", synopsis)
		if fs.HasFlags() {
			fmt.Fprintf(fs.Output(), "Flags (each also settable as %sFLAG_NAME):\n%s\n", envPrefix, fs.FlagUsages())
		}
		fmt.Fprint(fs.Output(), exitCodesHelp())
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
		return nil, fmt.Errorf("--log-level is not a level (%s): use debug, info, warn or error", agent.Quote(level))
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
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return usageError(stderr, "bootstrap", "%v", err)
	}
	cfg.OnFull = agent.OnFull(onFull)
	if cfg.OnFull == agent.OnFullProxy {
		if cfg.EtcdVersion, err = etcdVersion(ctx, etcdBinary); err != nil {
			if ctx.Err() != nil {
				return fail(stderr, log, "bootstrap", ctx.Err())
			}
			return usageError(stderr, "bootstrap", "--etcd-binary gave no etcd version (%s: %s): --on-full=proxy needs it; give the path of the etcd this host runs",
				agent.Quote(etcdBinary), printable(err.Error()))
		}
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

// etcdVersion asks the local etcd binary for its version.
func etcdVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", err
	}
	if m := etcdVersionRE.FindSubmatch(out); m != nil {
		return string(m[1]), nil
	}
	return "", errors.New("its --version printed no 'etcd Version:' line")
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
		fmt.Fprintf(stderr, "etcd-discovery-agent %s: %s\n", cmd, errorText(err))
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
	if code := parseCommand(fs, args, []string{"URL"}, stdout, stderr, env); code >= 0 {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := agent.ShowToken(ctx, fs.Arg(0))
	if err != nil {
		return fail(stderr, nil, "token show", err)
	}
	if bad := printToken(stdout, info); bad > 0 {
		return exitRegistryData
	}
	return exitOK
}

// printToken prints a token's size and its registrations, one line each,
// and returns how many are malformed. Keys, values and problems are
// registry data: they are escaped and bounded (agent.Quote), so no key or
// value can add a line, move the cursor or flood the terminal.
func printToken(w io.Writer, info *agent.TokenInfo) (bad int) {
	fmt.Fprintf(w, "token: %s\nsize:  %d\nregistered: %d\n", printable(info.URL), info.Size, len(info.Entries))
	for i, e := range info.Entries {
		mark := "member"
		if !e.InCluster {
			mark = "extra (beyond size)"
		}
		if e.Problem != "" {
			bad++
			mark += ", MALFORMED: " + printable(e.Problem)
		}
		fmt.Fprintf(w, "%3d  %-18s  %-42s  index=%d  %s\n", i+1, agent.Quote(e.Key), agent.Quote(e.Value), e.CreatedIndex, mark)
	}
	if bad > 0 {
		fmt.Fprintf(w, "%d malformed registration(s)\n", bad)
	}
	return bad
}

// printable returns s as it is when it is UTF-8 made of printable
// characters and at most agent.QuoteMax bytes, else agent.Quote(s).
func printable(s string) string { return printableN(s, agent.QuoteMax) }

func printableN(s string, max int) string {
	if len(s) > max || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return agent.Quote(s)
	}
	return s
}

// maxErrorLine bounds a line of an error message printed as it is. The
// agent's messages quote and cut what they cite (agent.Quote); a longer
// line is cited data that was not.
const maxErrorLine = 4096

// errorText renders err on one line: its lines (errors.Join makes several)
// joined by "; ", each printed as it is when printable and not too long,
// else quoted and cut.
func errorText(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = printableN(l, maxErrorLine)
	}
	return strings.Join(lines, "; ")
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
