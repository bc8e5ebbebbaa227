package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BuildEtcd builds etcd at version (e.g. "v3.7.3") from the Go module proxy,
// through a wrapper module around etcdmain.Main, and returns the binary's
// path. Debian ships only 3.4; this is how the tests reach 3.5 to 3.7. It
// skips under -short, since the first build downloads etcd's modules.
func BuildEtcd(t testing.TB, version string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("building etcd %s from the module proxy is skipped under -short", version)
	}
	dir := t.TempDir()
	main := "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"mod", "init", "etcdwrapper"},
		{"get", "go.etcd.io/etcd/server/v3@" + version},
		{"mod", "tidy"},
		{"build", "-o", "etcd", "."},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build etcd %s: go %v: %v\n%s", version, args, err, out)
		}
	}
	return filepath.Join(dir, "etcd")
}
