package envfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRenderQuotesOnlyWhenNeeded(t *testing.T) {
	got, err := Render([]string{"made by a test"}, []Var{
		{"ETCD_NAME", "etcd-1"},
		{"ETCD_INITIAL_CLUSTER", "a=http://10.0.0.1:2380,b=https://[2001:db8::1]:2380"},
		{"ETCD_DATA_DIR", "/var/lib/etcd with space"},
		{"TEMPLATE", "{{ GetPrivateIP }}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `# made by a test
ETCD_NAME=etcd-1
ETCD_INITIAL_CLUSTER=a=http://10.0.0.1:2380,b=https://[2001:db8::1]:2380
ETCD_DATA_DIR="/var/lib/etcd with space"
TEMPLATE="{{ GetPrivateIP }}"
`
	if string(got) != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}
}

func TestRenderRefusesUnsafeContent(t *testing.T) {
	tests := []struct {
		name     string
		comments []string
		vars     []Var
	}{
		{"newline in value", nil, []Var{{"A", "x\nB=y"}}},
		{"dollar", nil, []Var{{"A", "$HOME"}}},
		{"backquote", nil, []Var{{"A", "`id`"}}},
		{"double quote", nil, []Var{{"A", `a"b`}}},
		{"backslash", nil, []Var{{"A", `a\b`}}},
		{"empty value", nil, []Var{{"A", ""}}},
		{"lower-case name", nil, []Var{{"a", "x"}}},
		{"export", nil, []Var{{"export A", "x"}}},
		{"duplicate", nil, []Var{{"A", "x"}, {"A", "y"}}},
		{"comment with newline", []string{"a\nB=c"}, nil},
		{"not UTF-8", nil, []Var{{"A", "a b\xff"}}},
	}
	for _, tc := range tests {
		if out, err := Render(tc.comments, tc.vars); !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: Render = %q, %v; want ErrUnsafe", tc.name, out, err)
		}
	}
}

func TestParseRefusesOutsideTheSubset(t *testing.T) {
	for _, in := range []string{
		"A=x", // no final newline
		"export A=x\n",
		"A = x\n",
		"A=x #c\n",
		"A=$HOME\n",
		"A=\"a\\\"b\"\n",
		"; comment\n",
		"A=x\nA=y\n",
		"A=x\r\n",
		"A='it's'\n",
	} {
		if vars, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = %v; want an error", in, vars)
		}
	}
}

func TestParseTakesSingleQuotes(t *testing.T) {
	vars, err := Parse([]byte("A='{{ GetInterfaceIP \"eth0\" }}'\n"))
	if err != nil || len(vars) != 1 || vars[0].Value != `{{ GetInterfaceIP "eth0" }}` {
		t.Errorf("Parse = %v, %v", vars, err)
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "etcd.env")
	if err := WriteFile(path, []byte("A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("A=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if !bytes.Equal(b, []byte("A=2\n")) || fi.Mode().Perm() != 0o644 {
		t.Errorf("file = %q mode %v; want A=2 and 0644", b, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temp files)", len(entries))
	}

	// A target that is a directory is refused and left alone.
	if err := os.Mkdir(filepath.Join(dir, "isdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "isdir"), []byte("A=1\n"), 0o644); err == nil {
		t.Error("WriteFile over a directory succeeded")
	}
	// A parent that is a file fails without leaving anything behind.
	if err := WriteFile(filepath.Join(path, "x"), []byte("A=1\n"), 0o644); err == nil {
		t.Error("WriteFile under a file succeeded")
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, []byte("A=2\n")) {
		t.Errorf("failed writes changed the old file: %q", b)
	}
}
