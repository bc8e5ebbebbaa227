package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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
  etcd-discovery-agent token new [--v3] [flags]
                                             create a discovery token, print its URL
                                             (v2) or the token (--v3), or with
                                             --print env a host's agent.env lines
  etcd-discovery-agent token show URL        show a token's size and registrations
  etcd-discovery-agent token show --v3 --endpoints URL TOKEN
  etcd-discovery-agent token delete URL      delete a token whose cluster formed
  etcd-discovery-agent token delete --v3 --endpoints URL TOKEN
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
  5  conflict: the name, member ID or peer URL is held by another host;
     token new: a token of that name exists; token delete: the token's
     cluster has not formed (--force deletes it anyway)
  6  the token is missing (or expired) or holds invalid data (bad size,
     malformed entry)
  7  DNS: the update was refused or not answered, or the published records
     would mislead etcd
  8  access refused: the registry or the cluster refused the TLS settings or
     the credentials (unknown CA, expired or missing certificate, wrong
     password, no permission)

Run 'etcd-discovery-agent COMMAND --help' for a command's flags.
`

type lookupEnv func(string) (string, bool)

// commands are the first words run knows besides help.
var commands = []string{"bootstrap", "promote", "token", "withdraw", "address", "lookup", "version"}

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
	case "promote":
		return runPromote(ctx, args[1:], stdout, stderr, env)
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
  etcd-discovery-agent token new [--v3] --endpoints URL[,URL...] --size N [flags]
                      create a discovery token: a v2 token (a discovery URL) or,
                      with --v3, a v3 token (etcd 3.6's --discovery-token)
  etcd-discovery-agent token show URL
  etcd-discovery-agent token show --v3 --endpoints URL[,URL...] TOKEN
                      show a token's size and registrations
  etcd-discovery-agent token delete [--force] URL
  etcd-discovery-agent token delete [--force] --v3 --endpoints URL[,URL...] TOKEN
                      delete a token and every registration, once its
                      cluster formed (or with --force)

Run 'etcd-discovery-agent token COMMAND --help' for its flags.
`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	if len(args) == 0 {
		return usageError(stderr, "token", "subcommand missing: use 'token new', 'token show' or 'token delete'")
	}
	switch args[0] {
	case "new":
		return runTokenNew(ctx, args[1:], stdout, stderr, env)
	case "show":
		return runTokenShow(ctx, args[1:], stdout, stderr, env)
	case "delete":
		return runTokenDelete(ctx, args[1:], stdout, stderr, env)
	case "help", "-h", "--help":
		if len(args) > 1 {
			return runToken(ctx, append(args[1:2], "--help"), stdout, stderr, env)
		}
		fmt.Fprint(stdout, tokenUsage)
		return exitOK
	}
	return usageError(stderr, "token", "unknown subcommand (%s): use 'token new', 'token show' or 'token delete'", agent.Quote(args[0]))
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
	return parseCommandFunc(fs, args, func() []string { return operands }, stdout, stderr, env)
}

// parseCommandFunc is parseCommand for a command whose arguments depend on
// its flags: operands is asked once the command line is parsed.
func parseCommandFunc(fs *pflag.FlagSet, args []string, operandsOf func() []string, stdout, stderr io.Writer, env lookupEnv) int {
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
				return
			}
			_ = fs.SetAnnotation(f.Name, fromEnv, []string{name})
		}
	})
	if bad > 0 {
		return exitUsage
	}
	operands := operandsOf()
	switch {
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
	return newFlagSetAbout(name, synopsis, "")
}

// newFlagSetAbout is newFlagSet for a command whose --help says what it
// does, in about, between the synopsis and the flags.
func newFlagSetAbout(name, synopsis, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: etcd-discovery-agent %s\n\n", synopsis)
		if about != "" {
			fmt.Fprintf(fs.Output(), "%s\n", about)
		}
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

// errorText renders an error message on one line: its lines (errors.Join
// makes several) joined by "; ", each printed as it is when printable and
// not too long, else quoted and cut.
func errorText(msg string) string {
	lines := strings.Split(msg, "\n")
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
		fmt.Fprintf(stderr, "etcd-discovery-agent address: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, addr)
	return exitOK
}
