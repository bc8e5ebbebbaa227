package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/etcdv2"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// maxTokenLine bounds a line of token show: the number, the key, the value
// and the problem, each at most agent.QuoteMax, and the words around them.
const maxTokenLine = 3*agent.QuoteMax + 100

// checkTokenOutput asserts what token show promises whatever the registry
// holds: UTF-8 without control characters but newlines, made only of
// printable characters, no line longer than maxTokenLine, and one line per
// registration after the three header lines (then the malformed count).
func checkTokenOutput(t *testing.T, out string, info *agent.TokenInfo, bad int) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("output is not UTF-8: %q", out)
	}
	for _, r := range out {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Fatalf("output holds %U:\n%q", r, out)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := 3 + len(info.Entries)
	if bad > 0 {
		want++
	}
	if len(lines) != want || !strings.HasSuffix(out, "\n") {
		t.Fatalf("%d lines for %d registrations (%d malformed); want %d:\n%s", len(lines), len(info.Entries), bad, want, out)
	}
	for _, l := range lines {
		if len(l) > maxTokenLine {
			t.Fatalf("a line of %d bytes; want at most %d", len(l), maxTokenLine)
		}
	}
}

func TestPrintToken(t *testing.T) {
	infra1 := &agent.Member{Name: "infra1", PeerURLs: []string{"http://10.0.0.1:2380"}}
	info := &agent.TokenInfo{Token: "http://10.0.0.1:2379/v2/keys/discovery/abc", Size: 1, Entries: []agent.TokenEntry{
		{Entry: agent.Entry{Key: "8e9e05c52164694d", Value: "infra1=http://10.0.0.1:2380", Created: 7}, Member: infra1, InCluster: true},
		{Entry: agent.Entry{Key: "\x1b[2J\x1b[H", Value: "evil=http://10.0.0.9:2380\nregistered: 0", Created: 8}, Problem: "bad\rline"},
		{Entry: agent.Entry{Key: "big", Value: strings.Repeat("x", 1<<20), Created: 9}, Problem: strings.Repeat("p", 1<<20)},
	}}
	var out bytes.Buffer
	bad := printToken(&out, info)
	if bad != 2 {
		t.Errorf("printToken counted %d malformed; want 2", bad)
	}
	checkTokenOutput(t, out.String(), info, bad)
	for _, want := range []string{
		"token: http://10.0.0.1:2379/v2/keys/discovery/abc\nsize:  1\nregistered: 3\n",
		`  1  "8e9e05c52164694d"  "infra1=http://10.0.0.1:2380"               index=7  member` + "\n",
		`  2  "\x1b[2J\x1b[H"`,
		`"evil=http://10.0.0.9:2380\nregistered: 0"`,
		`extra (does not count), MALFORMED: "bad\rline"`,
		`"... (1048576 bytes)  index=9`,
		"2 malformed registration(s)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// FuzzPrintToken: whatever bytes a registry's keys, values and the problems
// found in them hold, token show prints one safe, bounded line per entry.
func FuzzPrintToken(f *testing.F) {
	f.Add("8e9e05c52164694d", "infra1=http://10.0.0.1:2380", "", 3, uint64(7), true)
	f.Add("\x1b[2J", "a=http://10.0.0.1:2380\nregistered: 0", "bad\r\nline", 1, uint64(1<<63), false)
	f.Add("\xff\xfe", "\u202egnp.exe", "\x00\x07\x08\u2028", -1, uint64(0), true)
	f.Add(strings.Repeat("k\x01", 300), strings.Repeat("é", 400), strings.Repeat("\x9b", 500), 0, uint64(1), false)
	f.Fuzz(func(t *testing.T, key, value, problem string, size int, index uint64, inCluster bool) {
		infra1 := &agent.Member{Name: "infra1", PeerURLs: []string{"http://10.0.0.1:2380"}}
		var member *agent.Member
		if inCluster {
			member = infra1
		}
		info := &agent.TokenInfo{Token: "http://127.0.0.1:2379/v2/keys/discovery/" + key, Size: size, Entries: []agent.TokenEntry{
			{Entry: agent.Entry{Key: key, Value: value, Created: index}, Member: member, Problem: problem, InCluster: inCluster},
			{Entry: agent.Entry{Key: value, Value: key, Created: index + 1}, Problem: key},
			{Entry: agent.Entry{Key: "8e9e05c52164694d", Value: "infra1=http://10.0.0.1:2380", Created: 1}, Member: infra1, InCluster: true},
		}}
		var out bytes.Buffer
		bad := printToken(&out, info)
		want := 0
		for _, e := range info.Entries {
			if e.Member == nil {
				want++
			}
		}
		if bad != want {
			t.Fatalf("printToken counted %d malformed; want %d", bad, want)
		}
		checkTokenOutput(t, out.String(), info, bad)
	})
}

// token show on a real registry holding keys and values a misbehaving host
// wrote: escape sequences and newlines are shown escaped, a huge value is
// cut, and the exit code says the token holds malformed entries.
func TestTokenShowEscapesRegistryData(t *testing.T) {
	testenv.SkipIfShort(t)
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	valid := agent.FormatID(agent.MemberID([]string{"http://127.0.0.1:2380"}, discovery))
	putRaw(t, discovery, valid, "infra1=http://127.0.0.1:2380")
	putRaw(t, discovery, url.PathEscape("\x1b[2J\x1b[Hforged"), "x=http://127.0.0.9:2380")
	putRaw(t, discovery, "newline", "evil=http://127.0.0.9:2380\nregistered: 0")
	putRaw(t, discovery, "huge", strings.Repeat("v", 1<<20))

	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, []string{"token", "show", discovery}, &stdout, &stderr, noEnv)
	if code != exitRegistryData {
		t.Fatalf("exit %d; want %d (malformed entries)\nstdout: %s\nstderr: %s", code, exitRegistryData, stdout.String(), stderr.String())
	}
	out := stdout.String()
	reg, err := etcdv2.New(discovery, agent.Access{})
	testenv.Must(t, err, "registry")
	info, err := agent.ShowToken(ctx, reg)
	testenv.Must(t, err, "read token")
	checkTokenOutput(t, out, info, 3)
	for _, want := range []string{
		"size:  2\nregistered: 4\n",
		`"infra1=http://127.0.0.1:2380"`,
		`"\x1b[2J\x1b[Hforged"`,
		`"evil=http://127.0.0.9:2380\nregistered: 0"`,
		`"... (1048576 bytes)`,
		"3 malformed registration(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("token show lacks %q:\n%s", want, out)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// A registry value of 1 MB that bootstrap refuses is named in its one log
// line, escaped and cut, not echoed whole (it once made a 4 MB line).
func TestHugeRegistryValueIsCutInTheLog(t *testing.T) {
	testenv.SkipIfShort(t)
	registry, _ := testenv.Registry(t)
	discovery := newToken(t, registry, 2)
	putRaw(t, discovery, "badc0ffee", "evil=http://127.0.0.9:2380/\x1b[2J"+strings.Repeat("x", 1<<20))
	h := testenv.Hosts(t, "q", 1)[0]

	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, testenv.AgentArgs(h, discovery, "--timeout", "30s"), &stdout, &stderr, noEnv)
	if code != exitRegistryData {
		t.Fatalf("exit %d; want %d\nstderr: %.3000s", code, exitRegistryData, stderr.String())
	}
	var failed string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			failed = l
		}
		if len(l) > 4096 {
			t.Errorf("a log line of %d bytes: %.300s...", len(l), l)
		}
	}
	for _, want := range []string{"badc0ffee", `\\x1b[2J`, "... (1048607 bytes)"} {
		if !strings.Contains(failed, want) {
			t.Errorf("the error lacks %q: %s", want, failed)
		}
	}
	noEnvFile(t, h)
}

// Errors printed without a log are one line, escaped, and bounded.
func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New(`configuration: --size 0: a cluster needs at least one member`), `configuration: --size 0: a cluster needs at least one member`},
		{errors.Join(errors.New("http://127.0.0.1:1: refused"), errors.New("the endpoint has no v2 keys API")), "http://127.0.0.1:1: refused; the endpoint has no v2 keys API"},
		{errors.New("registry answered 400: \x1b[2Jforged"), `"registry answered 400: \x1b[2Jforged"`},
		{errors.New("size holds " + strings.Repeat("9", 5000)), `"size holds ` + strings.Repeat("9", agent.QuoteShown-len("size holds ")) + `"... (5011 bytes)`},
	} {
		if got := errorText(tc.err.Error()); got != tc.want {
			t.Errorf("errorText(%q) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
