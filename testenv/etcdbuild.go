package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// The etcd versions the version matrix runs, built from the Go module
// proxy (Debian ships only 3.4).
const (
	Etcd35 = "v3.5.35"
	Etcd36 = "v3.6.16"
	Etcd37 = "v3.7.3"
)

var etcdVersionRE = regexp.MustCompile(`^v3\.\d+\.\d+$`)

// BuildEtcd returns an etcd binary of version (e.g. "v3.7.3"), built from
// the Go module proxy through a wrapper module around etcdmain.Main, so it
// stays out of the agent's go.mod and binary. Builds are cached between
// runs (ETCD_BUILD_CACHE, default a directory in the user's cache dir) and
// made once at a time across the test processes of one run (a file lock).
// It skips under -short.
func BuildEtcd(t testing.TB, version string) string {
	t.Helper()
	SkipIfShort(t)
	bin, err := buildEtcd(version)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func etcdBuildCache() (string, error) {
	if d := os.Getenv("ETCD_BUILD_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "etcd-discovery-agent", "etcd"), nil
}

func buildEtcd(version string) (string, error) {
	if !etcdVersionRE.MatchString(version) {
		return "", fmt.Errorf("etcd version %q: want v3.MINOR.PATCH", version)
	}
	cache, err := etcdBuildCache()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, version)
	bin := filepath.Join(dir, "etcd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if out, err := exec.Command(bin, "--version").Output(); err == nil && regexp.MustCompile(`etcd Version: `+regexp.QuoteMeta(version[1:])+`\b`).Match(out) {
		return bin, nil
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	main := "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n"
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(main), 0o644); err != nil {
		return "", err
	}
	os.Remove(filepath.Join(src, "go.mod"))
	os.Remove(filepath.Join(src, "go.sum"))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"mod", "init", "etcdwrapper"},
		{"get", "go.etcd.io/etcd/server/v3@" + version},
		{"mod", "tidy"},
		{"build", "-trimpath", "-o", bin + ".new", "."},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build etcd %s: go %v: %v\n%s", version, args, err, out)
		}
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		return "", err
	}
	return bin, nil
}
