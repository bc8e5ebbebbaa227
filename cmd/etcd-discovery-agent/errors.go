package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
)

// Exit codes, documented in --help and the README.
const (
	exitOK           = 0
	exitFailure      = 1 // anything else: I/O errors, registry refusals, interruption
	exitUsage        = 2 // bad usage or configuration, found before anything was written
	exitTokenFull    = 3 // token full and --on-full=exit
	exitTimeout      = 4 // --timeout passed while waiting
	exitConflict     = 5 // name, member ID or peer URL held by another host
	exitRegistryData = 6 // token missing, bad size, or an invalid registration
	exitDNS          = 7 // DNS update refused or unanswered, or published records do not check out
	exitAccess       = 8 // TLS or authentication refused by the registry or the cluster
)

// exitCode maps an error to its exit code. The core wraps every error in
// exactly one outcome; a deadline that escaped without one is a timeout.
func exitCode(err error) int {
	for _, c := range []struct {
		err  error
		code int
	}{
		{agent.ErrConfig, exitUsage},
		{agent.ErrAddress, exitUsage},
		{agent.ErrAccess, exitAccess},
		{agent.ErrDNS, exitDNS},
		{agent.ErrConflict, exitConflict},
		{agent.ErrRegistryData, exitRegistryData},
		{agent.ErrTokenFull, exitTokenFull},
		{agent.ErrTimeout, exitTimeout},
		{context.DeadlineExceeded, exitTimeout},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return exitFailure
}

// flags maps the Config fields of agent.FieldError to the flags that set
// them, filled as the flags are declared (see bind).
type flags struct {
	fs     *pflag.FlagSet
	fields map[string]string // Config field → flag name
}

// fromEnv annotates a flag set from its EDA_* variable, with the variable.
const fromEnv = "eda-env"

// name is how a message names the setting of field: its flag, or the
// variable that set it ("EDA_SIZE (--size)"), as the user wrote it.
func (f flags) name(field string) (string, bool) {
	n, ok := f.fields[field]
	if !ok {
		return "", false
	}
	if fl := f.fs.Lookup(n); fl != nil {
		if env := fl.Annotations[fromEnv]; len(env) > 0 {
			return env[0] + " (--" + n + ")", true
		}
	}
	return "--" + n, true
}

// describe renders err for the user, naming each setting by its flag.
func (f flags) describe(err error) string {
	msg := err.Error()
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*agent.FieldError); ok {
			if name, known := f.name(fe.Field); known {
				msg = strings.Replace(msg, fe.Error(), name+": "+fe.Err.Error(), 1)
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	if errors.Is(err, context.Canceled) && !errors.Is(err, agent.ErrConfig) {
		msg = "interrupted: " + msg
	}
	return msg
}

// fail reports err once, on log if there is one, and returns its exit code.
func (f flags) fail(stderr io.Writer, log *slog.Logger, cmd string, err error) int {
	code := exitCode(err)
	msg := f.describe(err)
	if log != nil {
		log.Error(cmd+" failed", "err", msg, "exit_code", code)
	} else {
		fmt.Fprintf(stderr, "etcd-discovery-agent %s: %s\n", cmd, errorText(msg))
	}
	return code
}
