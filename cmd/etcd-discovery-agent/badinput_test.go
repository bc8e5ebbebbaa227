package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// Every bad input, in every command, ends with exit 2 and one line on
// stderr that names what was wrong, before anything is written or any
// registry or DNS server is asked: each case would fail differently (a
// refused connection, exit 1) if it got that far.
func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "run", "etcd.env")
	stateDir := filepath.Join(dir, "state")
	dataDir := filepath.Join(dir, "data")
	missing := filepath.Join(dir, "no-such-file")
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("etcd Version: 3.4.23\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A token URL on a port nothing listens on: no case gets to use it.
	const token = "http://127.0.0.1:1/v2/keys/discovery/0123456789abcdef"
	boot := func(args ...string) []string {
		return append([]string{"bootstrap", "--name", "a", "--advertise-address", "127.0.0.1",
			"--data-dir", dataDir, "--env-file", envFile, "--state-dir", stateDir}, args...)
	}
	srv := func(args ...string) []string {
		return boot(append([]string{"--discovery-srv", "example.test", "--size", "3", "--dns-resolver", "127.0.0.1:1"}, args...)...)
	}
	dns := []string{"--publish-server", "127.0.0.1:1", "--publish-zone", "example.test", "--tsig-key-file", missing}
	withDNS := func(args ...string) []string {
		return boot(append(append([]string{"--discovery", token}, dns...), args...)...)
	}
	v2new := func(args ...string) []string {
		return append([]string{"token", "new", "--endpoints", "http://127.0.0.1:1", "--size", "3"}, args...)
	}
	v3new := func(args ...string) []string {
		return append([]string{"token", "new", "--v3", "--endpoints", "http://127.0.0.1:1"}, args...)
	}
	withdraw := func(args ...string) []string {
		return append([]string{"withdraw", "--name", "a", "--advertise-address", "127.0.0.1"}, args...)
	}

	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		says string // a fragment of the one line on stderr
	}{
		// The command line itself.
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, says: `unknown command ("frobnicate")`},
		{name: "help for an unknown command", args: []string{"help", "frobnicate"}, code: exitUsage, says: `unknown command ("frobnicate")`},
		{name: "unknown command with an escape", args: []string{"\x1b[2J"}, code: exitUsage, says: `unknown command ("\x1b[2J")`},
		{name: "token without subcommand", args: []string{"token"}, code: exitUsage, says: "subcommand missing"},
		{name: "token bogus", args: []string{"token", "bogus"}, code: exitUsage, says: `unknown subcommand ("bogus")`},
		{name: "version stray", args: []string{"version", "stray"}, code: exitUsage, says: `unexpected argument ("stray")`},
		{name: "--version stray", args: []string{"--version", "stray"}, code: exitUsage, says: `unexpected argument ("stray")`},
		{name: "version unknown flag", args: []string{"version", "--short"}, code: exitUsage, says: `unknown flag ("--short")`},

		// bootstrap: flags and arguments.
		{name: "bootstrap unknown flag", args: boot("--discovery", token, "--bogus"), code: exitUsage, says: `unknown flag ("--bogus")`},
		{name: "bootstrap unknown shorthand", args: boot("--discovery", token, "-x"), code: exitUsage, says: `unknown flag ("-x")`},
		{name: "bootstrap bad flag syntax", args: boot("--discovery", token, "---x"), code: exitUsage, says: `bad flag syntax ("---x")`},
		{name: "bootstrap stray argument", args: boot("--discovery", token, "stray"), code: exitUsage, says: `unexpected argument ("stray")`},
		{name: "bootstrap argument after --", args: boot("--discovery", token, "--", "--timeout"), code: exitUsage, says: `unexpected argument ("--timeout")`},
		{name: "peer port not a number", args: boot("--discovery", token, "--peer-port", "abc"), code: exitUsage, says: `--peer-port is not a whole number ("abc")`},
		{name: "timeout without unit", args: boot("--discovery", token, "--timeout", "1"), code: exitUsage, says: `--timeout is not a duration ("1")`},
		{name: "timeout without value", args: boot("--discovery", token, "--timeout"), code: exitUsage, says: `flag needs a value ("--timeout")`},
		{name: "listen-loopback not a boolean", args: boot("--discovery", token, "--listen-loopback=maybe"), code: exitUsage, says: `--listen-loopback is not a boolean ("maybe")`},
		{name: "dns-resolver not a list", args: srv("--dns-resolver", `"a`), code: exitUsage, says: `--dns-resolver is not a comma-separated list`},
		{name: "bad log level", args: boot("--discovery", token, "--log-level", "loud"), code: exitUsage, says: `--log-level is not a level ("loud")`},
		{name: "bad EDA_PEER_PORT", args: boot("--discovery", token), env: map[string]string{"EDA_PEER_PORT": "notaport"}, code: exitUsage, says: `EDA_PEER_PORT is not a whole number ("notaport")`},
		{name: "bad EDA_TIMEOUT", args: boot("--discovery", token), env: map[string]string{"EDA_TIMEOUT": "1"}, code: exitUsage, says: `EDA_TIMEOUT is not a duration ("1")`},
		{name: "proxy, etcd binary missing", args: boot("--discovery", token, "--on-full", "proxy", "--etcd-binary", missing), code: exitUsage, says: "--etcd-binary: cannot ask"},
		{name: "proxy, etcd binary not executable", args: boot("--discovery", token, "--on-full=proxy", "--etcd-binary", notExec), code: exitUsage, says: "permission denied"},

		// bootstrap: the configuration.
		{name: "no discovery", args: boot(), code: exitUsage, says: "--discovery: required: a discovery URL"},
		{name: "empty discovery", args: boot("--discovery", ""), code: exitUsage, says: "--discovery: required: a discovery URL"},
		{name: "discovery with a query", args: boot("--discovery", token+"?x=1"), code: exitUsage, says: "remove the query or fragment"},
		{name: "discovery with a fragment", args: boot("--discovery", token+"#x"), code: exitUsage, says: "remove the query or fragment"},
		{name: "discovery with a trailing slash", args: boot("--discovery", token+"/"), code: exitUsage, says: "remove the trailing slash"},
		{name: "discovery not http", args: boot("--discovery", "ftp://127.0.0.1:1/v2/keys/discovery/t"), code: exitUsage, says: "scheme must be http or https"},
		{name: "discovery and discovery-srv", args: boot("--discovery", token, "--discovery-srv", "example.test", "--size", "3"), code: exitUsage, says: "not several"},
		{name: "bad scheme", args: boot("--discovery", token, "--scheme", "ftp"), code: exitUsage, says: "must be http or https"},
		{name: "peer port is the client port", args: boot("--discovery", token, "--peer-port", "2379"), code: exitUsage, says: "--client-port: 2379 is the peer port too"},
		{name: "peer port 0", args: boot("--discovery", token, "--peer-port", "0"), code: exitUsage, says: "--peer-port: 0 is not a port"},
		{name: "client port too high", args: boot("--discovery", token, "--client-port", "70000"), code: exitUsage, says: "--client-port: 70000 is not a port"},
		{name: "name with =", args: boot("--discovery", token, "--name", "a=b"), code: exitUsage, says: "--name: invalid member: name"},
		{name: "empty name", args: boot("--discovery", token, "--name", ""), code: exitUsage, says: "--name: invalid member: name"},
		{name: "bogus on-full", args: boot("--discovery", token, "--on-full", "bogus"), code: exitUsage, says: "must be exit, proxy or join"},
		{name: "zero timeout", args: boot("--discovery", token, "--timeout", "0s"), code: exitUsage, says: "--timeout: 0s must be positive"},
		{name: "negative peer wait", args: boot("--discovery", token, "--peer-wait", "-1s"), code: exitUsage, says: "--peer-wait: -1s must not be negative"},
		{name: "empty env file", args: boot("--discovery", token, "--env-file", ""), code: exitUsage, says: "--env-file: required"},
		{name: "advertise broadcast", args: boot("--discovery", token, "--advertise-address", "255.255.255.255"), code: exitUsage, says: "--advertise-address: 255.255.255.255 is the broadcast address"},
		{name: "advertise multicast", args: boot("--discovery", token, "--advertise-address", "224.0.0.1"), code: exitUsage, says: "--advertise-address: 224.0.0.1 is a multicast address"},
		{name: "advertise IPv6 multicast", args: boot("--discovery", token, "--advertise-address", "ff02::1"), code: exitUsage, says: "--advertise-address: ff02::1 is a multicast address"},
		{name: "advertise unspecified", args: boot("--discovery", token, "--advertise-address", "0.0.0.0"), code: exitUsage, says: "--advertise-address: 0.0.0.0 is the unspecified address"},
		{name: "advertise mapped broadcast", args: boot("--discovery", token, "--advertise-address", "::ffff:255.255.255.255"), code: exitUsage, says: "--advertise-address: 255.255.255.255 is the broadcast address"},
		{name: "advertise not an address", args: boot("--discovery", token, "--advertise-address", "eth0"), code: exitUsage, says: "neither an IP address nor a go-sockaddr template"},
		{name: "listen broadcast", args: boot("--discovery", token, "--listen-address", "255.255.255.255"), code: exitUsage, says: "--listen-address: 255.255.255.255 is the broadcast address"},
		{name: "listen multicast", args: boot("--discovery", token, "--listen-address", "224.0.0.1"), code: exitUsage, says: "--listen-address: 224.0.0.1 is a multicast address"},
		{name: "dns-ttl zero", args: withDNS("--dns-ttl", "0s"), code: exitUsage, says: "--dns-ttl: 0s: use 1s to 24h"},
		{name: "dns-ttl two days", args: withDNS("--dns-ttl", "48h"), code: exitUsage, says: "--dns-ttl: 48h0m0s: use 1s to 24h"},
		{name: "publish without zone", args: boot("--discovery", token, "--publish-server", "127.0.0.1:1", "--tsig-key-file", missing), code: exitUsage, says: "--publish-zone: required when publishing"},
		{name: "publish without key", args: boot("--discovery", token, "--publish-server", "127.0.0.1:1", "--publish-zone", "example.test"), code: exitUsage, says: "--tsig-key-file: required when publishing"},
		{name: "dns-check bogus", args: withDNS("--dns-check", "bogus"), code: exitUsage, says: "use error, warn or off"},
		{name: "srv-domain outside the zone", args: withDNS("--srv-domain", "other.test"), code: exitUsage, says: "is not inside the zone"},
		{name: "name not a DNS label", args: withDNS("--name", "a_b"), code: exitUsage, says: "the name becomes the DNS label"},
		{name: "srv-name not a DNS label", args: withDNS("--srv-name", "a.b"), code: exitUsage, says: "--srv-name"},
		{name: "srv size 0", args: boot("--discovery-srv", "example.test", "--size", "0"), code: exitUsage, says: "--size: 0: give the number of members"},
		{name: "srv output bogus", args: srv("--output", "bogus"), code: exitUsage, says: "use static, discovery (v2 token), discovery-token (v3 token) or discovery-srv"},
		{name: "srv empty cluster token", args: srv("--cluster-token", ""), code: exitUsage, says: "--cluster-token: must not be empty"},
		{name: "srv resolver by name", args: srv("--dns-resolver", "ns1.example.test"), code: exitUsage, says: "want IP or IP:PORT"},

		// token new, token show.
		{name: "token new stray", args: []string{"token", "new", "--endpoints", "http://127.0.0.1:1", "--size", "3", "stray"}, code: exitUsage, says: `unexpected argument ("stray")`},
		{name: "token new unknown flag", args: []string{"token", "new", "--endpoint", "http://127.0.0.1:1"}, code: exitUsage, says: `unknown flag ("--endpoint")`},
		{name: "token new size not a number", args: []string{"token", "new", "--endpoints", "http://127.0.0.1:1", "--size", "three"}, code: exitUsage, says: `--size is not a whole number ("three")`},
		{name: "token new size 0", args: []string{"token", "new", "--endpoints", "http://127.0.0.1:1", "--size", "0"}, code: exitUsage, says: "--size: 0: a cluster needs at least one member"},
		{name: "token new no endpoints", args: []string{"token", "new", "--size", "3"}, code: exitUsage, says: "--endpoints: give at least one"},
		{name: "token new endpoint not http", args: []string{"token", "new", "--endpoints", "ftp://127.0.0.1:1", "--size", "3"}, code: exitUsage, says: "is not an etcd client URL"},
		{name: "token new endpoint with a path", args: []string{"token", "new", "--endpoints", "http://127.0.0.1:1/v2/keys", "--size", "3"}, code: exitUsage, says: "is not an etcd client URL"},
		{name: "token new bad prefix", args: []string{"token", "new", "--endpoints", "http://127.0.0.1:1", "--size", "3", "--prefix", "/a?b"}, code: exitUsage, says: "--prefix"},
		{name: "token new bad EDA_SIZE", args: []string{"token", "new", "--endpoints", "http://127.0.0.1:1"}, env: map[string]string{"EDA_SIZE": "x"}, code: exitUsage, says: `EDA_SIZE is not a whole number ("x")`},
		{name: "token show without URL", args: []string{"token", "show"}, code: exitUsage, says: "URL missing"},
		{name: "token show two URLs", args: []string{"token", "show", token, token}, code: exitUsage, says: "unexpected argument"},
		{name: "token show unknown flag", args: []string{"token", "show", "--json", token}, code: exitUsage, says: `unknown flag ("--json")`},
		{name: "token show not a URL", args: []string{"token", "show", "discovery"}, code: exitUsage, says: "discovery URL"},
		{name: "token show URL with a query", args: []string{"token", "show", token + "?wait=true"}, code: exitUsage, says: "remove the query or fragment"},

		// token new --v3, --token, --ttl, --print; token show and delete of
		// v3 tokens; token delete.
		{name: "token new v3 with a prefix", args: v3new("--size", "3", "--prefix", "/x"), code: exitUsage, says: "--prefix goes with a v2 token only"},
		{name: "token new v3 size 0", args: v3new("--size", "0"), code: exitUsage, says: "--size: 0: a cluster needs at least one member"},
		{name: "token new v3 no endpoints", args: []string{"token", "new", "--v3", "--size", "3"}, code: exitUsage, says: "--endpoints: give at least one"},
		{name: "token new v3 endpoint without port", args: []string{"token", "new", "--v3", "--endpoints", "http://127.0.0.1", "--size", "3"}, code: exitUsage, says: `--endpoints: "http://127.0.0.1" is not an etcd client URL`},
		{name: "token new v3 endpoint with a path", args: []string{"token", "new", "--v3", "--endpoints", "http://127.0.0.1:1/v3", "--size", "3"}, code: exitUsage, says: "is not an etcd client URL"},
		{name: "token new token with a slash", args: v2new("--token", "a/b"), code: exitUsage, says: `--token: "a/b" is not one plain path segment`},
		{name: "token new v3 token ..", args: v3new("--size", "3", "--token", ".."), code: exitUsage, says: `--token: ".." is not one plain path segment`},
		{name: "token new v3 token with a space", args: v3new("--size", "3", "--token", "a b"), code: exitUsage, says: `--token: "a b" is not one plain path segment`},
		{name: "token new empty token", args: v3new("--size", "3", "--token", ""), code: exitUsage, says: "--token is empty"},
		{name: "token new empty EDA_TOKEN", args: v3new("--size", "3"), env: map[string]string{"EDA_TOKEN": ""}, code: exitUsage, says: "--token is empty"},
		{name: "token new negative ttl", args: v2new("--ttl", "-1s"), code: exitUsage, says: "--ttl: -1s: give whole seconds, at least 1s"},
		{name: "token new ttl under a second", args: v3new("--size", "3", "--ttl", "500ms"), code: exitUsage, says: "--ttl: 500ms: give whole seconds"},
		{name: "token new ttl not whole seconds", args: v3new("--size", "3", "--ttl", "1500ms"), code: exitUsage, says: "--ttl: 1.5s: give whole seconds"},
		{name: "token new ttl without unit", args: v3new("--size", "3", "--ttl", "5"), code: exitUsage, says: `--ttl is not a duration ("5")`},
		{name: "token new bad EDA_TTL", args: v3new("--size", "3"), env: map[string]string{"EDA_TTL": "-5s"}, code: exitUsage, says: "EDA_TTL (--ttl): -5s"},
		{name: "token new print json", args: v3new("--size", "3", "--print", "json"), code: exitUsage, says: `--print is not url or env ("json")`},
		{name: "token new print env, a path sh would expand", args: v2new("--print", "env", "--discovery-cacert", "/etc/ca$HOME.pem"), code: exitUsage, says: "cannot be written as env file lines"},
		{name: "token new password file without user", args: v3new("--size", "3", "--discovery-password-file", missing), code: exitUsage, says: "--discovery-user: a password file needs a user"},
		{name: "token new missing CA file", args: v3new("--size", "3", "--discovery-cacert", missing), code: exitUsage, says: "--discovery-cacert"},
		{name: "token show v3 without endpoints", args: []string{"token", "show", "--v3", "abc"}, code: exitUsage, says: "--v3 needs --endpoints"},
		{name: "token show endpoints without v3", args: []string{"token", "show", "--endpoints", "http://127.0.0.1:1", token}, code: exitUsage, says: "--endpoints goes with --v3"},
		{name: "token show v3 without token", args: []string{"token", "show", "--v3", "--endpoints", "http://127.0.0.1:1"}, code: exitUsage, says: "TOKEN missing"},
		{name: "token show v3 token with a slash", args: []string{"token", "show", "--v3", "--endpoints", "http://127.0.0.1:1", "a/b"}, code: exitUsage, says: `token "a/b" is not one plain path segment`},
		{name: "token show v3 bad endpoint", args: []string{"token", "show", "--v3", "--endpoints", "ftp://127.0.0.1:1", "abc"}, code: exitUsage, says: `--endpoints: "ftp://127.0.0.1:1" is not an etcd client URL`},
		{name: "token show a v3 token without --v3", args: []string{"token", "show", "abc"}, code: exitUsage, says: "for a v3 token, give --v3 --endpoints URL TOKEN"},
		{name: "token delete without URL", args: []string{"token", "delete"}, code: exitUsage, says: "URL missing"},
		{name: "token delete two URLs", args: []string{"token", "delete", token, token}, code: exitUsage, says: "unexpected argument"},
		{name: "token delete URL with a fragment", args: []string{"token", "delete", token + "#x"}, code: exitUsage, says: "remove the query or fragment"},
		{name: "token delete endpoints without v3", args: []string{"token", "delete", "--endpoints", "http://127.0.0.1:1", token}, code: exitUsage, says: "--endpoints goes with --v3"},
		{name: "token delete v3 token ..", args: []string{"token", "delete", "--v3", "--endpoints", "http://127.0.0.1:1", ".."}, code: exitUsage, says: `token ".." is not one plain path segment`},
		{name: "token delete v3 empty token", args: []string{"token", "delete", "--v3", "--endpoints", "http://127.0.0.1:1", ""}, code: exitUsage, says: "TOKEN is empty"},
		{name: "token delete force not a boolean", args: []string{"token", "delete", "--force=maybe", token}, code: exitUsage, says: `--force is not a boolean ("maybe")`},
		{name: "token delete v3 key without user", args: []string{"token", "delete", "--v3", "--endpoints", "http://127.0.0.1:1", "--discovery-cert", missing, "abc"}, code: exitUsage, says: "--discovery-cert: a client certificate and its key go together"},

		// withdraw.
		{name: "withdraw stray", args: withdraw(append(dns, "stray")...), code: exitUsage, says: `unexpected argument ("stray")`},
		{name: "withdraw unknown flag", args: withdraw("--discovery", token), code: exitUsage, says: `unknown flag ("--discovery")`},
		{name: "withdraw without server", args: withdraw(), code: exitUsage, says: "--publish-server: required"},
		{name: "withdraw without zone", args: withdraw("--publish-server", "127.0.0.1:1", "--tsig-key-file", missing), code: exitUsage, says: "--publish-zone: required"},
		{name: "withdraw bad scheme", args: withdraw(append(dns, "--scheme", "ftp")...), code: exitUsage, says: "must be http or https"},
		{name: "withdraw bad name", args: withdraw(append(dns, "--name", "a_b")...), code: exitUsage, says: "the name becomes the DNS label"},
		{name: "withdraw multicast address", args: withdraw(append(dns, "--advertise-address", "224.0.0.1")...), code: exitUsage, says: "--advertise-address: 224.0.0.1 is a multicast address"},
		{name: "withdraw bad dns-ttl", args: withdraw(append(dns, "--dns-ttl", "1")...), code: exitUsage, says: `--dns-ttl is not a duration ("1")`},

		// address.
		{name: "address stray", args: []string{"address", "stray"}, code: exitUsage, says: `unexpected argument ("stray")`},
		{name: "address unknown flag", args: []string{"address", "--listen-address", "127.0.0.1"}, code: exitUsage, says: `unknown flag ("--listen-address")`},
		{name: "address not a template", args: []string{"address", "--advertise-address", "eth0"}, code: exitUsage, says: "neither an IP address nor a go-sockaddr template"},
		{name: "address bad EDA_ADVERTISE_ADDRESS", args: []string{"address"}, env: map[string]string{"EDA_ADVERTISE_ADDRESS": "eth0"}, code: exitUsage, says: `"eth0" is neither`},

		// lookup.
		{name: "lookup stray", args: []string{"lookup", "--srv-domain", "example.test", "--dns-resolver", "127.0.0.1:1", "stray"}, code: exitUsage, says: `unexpected argument ("stray")`},
		{name: "lookup unknown flag", args: []string{"lookup", "--srv-domian", "example.test"}, code: exitUsage, says: `unknown flag ("--srv-domian")`},
		{name: "lookup without domain", args: []string{"lookup", "--dns-resolver", "127.0.0.1:1"}, code: exitUsage, says: "--srv-domain is required"},
		{name: "lookup timeout without unit", args: []string{"lookup", "--srv-domain", "example.test", "--timeout", "1"}, code: exitUsage, says: `--timeout is not a duration ("1")`},
		{name: "lookup zero timeout", args: []string{"lookup", "--srv-domain", "example.test", "--dns-resolver", "127.0.0.1:1", "--timeout", "0s"}, code: exitUsage, says: "--timeout must be positive"},
		{name: "lookup bad scheme", args: []string{"lookup", "--srv-domain", "example.test", "--dns-resolver", "127.0.0.1:1", "--scheme", "ftp"}, code: exitUsage, says: `--scheme "ftp": use http or https`},
		{name: "lookup resolver by name", args: []string{"lookup", "--srv-domain", "example.test", "--dns-resolver", "ns1.example.test"}, code: exitUsage, says: "want IP or IP:PORT"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		key := strings.Join(tc.args, "\x00") + "\x00" + strings.Join(environ(tc.env), "\x00")
		if seen[key] {
			t.Fatalf("%s: the same input twice", tc.name)
		}
		seen[key] = true
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := run(ctx, tc.args, &stdout, &stderr, envOf(tc.env))
			if code != tc.code {
				t.Fatalf("exit %d; want %d\nstderr: %s", code, tc.code, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasSuffix(stderr.String(), "\n") {
				t.Errorf("stderr holds %d lines; want one message:\n%s", len(lines), stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("stderr lacks %q:\n%s", tc.says, stderr.String())
			}
			// Messages of the command line are "etcd-discovery-agent
			// CMD: ..."; those of bootstrap's and withdraw's configuration
			// come through the log, one ERROR record.
			if line := lines[0]; !strings.HasPrefix(line, "etcd-discovery-agent") && !strings.Contains(line, "level=ERROR") {
				t.Errorf("message neither starts with the program's name nor is a log record: %s", line)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q; want nothing", stdout.String())
			}
			for _, p := range []string{envFile, filepath.Dir(envFile), stateDir, dataDir} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Fatalf("a bad input left %s behind (stat: %v)", p, err)
				}
			}
		})
	}
	if len(tests) < 40 {
		t.Errorf("only %d bad inputs", len(tests))
	}
}

// An --etcd-binary that runs but prints no etcd version is refused for
// --on-full=proxy, as is one that fails; the version check is not skipped.
func TestProxyNeedsTheEtcdVersion(t *testing.T) {
	testenv.SkipIfShort(t) // it starts the programs given as --etcd-binary
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	envFile := filepath.Join(dir, "etcd.env")
	for _, tc := range []struct{ name, bin, says string }{
		{"prints no version", script("quiet", "echo hello"), "printed no 'etcd Version:' line"},
		{"fails", script("failing", "exit 3"), "exit status 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"bootstrap", "--name", "a", "--advertise-address", "127.0.0.1",
				"--discovery", "http://127.0.0.1:1/v2/keys/discovery/t", "--env-file", envFile, "--state-dir", filepath.Join(dir, "state"),
				"--on-full", "proxy", "--etcd-binary", tc.bin}, &stdout, &stderr, noEnv)
			if code != exitUsage || !strings.Contains(stderr.String(), "--etcd-binary: cannot ask") || !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("exit %d; want %d naming the binary and %q:\n%s", code, exitUsage, tc.says, stderr.String())
			}
			if _, err := os.Stat(envFile); !os.IsNotExist(err) {
				t.Errorf("env file written (stat: %v)", err)
			}
		})
	}
}

// COMMAND --help (and -h, and help COMMAND) prints the usage once, on
// stdout, and exits 0.
func TestHelpOnceOnStdout(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		start string
	}{
		{[]string{"--help"}, "etcd-discovery-agent: bring up"},
		{[]string{"-h"}, "etcd-discovery-agent: bring up"},
		{[]string{"help"}, "etcd-discovery-agent: bring up"},
		{[]string{"help", "help"}, "etcd-discovery-agent: bring up"},
		{[]string{"bootstrap", "--help"}, "Usage: etcd-discovery-agent bootstrap"},
		{[]string{"bootstrap", "-h"}, "Usage: etcd-discovery-agent bootstrap"},
		{[]string{"bootstrap", "--discovery", "x", "--help", "--bogus"}, "Usage: etcd-discovery-agent bootstrap"},
		{[]string{"help", "bootstrap"}, "Usage: etcd-discovery-agent bootstrap"},
		{[]string{"token", "--help"}, "Usage:\n  etcd-discovery-agent token new"},
		{[]string{"token", "-h"}, "Usage:\n  etcd-discovery-agent token new"},
		{[]string{"help", "token"}, "Usage:\n  etcd-discovery-agent token new"},
		{[]string{"token", "new", "--help"}, "Usage: etcd-discovery-agent token new"},
		{[]string{"token", "new", "-h"}, "Usage: etcd-discovery-agent token new"},
		{[]string{"help", "token", "new"}, "Usage: etcd-discovery-agent token new"},
		{[]string{"token", "show", "--help"}, "Usage: etcd-discovery-agent token show URL"},
		{[]string{"token", "show", "-h"}, "Usage: etcd-discovery-agent token show URL"},
		{[]string{"token", "delete", "--help"}, "Usage: etcd-discovery-agent token delete [--force] URL"},
		{[]string{"token", "help", "delete"}, "Usage: etcd-discovery-agent token delete [--force] URL"},
		{[]string{"help", "token", "delete"}, "Usage: etcd-discovery-agent token delete [--force] URL"},
		{[]string{"token", "new", "--v3", "--help"}, "Usage: etcd-discovery-agent token new [--v3]"},
		{[]string{"withdraw", "--help"}, "Usage: etcd-discovery-agent withdraw"},
		{[]string{"withdraw", "-h"}, "Usage: etcd-discovery-agent withdraw"},
		{[]string{"address", "--help"}, "Usage: etcd-discovery-agent address"},
		{[]string{"address", "-h"}, "Usage: etcd-discovery-agent address"},
		{[]string{"lookup", "--help"}, "Usage: etcd-discovery-agent lookup"},
		{[]string{"lookup", "-h"}, "Usage: etcd-discovery-agent lookup"},
		{[]string{"version", "--help"}, "Usage: etcd-discovery-agent version"},
		{[]string{"version", "-h"}, "Usage: etcd-discovery-agent version"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr, noEnv)
			if code != exitOK || stderr.Len() > 0 {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tc.start) {
				t.Errorf("stdout does not start with %q:\n%s", tc.start, stdout.String())
			}
			if n := strings.Count(stdout.String(), "Usage:"); n != 1 {
				t.Errorf("usage printed %d times:\n%s", n, stdout.String())
			}
		})
	}
}
