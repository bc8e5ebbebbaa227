// Package testenv starts the real components the agent's tests run against:
// etcd processes (a v2 registry and cluster members), simulated hosts on
// their own loopback addresses, and the agent binary itself. Everything a
// helper starts is stopped by PID in t.Cleanup; every wait is bounded.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EtcdBinary returns the etcd binary to test with: $ETCD_BIN, or
// /usr/bin/etcd from Debian's etcd-server. It skips the test when there is
// none.
func EtcdBinary(t testing.TB) string {
	t.Helper()
	return binary(t, "ETCD_BIN", "/usr/bin/etcd", "etcd-server")
}

// binary returns $envVar or def, skipping the test with an install hint
// when that file does not exist (failing it under CI, see SkipUnlessCI).
// Under -short it skips first: a test looks for a binary to run it.
func binary(t testing.TB, envVar, def, pkg string) string {
	t.Helper()
	SkipIfShort(t)
	bin := os.Getenv(envVar)
	if bin == "" {
		bin = def
	}
	if _, err := os.Stat(bin); err != nil {
		SkipUnlessCI(t, "no %s (set %s, or apt-get install %s): %v", bin, envVar, pkg, err)
	}
	return bin
}

// SkipIfShort skips a test that starts processes when it runs with
// -short, which is for unit tests only. testenv's process starters and
// binary lookups call it, so a test that uses them needs no call of its
// own; a test that runs a program by itself calls it first.
func SkipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
}

// SkipUnlessCI skips the test because something it needs is missing from
// this machine (a binary, root, network namespaces, ...), with the reason
// given by format and args. Under CI (the environment variable CI is not
// empty; .ci/run sets it) it fails the test instead, so that a missing
// component cannot pass as a skipped test there. Under -short it always
// skips.
func SkipUnlessCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" && !testing.Short() {
		t.Fatalf("CI is set, so this missing part fails instead of skipping: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Process is a program a test started.
type Process struct {
	Name string
	Log  string // combined stdout and stderr
	bin  string
	args []string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
}

// PID is the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitCode is the exit code once Done is closed (-1 for a signal).
func (p *Process) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// Output returns what the process wrote so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Stop sends SIGTERM, waits up to 10 s, then SIGKILL. It is safe to call
// more than once.
func (p *Process) Stop() {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(10 * time.Second):
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig unless the process has exited.
func (p *Process) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// Wait waits for exit, at most d, and returns the exit code.
func (p *Process) Wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.ExitCode()
	case <-time.After(d):
		t.Fatalf("%s (pid %d) still running after %s; output:\n%s", p.Name, p.PID(), d, tail(p.Output(), 40))
		return -1
	}
}

// Start runs bin with args and the given environment (added to a minimal
// PATH/HOME environment), writing its output to a log file in t.TempDir().
// The process is stopped by PID when the test ends; its log is shown if the
// test failed. It is killed as well when the test process dies without
// running its cleanups (a -timeout panic, SIGKILL): see startWithPdeathsig.
// Under -short the test is skipped.
func Start(t testing.TB, name, bin string, args, env []string) *Process {
	t.Helper()
	SkipIfShort(t)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &Process{Name: name, Log: logPath, bin: bin, args: args, env: env, cmd: cmd, done: make(chan struct{})}
	if err := startWithPdeathsig(cmd, func() {
		logf.Close()
		close(p.done)
	}); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- %s (pid %d) log:\n%s", name, p.PID(), tail(p.Output(), 30))
		}
	})
	return p
}

// startWithPdeathsig starts cmd so that the kernel sends it SIGKILL when
// the test process dies, waits for it in the background and calls exited
// once it has exited (its status stays in cmd.ProcessState).
//
// The parent-death signal (PR_SET_PDEATHSIG, set between fork and exec)
// fires when the *thread* that forked the child exits, not the process. Go
// ends an OS thread when a goroutine locked to it returns without
// unlocking, and any goroutine of the test process may do that on any
// thread. So the fork happens on a goroutine locked to its thread, and
// that goroutine stays locked, waiting for the child, until the child has
// exited: no other goroutine runs on the thread meanwhile, so the thread
// cannot end before the child does, unless the whole test process ends
// (TestStartedProcessesDieWithTheTestProcess shows it). The signal survives exec (of a binary that is not set-user-ID), so
// commands that exec the real program, such as `ip netns exec` and sh's
// exec, keep it; a program's own children need their own (see
// hostCommand).
func startWithPdeathsig(cmd *exec.Cmd, exited func()) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		exited()
	}()
	return <-started
}

// Restart stops the process and starts the same command again.
func (p *Process) Restart(t testing.TB) *Process {
	t.Helper()
	p.Stop()
	return Start(t, p.Name+"-restarted", p.bin, p.args, p.env)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP port that was free on addr a moment ago.
func FreePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Registry starts a single-member etcd with the v2 API enabled on
// 127.0.0.1 and free ports, waits until it is healthy and returns its client
// URL: the endpoint under which discovery tokens live.
func Registry(t testing.TB) (clientURL string, p *Process) {
	t.Helper()
	m := StartEtcd(t, EtcdConfig{Name: "registry", EnableV2: true})
	return m.ClientURL, m.Process
}

// Host is a simulated host: its own loopback address (so etcd can use the
// standard ports 2379/2380) and its own directories.
type Host struct {
	Name string
	Addr netip.Addr
	Dir  string
}

// DataDir, EnvFile and StateDir are the host's etcd data dir, env file and
// agent state dir.
func (h Host) DataDir() string  { return filepath.Join(h.Dir, "etcd") }
func (h Host) EnvFile() string  { return filepath.Join(h.Dir, "run", "etcd.env") }
func (h Host) StateDir() string { return filepath.Join(h.Dir, "state") }

// ClientURL and PeerURL are the host's plain-http etcd URLs.
func (h Host) ClientURL() string { return "http://" + netip.AddrPortFrom(h.Addr, 2379).String() }
func (h Host) PeerURL() string   { return "http://" + netip.AddrPortFrom(h.Addr, 2380).String() }

// Hosts makes n hosts named prefix1..prefixN, each on a random address in
// 127.0.0.0/8 whose ports 2379 and 2380 are free, so tests in parallel
// packages do not collide.
func Hosts(t testing.TB, prefix string, n int) []Host {
	t.Helper()
	hosts := make([]Host, 0, n)
	used := map[netip.Addr]bool{}
	for try := 0; len(hosts) < n; try++ {
		if try > 100*n {
			t.Fatal("could not find free loopback addresses")
		}
		a := netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), byte(2 + rand.IntN(252))})
		if used[a] || !portsFree(a, 2379, 2380) {
			continue
		}
		used[a] = true
		name := fmt.Sprintf("%s%d", prefix, len(hosts)+1)
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, Host{Name: name, Addr: a, Dir: dir})
	}
	return hosts
}

func portsFree(a netip.Addr, ports ...int) bool {
	for _, port := range ports {
		l, err := net.Listen("tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// StartEtcdFromEnvFile starts etcd the way a systemd unit with
// EnvironmentFile= does, through POSIX sh: set -a; . FILE; exec etcd.
func StartEtcdFromEnvFile(t testing.TB, name, envFile string, extraArgs ...string) *Process {
	t.Helper()
	bin := EtcdBinary(t)
	script := `set -a; . "$1"; set +a; shift; exec "$@"`
	return Start(t, name, "/bin/sh", append([]string{"-c", script, "sh", envFile, bin}, extraArgs...), nil)
}

// WaitHealthy polls every URL's /health until all report healthy, failing
// the test after d or as soon as p (if not nil) exits.
func WaitHealthy(t testing.TB, p *Process, d time.Duration, clientURLs ...string) {
	t.Helper()
	waitHealthy(t, &http.Client{Timeout: 500 * time.Millisecond}, p, d, clientURLs...)
}

// waitHealthy is WaitHealthy with the client c.
func waitHealthy(t testing.TB, c *http.Client, p *Process, d time.Duration, clientURLs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var done <-chan struct{}
	if p != nil {
		done = p.Done()
	}
	for _, u := range clientURLs {
		if err := pollHealthy(ctx, c, u, done); err != nil {
			msg := ""
			if p != nil {
				msg = "\n" + tail(p.Output(), 30)
			}
			t.Fatalf("%s not healthy: %v%s", u, err, msg)
		}
	}
}

// ErrExited reports that a process exited while being waited for.
var ErrExited = errors.New("process exited")

// PollHealthy polls clientURL/health every 20 ms until it answers healthy,
// ctx ends or exited is closed.
func PollHealthy(ctx context.Context, clientURL string, exited <-chan struct{}) error {
	return pollHealthy(ctx, &http.Client{Timeout: 500 * time.Millisecond}, clientURL, exited)
}

func pollHealthy(ctx context.Context, c *http.Client, clientURL string, exited <-chan struct{}) error {
	return poll(ctx, 20*time.Millisecond, exited, func() error { return health(ctx, c, clientURL) })
}

// health asks clientURL/health once and fails unless etcd says it is
// healthy.
func health(ctx context.Context, c *http.Client, clientURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var h struct{ Health string }
	if json.Unmarshal(b, &h) == nil && h.Health == "true" {
		return nil
	}
	return fmt.Errorf("answered %d %s", resp.StatusCode, bytes.TrimSpace(b))
}

// poll calls try every interval until it succeeds, ctx ends or exited is
// closed; the error then carries try's last error.
func poll(ctx context.Context, every time.Duration, exited <-chan struct{}, try func() error) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		last := try()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-exited:
			return ErrExited
		case <-tick.C:
		}
	}
}

// MemberInfo is one member as a running cluster reports it.
type MemberInfo struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
}

// Members asks a cluster member for the member list through etcd's v3
// JSON gateway.
func Members(ctx context.Context, clientURL string) ([]MemberInfo, error) {
	_, ms, err := MemberList(ctx, clientURL)
	return ms, err
}

// MemberList asks a cluster member for the ID of its cluster and the
// member list through etcd's v3 JSON gateway. A member that was added but
// has not started yet has no Name.
func MemberList(ctx context.Context, clientURL string) (clusterID uint64, ms []MemberInfo, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, clientURL+"/v3/cluster/member/list", strings.NewReader("{}"))
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Header struct {
			ClusterID string `json:"cluster_id"`
		}
		Members []struct {
			ID         string   `json:"ID"`
			Name       string   `json:"name"`
			PeerURLs   []string `json:"peerURLs"`
			ClientURLs []string `json:"clientURLs"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, nil, fmt.Errorf("member list from %s: %w", clientURL, err)
	}
	if clusterID, err = strconv.ParseUint(out.Header.ClusterID, 10, 64); err != nil {
		return 0, nil, fmt.Errorf("member list from %s: cluster ID %q: %w", clientURL, out.Header.ClusterID, err)
	}
	for _, m := range out.Members {
		id, err := strconv.ParseUint(m.ID, 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("member list from %s: ID %q: %w", clientURL, m.ID, err)
		}
		ms = append(ms, MemberInfo{ID: id, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs})
	}
	return clusterID, ms, nil
}

// ModuleRoot returns the directory of this module's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// moduleRoot is the nearest directory at or above the working directory
// (a test's package directory) that holds go.mod. It runs no program, so
// unit tests under -short can use it.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot find the module root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("cannot find the module root: no go.mod in %s or above", wd)
		}
	}
}

// BuildAgent builds the agent into dir and returns its path; for a
// TestMain that builds it once for a package's tests.
func BuildAgent(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "etcd-discovery-agent")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/etcd-discovery-agent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build agent: %v\n%s", err, out)
	}
	return bin, nil
}

// RunWithAgent is the body of a TestMain for tests that share one agent
// binary: it builds the agent into a temporary directory, sets *bin to it,
// runs the tests, removes the directory and returns the exit code. Under
// -short it builds nothing and leaves *bin empty: the tests that run the
// binary skip (testenv's starters do, others call SkipIfShort).
func RunWithAgent(m *testing.M, bin *string) int {
	if !flag.Parsed() {
		flag.Parse() // for testing.Short; m.Run would parse them too
	}
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "eda-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildAgent(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// AgentBinary builds the agent into a temporary directory and returns its
// path.
func AgentBinary(t testing.TB) string {
	t.Helper()
	SkipIfShort(t)
	bin, err := BuildAgent(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
