package envfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readBack is the sh script that sources the file given as $1 the way a
// unit's ExecStart=/bin/sh -c 'set -a; . FILE; exec etcd' does, then prints
// the variables named by the other arguments, each followed by a NUL (no
// value Render accepts holds one).
const readBack = `set -a; . "$1" || exit 9; set +a; shift; for v; do eval "printf '%s\0' \"\${$v}\""; done`

// FuzzRender: whatever Render accepts, POSIX sh reads back exactly, and so
// does Parse; whatever it refuses, it refuses with ErrUnsafe and no output.
// Under -short, which is for unit tests, only Parse reads it back.
//
// The variable names the fuzzer makes get a V_ prefix: sh gives some names
// meaning of its own (dash refuses to source OPTIND=x, "Illegal number"),
// which Render does not know about; the agent writes only ETCD_* names.
func FuzzRender(f *testing.F) {
	// testenv.SkipIfShort and SkipUnlessCI, spelled out: testenv imports
	// this package.
	sh := ""
	if !testing.Short() {
		var err error
		sh, err = exec.LookPath("sh")
		if err != nil && os.Getenv("CI") != "" {
			f.Fatalf("CI is set, so this missing part fails instead of skipping: no sh: %v", err)
		}
		if err != nil {
			f.Skipf("no sh: %v", err)
		}
	}
	file := filepath.Join(f.TempDir(), "env")
	for _, s := range [][5]string{
		{"NAME", "etcd-1", "INITIAL_CLUSTER", "a=http://10.0.0.1:2380,b=https://[2001:db8::1]:2380", "Written by a test."},
		{"DATA_DIR", "/var/lib/etcd with space", "TEMPLATE", `{{ GetInterfaceIP "eth0" }}`, "comment ; with # marks"},
		{"A", "it's", "B", "a;b & c | d > e", "$(reboot) `id`"},
		{"A", "$HOME", "B", "x", ""},
		{"A", "x\nB=y", "B", "y", ""},
		{"A", `a\b`, "B", "\"", ""},
		{"A", "tab\there", "B", "\x1b[2J\u2028é", "ünïcode"},
		{"A", "  spaces  ", "B", "#hash", "\x00"},
		{"A", "x", "A", "y", ""},
		{"a", "x", "B", "", ""},
		{"A", "x", "B", "a b\xff", "c\rd"},
		{"A", "~/x", "B", "a:~/x", "*"},
		{"SPACES", "two  spaces and #hash", "PERCENT", "50%+@:,./-_=", "comment ; with # marks"},
		{"TEMPLATE", "{{ GetPrivateIP }}", "SEMI", "a;b & c | d > e", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	f.Fuzz(func(t *testing.T, name1, value1, name2, value2, comment string) {
		vars := []Var{{"V_" + name1, value1}, {"V_" + name2, value2}}
		data, err := Render([]string{comment}, vars)
		if err != nil {
			if !errors.Is(err, ErrUnsafe) || data != nil {
				t.Fatalf("Render(%q, %q) = %q, %v; want nothing and ErrUnsafe", comment, vars, data, err)
			}
			return
		}
		parsed, err := Parse(data)
		if err != nil || !slices.Equal(parsed, vars) {
			t.Fatalf("Parse(%q) = %q, %v; want %q", data, parsed, err, vars)
		}
		if sh == "" {
			return
		}
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, sh, "-c", readBack, "sh", file, vars[0].Name, vars[1].Name)
		cmd.Env = []string{}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("sh on %q: %v\n%s", data, err, stderr.String())
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if want := []string{value1, value2}; !slices.Equal(got, want) {
			t.Fatalf("sh read %q from\n%s\nwant %q", got, data, want)
		}
	})
}
