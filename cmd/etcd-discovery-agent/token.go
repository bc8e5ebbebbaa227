package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv3"
)

// tokenSynopsis is each token command's usage line.
var tokenSynopsis = map[string]string{
	"new":    "token new [--v3] --endpoints URL[,URL...] --size N [--token NAME] [--ttl D] [--print url|env] [flags]",
	"show":   "token show URL | token show --v3 --endpoints URL[,URL...] TOKEN",
	"delete": "token delete [--force] URL | token delete [--force] --v3 --endpoints URL[,URL...] TOKEN",
}

// tokenHelp is what each token command's --help says beside its flags.
var tokenHelp = map[string]string{
	"new": `Makes a discovery token, create-only: a token of that name that exists
is left as it is (exit 5). Without --v3, a v2 token: a directory of the v2
keys API (etcd 3.4/3.5 with --enable-v2) under --prefix, named by its
discovery URL (bootstrap --discovery URL). With --v3, a v3 token: a key
prefix /_etcd/registry/TOKEN/ in any etcd from 3.4 on (bootstrap
--discovery-token TOKEN --discovery-endpoints URL,...; etcd 3.6's own
--discovery-token reads it too). With --ttl the token, with every
registration under it, expires that long after it was made, used or not.

--print url prints the discovery URL (v2) or the token (v3), one line;
--print env prints the lines of a host's agent.env instead (the token,
where it is, and the --discovery-* TLS and user settings given, as
absolute paths the hosts must have too; never a password).
`,
	"show": `Prints a token's size and its registrations in registration order,
marking the members, the extras that do not count and the malformed
entries (exit 6 if there is one, or if the token does not exist).
`,
	"delete": `Deletes a token: its size and every registration under it. A token
whose cluster has not formed (fewer valid members than its size) is
refused, exit 5, as hosts waiting on it would fail; so is a token without
a usable size (exit 6). --force deletes either anyway. A token that does
not exist: exit 6.
`,
}

// newTokenFlagSet is the flag set of token command cmd, with its help.
func newTokenFlagSet(cmd string) *pflag.FlagSet {
	return newFlagSetAbout("token "+cmd, tokenSynopsis[cmd], tokenHelp[cmd])
}

// tokenPlace is where a token is and how to reach it: the flags every
// token command shares.
type tokenPlace struct {
	v3        bool
	endpoints []string
	creds     agent.Credentials
}

func (p *tokenPlace) declare(b binder, endpoints string) {
	b.flag(&p.v3, "V3", "v3", "a v3 token (etcd 3.6's --discovery-token, kept under /_etcd/registry/ in any etcd from 3.4 on) instead of a v2 discovery URL")
	b.strs(&p.endpoints, "Endpoints", "endpoints", endpoints)
}

// declareAccess declares the flags of the registry's TLS settings and user.
func (p *tokenPlace) declareAccess(b binder) {
	b.credentials(&p.creds, "DiscoveryAuth", "discovery", "the registry", true, true)
}

// operands are the arguments a token command takes besides its flags.
func (p *tokenPlace) operands() []string {
	if p.v3 {
		return []string{"TOKEN"}
	}
	return []string{"URL"}
}

// open checks the token a command was given, the flags that say where it
// is, and opens its registry. It returns the exit code when it cannot.
func (p *tokenPlace) open(fs *pflag.FlagSet, b binder, stderr io.Writer, log *slog.Logger) (agent.TokenDeleter, func(), int) {
	cmd, arg := fs.Name(), fs.Arg(0)
	switch {
	case !p.v3 && fs.Changed("endpoints"):
		return nil, nil, usageError(stderr, cmd, "--endpoints goes with --v3 (a v3 token): a v2 token's discovery URL names its registry itself")
	case !p.v3:
		if err := agent.CheckDiscoveryURL(arg); err != nil {
			return nil, nil, usageError(stderr, cmd, "discovery URL %v; for a v3 token, give --v3 --endpoints URL TOKEN", err)
		}
		reg, err := v2Registry(arg, p.creds, log)
		if err != nil {
			return nil, nil, b.names.fail(stderr, nil, cmd, err)
		}
		return reg, func() {}, -1
	case len(p.endpoints) == 0:
		return nil, nil, usageError(stderr, cmd, "--v3 needs --endpoints: the client URLs of the etcd that holds the token")
	}
	for _, ep := range p.endpoints {
		if err := agent.CheckEndpoint(ep); err != nil {
			return nil, nil, usageError(stderr, cmd, "--endpoints: %v", err)
		}
	}
	if arg == "" {
		return nil, nil, usageError(stderr, cmd, "TOKEN is empty: give the v3 token")
	}
	if err := agent.CheckDiscoveryToken(arg); err != nil {
		return nil, nil, usageError(stderr, cmd, "token %v", err)
	}
	reg, err := v3Registry(p.endpoints, arg, p.creds, log)
	if err != nil {
		return nil, nil, b.names.fail(stderr, nil, cmd, err)
	}
	return reg, func() { _ = reg.Close() }, -1
}

func runTokenNew(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var spec agent.TokenSpec
	var place tokenPlace
	var printAs string
	fs := newTokenFlagSet("new")
	b := newBinder(fs)
	place.declare(b, "client URLs of the etcd that keeps the token (for a v2 token: etcd 3.4/3.5 with --enable-v2)")
	b.int(&spec.Size, "Size", "size", 0, "number of members of the new cluster (required, at least 1)")
	b.str(&spec.Token, "Token", "token", "", "the token's name: letters, digits, '.', '_', '~' and '-' (default: 32 random hex digits)")
	b.dur(&spec.TTL, "TTL", "ttl", 0, "the token and every registration expire this long after it was made: whole seconds, at least 1s (default: never)")
	b.str(&spec.Prefix, "Prefix", "prefix", "/discovery", "v2 only: directory under which the token is made")
	b.str(&printAs, "Print", "print", "url", "what to print: url (the v2 discovery URL, or the v3 token) or env (the lines of a host's agent.env)")
	place.declareAccess(b)
	if code := parseCommand(fs, args, nil, stdout, stderr, env); code >= 0 {
		return code
	}
	spec.V3, spec.Endpoints = place.v3, place.endpoints
	switch {
	case spec.V3 && fs.Changed("prefix"):
		return usageError(stderr, "token new", "--prefix goes with a v2 token only: a v3 token is always under /_etcd/registry/")
	case fs.Changed("token") && spec.Token == "":
		return usageError(stderr, "token new", "--token is empty: give a name, or leave --token out for a random one")
	case printAs != "url" && printAs != "env":
		return usageError(stderr, "token new", "--print is not url or env (%s)", agent.Quote(printAs))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := spec.Validate(); err != nil {
		return b.names.fail(stderr, nil, "token new", err)
	}
	if printAs == "env" {
		// The lines must render before the token is made.
		if _, err := tokenEnv("0123456789abcdef", spec, place.creds, time.Time{}); err != nil {
			return b.names.fail(stderr, nil, "token new", err)
		}
	}
	// The files are read before anything is written.
	access, err := place.creds.Load("DiscoveryAuth", log)
	if err != nil {
		return b.names.fail(stderr, nil, "token new", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var v3reg *etcdv3.Registry
	defer func() {
		if v3reg != nil {
			_ = v3reg.Close()
		}
	}()
	open := func(token string) (agent.TokenCreator, error) {
		if !spec.V3 {
			return etcdv2.New(token, access)
		}
		reg, err := etcdv3.NewRegistry(spec.Endpoints, token, access)
		v3reg = reg
		return reg, err
	}
	token, err := agent.CreateToken(ctx, spec, open, log)
	if err != nil {
		return b.names.fail(stderr, nil, "token new", err)
	}
	if printAs == "url" {
		fmt.Fprintln(stdout, token)
		return exitOK
	}
	var expires time.Time
	if spec.TTL > 0 {
		expires = time.Now().Add(spec.TTL)
	}
	out, err := tokenEnv(token, spec, place.creds, expires)
	if err != nil {
		return b.names.fail(stderr, nil, "token new", fmt.Errorf("the token %s was made, but its env lines cannot be written: %w", token, err))
	}
	_, _ = stdout.Write(out)
	return exitOK
}

// tokenEnv renders the lines of a host's agent.env for token, in the safe
// subset of agent/envfile: where the token is and the registry settings
// that were given (file paths, made absolute, and the user; the password
// stays in its file). expires, when not zero, goes into a comment.
func tokenEnv(token string, spec agent.TokenSpec, creds agent.Credentials, expires time.Time) ([]byte, error) {
	kind := "v2"
	vars := []envfile.Var{{Name: envName("discovery"), Value: token}}
	if spec.V3 {
		kind = "v3"
		vars = []envfile.Var{
			{Name: envName("discovery-token"), Value: token},
			{Name: envName("discovery-endpoints"), Value: strings.Join(spec.Endpoints, ",")},
		}
	}
	for _, f := range []struct{ flag, path string }{
		{"discovery-cacert", creds.CACert}, {"discovery-cert", creds.Cert}, {"discovery-key", creds.Key},
		{"discovery-password-file", creds.PasswordFile},
	} {
		if f.path == "" {
			continue
		}
		abs, err := filepath.Abs(f.path)
		if err != nil {
			return nil, fmt.Errorf("%w: --%s: %w", agent.ErrConfig, f.flag, err)
		}
		vars = append(vars, envfile.Var{Name: envName(f.flag), Value: abs})
	}
	if creds.User != "" {
		vars = append(vars, envfile.Var{Name: envName("discovery-user"), Value: creds.User})
	}
	if creds.InsecureSkipVerify {
		vars = append(vars, envfile.Var{Name: envName("discovery-insecure-skip-tls-verify"), Value: "true"})
	}
	comments := []string{fmt.Sprintf("A %s discovery token for a %d-member cluster, made by etcd-discovery-agent token new.", kind, spec.Size)}
	if !expires.IsZero() {
		comments = append(comments, fmt.Sprintf("It expires, with every registration, at %s (--ttl %s).", expires.UTC().Format(time.RFC3339), spec.TTL))
	}
	out, err := envfile.Render(comments, vars)
	if err != nil {
		return nil, fmt.Errorf("%w: the settings cannot be written as env file lines: %w", agent.ErrConfig, err)
	}
	return out, nil
}

// runOnToken is the part "token show" and "token delete" share: it parses
// the command's flags (extra declares its own), opens the token's registry
// and runs act on it within 30 seconds.
func runOnToken(ctx context.Context, name string, args []string, stdout, stderr io.Writer, env lookupEnv, extra func(binder), act func(context.Context, agent.TokenDeleter, binder) int) int {
	var place tokenPlace
	fs := newTokenFlagSet(name)
	b := newBinder(fs)
	place.declare(b, "with --v3: client URLs of the etcd that holds the token")
	if extra != nil {
		extra(b)
	}
	place.declareAccess(b)
	if code := parseCommandFunc(fs, args, place.operands, stdout, stderr, env); code >= 0 {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	reg, done, code := place.open(fs, b, stderr, log)
	if code >= 0 {
		return code
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return act(ctx, reg, b)
}

func runTokenShow(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	return runOnToken(ctx, "show", args, stdout, stderr, env, nil, func(ctx context.Context, reg agent.TokenDeleter, b binder) int {
		info, err := agent.ShowToken(ctx, reg)
		if err != nil {
			return b.names.fail(stderr, nil, "token show", err)
		}
		if bad := printToken(stdout, info); bad > 0 {
			return exitRegistryData
		}
		return exitOK
	})
}

func runTokenDelete(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var force bool
	extra := func(b binder) {
		b.flag(&force, "Force", "force", "delete the token even if its cluster has not formed, or it has no usable size")
	}
	return runOnToken(ctx, "delete", args, stdout, stderr, env, extra, func(ctx context.Context, reg agent.TokenDeleter, b binder) int {
		info, err := agent.DeleteToken(ctx, reg, force)
		if err != nil {
			return b.names.fail(stderr, nil, "token delete", err)
		}
		if info == nil {
			fmt.Fprintf(stdout, "deleted the token %s (it had no usable size)\n", printable(reg.Token()))
			return exitOK
		}
		fmt.Fprintf(stdout, "deleted the token %s: size %d, %d registrations, %d members\n", printable(info.Token), info.Size, len(info.Entries), info.Members())
		return exitOK
	})
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
