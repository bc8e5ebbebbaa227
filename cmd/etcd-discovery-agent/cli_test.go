package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

func noEnv(string) (string, bool) { return "", false }

// --help documents every flag and the exit codes, and the README's flag
// table lists exactly the flags the binary has.
func TestHelpAndREADMEDocumentEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"bootstrap", "--help"}, &out, &errOut, noEnv); code != exitOK {
		t.Fatalf("bootstrap --help: exit %d: %s", code, errOut.String())
	}
	help := out.String()
	for _, want := range []string{"Exit codes:", "3  the token is full", "EDA_"} {
		if !strings.Contains(help, want) {
			t.Errorf("bootstrap --help lacks %q:\n%s", want, help)
		}
	}
	flags := regexp.MustCompile(`(?m)^\s+--([a-z-]+)`).FindAllStringSubmatch(help, -1)
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in --help:\n%s", len(flags), help)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `--([a-z-]+)` \\|").FindAllStringSubmatch(string(readme), -1)
	inREADME := map[string]bool{}
	for _, r := range rows {
		inREADME[r[1]] = true
	}
	for _, f := range flags {
		if !inREADME[f[1]] {
			t.Errorf("README's flag table lacks --%s", f[1])
		}
		delete(inREADME, f[1])
	}
	for f := range inREADME {
		t.Errorf("README's flag table lists --%s, which bootstrap does not have", f)
	}
	for code := exitOK; code <= exitAccess; code++ {
		if !regexp.MustCompile(`(?m)^\| ` + string(rune('0'+code)) + ` \|`).Match(readme) {
			t.Errorf("README's exit code table lacks %d", code)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &out, noEnv); code != exitOK || !strings.HasPrefix(out.String(), "etcd-discovery-agent ") {
		t.Errorf("version: exit %d %q", code, out.String())
	}
}
