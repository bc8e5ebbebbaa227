package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

func envOf(m map[string]string) lookupEnv {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// lookup against a real named, records inserted with nsupdate: what it
// prints, what it warns about, and its exit codes.
func TestLookup(t *testing.T) {
	n := testenv.Named(t, "example.test.")
	n.MustUpdate(t,
		"update add infra1.example.test. 60 A 127.0.0.21",
		"update add infra2.example.test. 60 A 127.0.0.22",
		"update add infra3.example.test. 60 A 127.0.0.23",
		"update add a.example.test. 60 A 127.0.0.31",
		"update add a.sub.example.test. 60 A 127.0.0.32",
		"update add _etcd-server._tcp.example.test. 60 SRV 0 0 2380 infra1.example.test.",
		"update add _etcd-server._tcp.example.test. 60 SRV 1 0 2380 infra2.example.test.",
		"update add _etcd-server._tcp.example.test. 60 SRV 2 0 2380 infra3.example.test.",
		"update add _etcd-client._tcp.example.test. 60 SRV 0 0 2379 infra1.example.test.",
		"update add _etcd-client._tcp.example.test. 60 SRV 1 0 2379 infra2.example.test.",
		"update add _etcd-server-ssl-prod._tcp.example.test. 60 SRV 0 0 2380 a.example.test.",
		"update add _etcd-server-prod._tcp.example.test. 60 SRV 0 0 2380 a.example.test.",
		"update add _etcd-server-prod._tcp.example.test. 60 SRV 1 0 2380 a.sub.example.test.",
		"update add _etcd-server-ghost._tcp.example.test. 60 SRV 0 0 2380 ghost.example.test.",
		"update add _etcd-server-ghost._tcp.example.test. 60 SRV 1 0 2380 infra1.example.test.",
	)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // a server that never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	silent := pc.LocalAddr().String()
	dns := "--dns-resolver=" + n.Addr
	const (
		infra1 = "http://infra1.example.test:2380"
		infra2 = "http://infra2.example.test:2380"
		infra3 = "http://infra3.example.test:2380"
	)

	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     string   // exact, when code is 0
		stderr     []string // substrings
		maxSeconds float64
	}{
		{
			name: "names from the targets",
			args: []string{"--srv-domain", "example.test", dns},
			// "infra1=" + infra1 + ...
			stdout: "infra1=" + infra1 + ",infra2=" + infra2 + ",infra3=" + infra3 + "\n",
		},
		{
			name:   "etcd's placeholder names",
			args:   []string{"--srv-domain", "example.test.", dns, "--placeholder-names"},
			stdout: "0=" + infra1 + ",1=" + infra2 + ",2=" + infra3 + "\n",
		},
		{
			name:   "as a member",
			args:   []string{"--srv-domain", "example.test", dns, "--initial-advertise-peer-urls", "http://127.0.0.22:2380", "--name", "infra2"},
			stdout: "0=" + infra1 + ",infra2=" + infra2 + ",1=" + infra3 + "\n",
		},
		{
			name:   "as a host that is not among the records",
			args:   []string{"--srv-domain", "example.test", dns, "--initial-advertise-peer-urls", "http://127.0.0.99:2380", "--name", "infra9"},
			code:   exitFailure,
			stderr: []string{`cannot find local etcd member "infra9" in SRV records of example.test`, "127.0.0.99:2380", infra1 + " (127.0.0.21:2380)"},
		},
		{
			name:   "client URLs keep the trailing dot",
			args:   []string{"--srv-domain", "example.test", dns, "--client"},
			stdout: "http://infra1.example.test.:2379\nhttp://infra2.example.test.:2379\n",
		},
		{
			name: "https first; ambiguous names made unique",
			args: []string{"--srv-domain", "example.test", "--srv-name", "prod", dns},
			stdout: "https-a.example.test-2380=https://a.example.test:2380," +
				"http-a.example.test-2380=http://a.example.test:2380," +
				"a.sub.example.test=http://a.sub.example.test:2380\n",
		},
		{
			name:   "one scheme",
			args:   []string{"--srv-domain", "example.test", "--srv-name", "prod", dns, "--scheme", "http"},
			stdout: "a.example.test=http://a.example.test:2380,a.sub.example.test=http://a.sub.example.test:2380\n",
		},
		{
			name:   "an unresolvable target is skipped with a warning",
			args:   []string{"--srv-domain", "example.test", "--srv-name", "ghost", dns},
			stdout: "infra1=" + infra1 + "\n",
			stderr: []string{"warning: skipped http://ghost.example.test:2380, as etcd would: lookup ghost.example.test. A on " + n.Addr + ": NXDOMAIN"},
		},
		{
			name: "from the environment",
			args: nil,
			env:  map[string]string{"EDA_SRV_DOMAIN": "example.test", "EDA_DNS_RESOLVER": n.Addr, "EDA_PLACEHOLDER_NAMES": "true"},
			// as etcd's placeholders
			stdout: "0=" + infra1 + ",1=" + infra2 + ",2=" + infra3 + "\n",
		},
		{
			name: "no records",
			args: []string{"--srv-domain", "example.test", "--srv-name", "none", dns},
			code: exitFailure,
			stderr: []string{
				"lookup _etcd-server-ssl-none._tcp.example.test. SRV on " + n.Addr + ": NXDOMAIN",
				"lookup _etcd-server-none._tcp.example.test. SRV on " + n.Addr + ": NXDOMAIN",
			},
		},
		{
			name:   "no client records",
			args:   []string{"--srv-domain", "example.test", "--srv-name", "none", dns, "--client"},
			code:   exitFailure,
			stderr: []string{"lookup _etcd-client-ssl-none._tcp.example.test. SRV on " + n.Addr + ": NXDOMAIN"},
		},
		{
			name: "a server that does not answer",
			args: []string{"--srv-domain", "example.test", "--dns-resolver", silent, "--timeout", "500ms"},
			code: exitFailure,
			// The deadline ends the query either through the context or
			// through the socket's read deadline; both name query and server.
			stderr:     []string{"lookup _etcd-server-ssl._tcp.example.test. SRV on " + silent + ": "},
			maxSeconds: 3,
		},
		{
			name:       "a silent server, then named",
			args:       []string{"--srv-domain", "example.test", "--dns-resolver", silent + "," + n.Addr, "--placeholder-names"},
			stdout:     "0=" + infra1 + ",1=" + infra2 + ",2=" + infra3 + "\n",
			maxSeconds: 5,
		},
		{name: "no domain", args: []string{dns}, code: exitUsage, stderr: []string{"--srv-domain is required"}},
		{name: "bad scheme", args: []string{"--srv-domain", "x.test", dns, "--scheme", "ftp"}, code: exitUsage, stderr: []string{`--scheme "ftp"`}},
		{name: "resolver by name", args: []string{"--srv-domain", "x.test", "--dns-resolver", "ns1.example.test"}, code: exitUsage, stderr: []string{`--dns-resolver "ns1.example.test": want IP or IP:PORT`}},
		{name: "client and placeholders", args: []string{"--srv-domain", "x.test", dns, "--client", "--placeholder-names"}, code: exitUsage},
		{name: "member view and scheme", args: []string{"--srv-domain", "x.test", dns, "--initial-advertise-peer-urls", "http://127.0.0.1:2380", "--scheme", "http"}, code: exitUsage},
		{name: "extra argument", args: []string{"--srv-domain", "x.test", dns, "extra"}, code: exitUsage},
		{name: "unknown flag", args: []string{"--srv-domian", "x.test"}, code: exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			code := run(ctx, append([]string{"lookup"}, tc.args...), &stdout, &stderr, envOf(tc.env))
			took := time.Since(start)
			if code != tc.code {
				t.Fatalf("exit %d; want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if tc.code == exitOK && stdout.String() != tc.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tc.stdout)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tc.code == exitOK && len(tc.stderr) == 0 && stderr.Len() > 0 {
				t.Errorf("unexpected stderr: %s", stderr.String())
			}
			if tc.maxSeconds > 0 && took.Seconds() > tc.maxSeconds {
				t.Errorf("took %v; want at most %gs", took, tc.maxSeconds)
			}
		})
	}
}

// --help explains the naming choice and the exit codes; the command list
// mentions lookup.
func TestLookupHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"lookup", "--help"}, &out, &errOut, noEnv); code != exitOK {
		t.Fatalf("lookup --help: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"--srv-domain", "--dns-resolver", "--placeholder-names", "first label", "trailing dot", "Exit codes:", "1  DNS failure", "EDA_"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lookup --help lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	run(context.Background(), []string{"help"}, &out, &errOut, noEnv)
	if !strings.Contains(out.String(), "etcd-discovery-agent lookup [flags]") {
		t.Errorf("usage lacks the lookup command:\n%s", out.String())
	}
}
