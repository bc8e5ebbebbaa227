package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// envPrefix prefixes the environment variable that can set each flag.
const envPrefix = "EDA_"

// version is set by the Makefile with -ldflags -X main.version=...
var version = ""

const usage = `etcd-discovery-agent: bring up etcd clusters by discovery token.

Usage:
  etcd-discovery-agent bootstrap [flags]     register this host and write etcd's env file
  etcd-discovery-agent promote [flags]       make this host's learner a voter (after etcd started)
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
  7  DNS: the update was refused or not answered, or the published records
     would mislead etcd
  8  access refused: the registry or the cluster refused the TLS settings or
     the credentials (unknown CA, expired or missing certificate, wrong
     password, no permission)

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
	case "promote":
		return runPromote(ctx, args[1:], stdout, stderr, env)
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

func runAddress(args []string, stdout, stderr io.Writer, env lookupEnv) int {
	var spec string
	fs := newFlagSet("address", "address [--advertise-address TEMPLATE]")
	fs.StringVar(&spec, "advertise-address", agent.DefaultAddressTemplate, "IP literal or go-sockaddr template to evaluate on this host")
	if code := parseFlags(fs, args, stdout, stderr, env); code >= 0 {
		return code
	}
	addr, err := agent.ResolveAddress(spec)
	if err != nil {
		fmt.Fprintf(stderr, "etcd-discovery-agent address: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, addr)
	return exitOK
}
