package agent

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/dnsupdate"
)

// Credentials are the TLS files and the user with which the agent talks
// to an etcd: a registry, or a running cluster. Secrets are read from
// files only: the password from PasswordFile, never from a flag.
type Credentials struct {
	CACert             string // PEM bundle to verify the server with; empty: the system's trust store
	Cert, Key          string // client certificate and key (PEM), for servers that demand one
	InsecureSkipVerify bool   // do not verify the server's certificate (tests only)
	User               string // etcd user (v2: basic auth; v3: authenticated token)
	PasswordFile       string // file holding the user's password (its first line)
}

// maxSecretFile bounds what a password file may hold.
const maxSecretFile = 4096

// Access is Credentials loaded: what a client needs, ready to use.
type Access struct {
	TLS      *tls.Config // nil when no TLS setting was given: the defaults apply
	User     string
	Password string
}

// LogValue keeps the password out of every log.
func (a Access) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("tls", a.TLS != nil), slog.String("user", a.User))
}

// String keeps the password out of every message.
func (a Access) String() string { return fmt.Sprintf("tls=%t user=%q", a.TLS != nil, a.User) }

// GoString keeps the password out of %#v.
func (a Access) GoString() string { return "agent.Access{" + a.String() + "}" }

// describe says which files and user c uses, for a message about a
// refusal; it names files, never what they hold.
func (c Credentials) describe() string {
	var parts []string
	if c.CACert != "" {
		parts = append(parts, "CA file "+c.CACert)
	}
	if c.Cert != "" {
		parts = append(parts, "client certificate "+c.Cert+" (key "+c.Key+")")
	}
	if c.InsecureSkipVerify {
		parts = append(parts, "no verification of the server's certificate")
	}
	if c.User != "" {
		parts = append(parts, fmt.Sprintf("user %s (password file %s)", Quote(c.User), c.PasswordFile))
	}
	if len(parts) == 0 {
		return "with no CA file, client certificate or user given"
	}
	return "with " + strings.Join(parts, ", ")
}

// refused adds to an access refusal which credentials what was asked with.
func refused(err error, what string, c Credentials) error {
	if errors.Is(err, ErrAccess) {
		return fmt.Errorf("%w; %s was asked %s", err, what, c.describe())
	}
	return err
}

// validate checks what needs no I/O; field is the Config field that holds c.
func (c Credentials) validate(field string) error {
	switch {
	case (c.Cert == "") != (c.Key == ""):
		return fieldErr(field+".Cert", "a client certificate and its key go together: give both files or neither")
	case c.User != "" && c.PasswordFile == "":
		return fieldErr(field+".PasswordFile", "user %q needs a password file", c.User)
	case c.User == "" && c.PasswordFile != "":
		return fieldErr(field+".User", "a password file needs a user")
	}
	return nil
}

// Load reads the files: the CA bundle, the client key pair and the
// password. A file that cannot be read or parsed is an ErrConfig naming
// the field; a key or password file that group or others may read gets a
// warning on log. Nothing read is ever logged.
func (c Credentials) Load(field string, log *slog.Logger) (Access, error) {
	if err := c.validate(field); err != nil {
		return Access{}, configError([]error{err})
	}
	a := Access{User: c.User}
	for _, f := range []struct{ sub, file string }{{".CACert", c.CACert}, {".Cert", c.Cert}, {".Key", c.Key}} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			return Access{}, configError([]error{fieldErr(field+f.sub, "%v", err)})
		}
	}
	if c.CACert != "" {
		if err := checkCABundle(c.CACert); err != nil {
			return Access{}, configError([]error{fieldErr(field+".CACert", "%v", err)})
		}
	}
	if c.CACert != "" || c.Cert != "" || c.InsecureSkipVerify {
		info := transport.TLSInfo{CertFile: c.Cert, KeyFile: c.Key, TrustedCAFile: c.CACert, InsecureSkipVerify: c.InsecureSkipVerify}
		cfg, err := info.ClientConfig()
		if err != nil {
			sub := ".Cert"
			if c.Cert == "" {
				sub = ".CACert"
			}
			return Access{}, configError([]error{fieldErr(field+sub, "cannot load the TLS files (%s %s %s): %v", c.CACert, c.Cert, c.Key, err)})
		}
		a.TLS = cfg
	}
	if c.Key != "" {
		WarnExposed(log, field+".Key", c.Key)
	}
	if c.PasswordFile != "" {
		pw, err := readSecret(c.PasswordFile)
		if err != nil {
			return Access{}, configError([]error{fieldErr(field+".PasswordFile", "%v", err)})
		}
		WarnExposed(log, field+".PasswordFile", c.PasswordFile)
		a.Password = pw
	}
	return a, nil
}

// checkCABundle fails unless the file holds a PEM certificate: etcd's
// loader takes a file without one for an empty trust store, which would
// fail only at the first TLS handshake, after other writes.
func checkCABundle(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate; give the CA bundle", path)
	}
	return nil
}

// readSecret reads a password: the file's first line, which must not be
// empty.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d bytes; is it a password file?", path, maxSecretFile)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return "", fmt.Errorf("%s: the first line is empty; put the password on it", path)
	}
	return string(line), nil
}

// WarnExposed warns when group or others may read the secret file at
// path, which the Config field names.
func WarnExposed(log *slog.Logger, field, path string) {
	if exposed, err := dnsupdate.KeyFileExposed(path); err == nil && exposed {
		log.Warn("a secret file can be read by other users; chmod 600 it", "setting", field, "path", path)
	}
}
