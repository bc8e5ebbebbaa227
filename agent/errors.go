package agent

import (
	"errors"
	"fmt"
)

// The outcomes of a run that is not a success. Every error the core returns
// wraps exactly one of them; cmd maps each to its own exit code, so one
// fault always gets one exit code.
var (
	// ErrConfig reports unusable configuration, found before anything was
	// written.
	ErrConfig = errors.New("configuration")
	// ErrTokenFull reports a token that already holds its size of members
	// without this host.
	ErrTokenFull = errors.New("discovery token is full")
	// ErrTimeout reports that the overall deadline passed during a wait.
	ErrTimeout = errors.New("timed out")
	// ErrConflict reports a name, member ID or peer URL that another host
	// holds.
	ErrConflict = errors.New("conflict")
	// ErrRegistryData reports a token whose content cannot be trusted: no
	// size, a bad size, or an entry that is not a valid member; or a
	// registry that does not speak the protocol.
	ErrRegistryData = errors.New("unusable discovery token")
	// ErrDNS reports DNS records that were refused, a DNS server that did
	// not answer, or records that do not say what etcd's SRV discovery
	// needs them to say.
	ErrDNS = errors.New("dns")
	// ErrAccess reports that a registry or cluster refused the agent's
	// credentials, or that TLS could not be set up: an unknown certificate
	// authority, an expired or missing certificate, a wrong password, a
	// user without permission. Retrying does not help.
	ErrAccess = errors.New("access refused")
)

// ErrUnavailable marks a fault that can heal by itself: a registry or
// cluster that cannot be reached, answers 5xx, has no leader yet or is
// restarting. Only such faults are retried. Backends wrap their transient
// errors in it; the core never looks at message text.
var ErrUnavailable = errors.New("unavailable")

// errNotYet marks a condition that does not hold yet (the SRV records do
// not show every member, the lead member does not answer): the wait goes
// on.
var errNotYet = errors.New("not yet")

// FieldError is a configuration setting that cannot work. Field names the
// Config field (for example "DNS.KeyFile"); cmd shows it as the flag that
// sets it.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// fieldErr builds a FieldError from a message.
func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// configError wraps the problems found in a configuration (nil entries
// are checks that passed) as one ErrConfig, or returns nil.
func configError(errs []error) error {
	joined := errors.Join(errs...)
	if joined == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, joined)
}
