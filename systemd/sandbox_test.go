//go:build linux

package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// The sandbox tests run the shipped units under a real systemd as PID 1:
// testdata/sandbox-init.sh boots /lib/systemd/systemd in new mount, pid,
// uts, ipc, cgroup and net namespaces on a copy-on-write overlay of the
// host's root (approach 1 of the recipe in the shared testing/systemd-sandbox.md,
// beside the repository). Debian's own etcd.service runs there with our drop-in, the
// agent unit as shipped, and a discovery registry (another etcd) as a unit
// of its own, all on the sandbox's private loopback.

const (
	sandboxScript = "testdata/sandbox-init.sh"
	// cgroupPrefix names the cgroup each sandbox's systemd is rooted at:
	// cgroupPrefix<test PID>-<n>, so leftovers of a killed test binary can
	// be told from the sandboxes of a run in progress.
	cgroupPrefix = "eda-sandbox-"

	registryUnit = "eda-registry.service"
	registryURL  = "http://127.0.0.1:12379"
	agentEnvPath = "/etc/etcd-discovery-agent/agent.env"
	etcdEnvPath  = "/run/etcd-discovery-agent/etcd.env"
	// The agent writes these client and peer URLs for advertise address
	// 127.0.0.1 and the default ports.
	etcdClientURL = "http://127.0.0.1:2379"
	etcdPeerURL   = "http://127.0.0.1:2380"
	memberName    = "node1"
)

// registryUnitText is the discovery registry inside the sandbox: the host's
// loopback is in another network namespace, so the registry must run in
// the sandbox too. Ports other than etcd's own, so that the etcd.service
// under test can have 2379/2380. Type=notify: etcd 3.4 reports readiness
// with sd_notify, so "systemctl start" returns once it serves.
const registryUnitText = `[Unit]
Description=Discovery registry for the sandbox test (etcd with the v2 API on 127.0.0.1:12379)
Before=etcd-discovery-agent.service

[Service]
Type=notify
StateDirectory=eda-registry
ExecStart=/usr/bin/etcd --name registry --data-dir /var/lib/eda-registry --enable-v2 \
  --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
  --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
  --initial-cluster registry=http://127.0.0.1:12380
`

// sandboxEnv is the whole environment of the commands run in the sandbox,
// so nothing of the caller's (SYSTEMD_*, pagers, locales) changes them.
var sandboxEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LC_ALL=C",
}

// TestSandbox installs the agent, its unit and the drop-in the way the
// README says, into a sandbox running the real systemd, and checks what an
// operator would: etcd.service starts, the agent unit stays active, its
// journal, the env file, etcd's environment and health, a simulated reboot
// without the registry, and a failed start when the token does not exist.
func TestSandbox(t *testing.T) {
	testenv.SkipIfShort(t)
	etcdUnitPath := sandboxPrereqs(t)
	bin := builtAgent
	sweepStaleCgroups(t)

	t.Run("bootstrap and reboot", func(t *testing.T) {
		t.Parallel()
		sandboxBootstrapAndReboot(t, bin, etcdUnitPath)
	})
	t.Run("missing token", func(t *testing.T) {
		t.Parallel()
		sandboxMissingToken(t, bin, etcdUnitPath)
	})
}

func sandboxBootstrapAndReboot(t *testing.T, bin, etcdUnitPath string) {
	sb := installedSandbox(t, bin, etcdUnitPath)

	sb.mustSystemctl("start", registryUnit)
	// The quick start: a v3 token, and the lines of agent.env it prints.
	out, errOut, code := sb.exec(30*time.Second, "", agentBin, "token", "new", "--v3", "--endpoints", registryURL, "--size", "1", "--print", "env")
	tokenVars, err := testenv.ParseEnv([]byte(out))
	token := tokenVars["EDA_DISCOVERY_TOKEN"]
	if code != 0 || err != nil || token == "" || tokenVars["EDA_DISCOVERY_ENDPOINTS"] != registryURL {
		t.Fatalf("token new --v3 --print env: exit %d, printed %q (%v), want EDA_DISCOVERY_TOKEN and EDA_DISCOVERY_ENDPOINTS=%s; stderr:\n%s", code, out, err, registryURL, errOut)
	}
	sb.configureAgent(out)

	// First boot: the agent registers, etcd starts a new cluster.
	sb.mustSystemctl("start", "etcd.service")
	sb.wantProps(agentUnit, map[string]string{"ActiveState": "active", "SubState": "exited", "Result": "success", "ExecMainStatus": "0"})
	sb.wantProps("etcd.service", map[string]string{"ActiveState": "active", "SubState": "running"})
	first := sb.agentLog("msg=done")
	for _, want := range []string{"msg=registered", "msg=done role=member state=new source=registry"} {
		if !strings.Contains(first, want) {
			t.Errorf("journalctl -u %s lacks %q:\n%s", agentUnit, want, first)
		}
	}
	// ExecStartPost: promote ran after etcd started and left the voter alone.
	if log := sb.journal("etcd.service", "nothing to promote"); !strings.Contains(log, "this member is a voter") {
		t.Errorf("etcd.service's journal does not show promote leaving the voter alone:\n%s", log)
	}
	env := sb.etcdEnvFile()
	wantVars(t, etcdEnvPath, env, map[string]string{
		"ETCD_NAME":                  memberName,
		"ETCD_INITIAL_CLUSTER_STATE": "new",
		"ETCD_INITIAL_CLUSTER":       memberName + "=" + etcdPeerURL,
		"ETCD_INITIAL_CLUSTER_TOKEN": token,
		"ETCD_LISTEN_CLIENT_URLS":    etcdClientURL,
	})
	sb.wantEtcdEnviron(env)
	sb.wantHealthy()

	// Reboot: etcd and the agent stop, /run is cleared, and the registry
	// is gone; the member must come back from its data dir alone.
	sb.mustSystemctl("stop", "etcd.service", agentUnit)
	sb.mustExec("rm", etcdEnvPath)
	sb.mustSystemctl("stop", registryUnit)
	sb.wantProps(registryUnit, map[string]string{"ActiveState": "inactive"})
	sb.mustSystemctl("start", "etcd.service")
	sb.wantProps(agentUnit, map[string]string{"ActiveState": "active", "Result": "success", "ExecMainStatus": "0"})
	sb.wantProps(registryUnit, map[string]string{"ActiveState": "inactive"})
	second := sb.agentLog("msg=done")
	for _, want := range []string{"not contacting the registry", "msg=done role=member state=existing source=data-dir"} {
		if !strings.Contains(second, want) {
			t.Errorf("journal of the restarted agent lacks %q:\n%s", want, second)
		}
	}
	for _, unwanted := range []string{"msg=registered", `msg="discovery token"`, "registry request failed"} {
		if strings.Contains(second, unwanted) {
			t.Errorf("journal of the restarted agent has %q: it contacted the registry:\n%s", unwanted, second)
		}
	}
	env = sb.etcdEnvFile()
	wantVars(t, etcdEnvPath, env, map[string]string{
		"ETCD_NAME":                  memberName,
		"ETCD_INITIAL_CLUSTER_STATE": "existing",
		"ETCD_INITIAL_CLUSTER":       memberName + "=" + etcdPeerURL,
	})
	sb.wantEtcdEnviron(env)
	sb.wantHealthy()
}

func sandboxMissingToken(t *testing.T, bin, etcdUnitPath string) {
	sb := installedSandbox(t, bin, etcdUnitPath)

	sb.mustSystemctl("start", registryUnit)
	// A well-formed token that was never created.
	sb.configureAgent("EDA_DISCOVERY_TOKEN=0123456789abcdef0123456789abcdef\nEDA_DISCOVERY_ENDPOINTS=" + registryURL + "\n")

	out, code := sb.systemctl("start", "etcd.service")
	if code == 0 {
		t.Fatalf("systemctl start etcd.service succeeded with a missing token:\n%s", out)
	}
	t.Logf("systemctl start etcd.service: exit %d (as it should): %s", code, strings.TrimSpace(out))
	// 6: the agent's exit code for a missing token or invalid registry data.
	sb.wantProps(agentUnit, map[string]string{"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "6"})
	sb.wantProps("etcd.service", map[string]string{"ActiveState": "inactive", "MainPID": "0", "ExecMainPID": "0"})
	log := sb.agentLog("exit_code=")
	for _, want := range []string{"level=ERROR", "exit_code=6", "token new"} {
		if !strings.Contains(log, want) {
			t.Errorf("journal of the failed agent lacks %q:\n%s", want, log)
		}
	}
	if _, _, code := sb.exec(10*time.Second, "", "test", "-e", etcdEnvPath); code == 0 {
		t.Errorf("%s exists after the agent failed", etcdEnvPath)
	}
	if out, errOut, code := sb.exec(20*time.Second, "", "etcdctl", "--endpoints", etcdClientURL, "--dial-timeout", "1s", "--command-timeout", "2s", "endpoint", "health"); code == 0 {
		t.Errorf("etcd answers at %s although its start failed:\n%s%s", etcdClientURL, out, errOut)
	}
}

// installedSandbox boots a sandbox into which the agent, its unit, the
// drop-in and the example configuration are installed as the README says,
// plus the registry unit, and checks that systemd loaded Debian's
// etcd.service with exactly our drop-in.
func installedSandbox(t *testing.T, bin, etcdUnitPath string) *sandbox {
	t.Helper()
	sb := newSandbox(t)
	binData, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sb.seed(agentBin, binData, 0o755)
	sb.seed("/etc/systemd/system/"+agentUnit, readFile(t, agentUnit), 0o644)
	sb.seed("/etc/systemd/system/"+dropIn, readFile(t, dropIn), 0o644)
	sb.seed(agentEnvPath, readFile(t, exampleEnv), 0o644)
	sb.seed("/etc/systemd/system/"+registryUnit, []byte(registryUnitText), 0o644)
	// Hide the host's /etc/default/etcd (read by Debian's unit), so its
	// DAEMON_ARGS cannot change the outcome: a fresh package install.
	sb.seed("/etc/default/etcd", []byte("# sandbox: the package default, no settings\n"), 0o644)
	sb.boot()

	// Whatever the host's etcd or agent left behind is not this test's:
	// remove it in the overlay (the host keeps its files).
	sb.mustExec("rm", "-rf", "/var/lib/etcd/default", "/var/lib/etcd-discovery-agent")
	// As the README says; etcd.service itself is enabled by the package.
	// The [Install] section links the agent into etcd.service.requires/.
	sb.mustSystemctl("enable", agentUnit)
	if got := sb.prop(agentUnit, "RequiredBy"); !slices.Contains(strings.Fields(got), "etcd.service") {
		t.Errorf("after systemctl enable, %s is RequiredBy=%q, want etcd.service", agentUnit, got)
	}
	sb.wantProps("etcd.service", map[string]string{
		"LoadState":    "loaded",
		"FragmentPath": etcdUnitPath,
		"DropInPaths":  "/etc/systemd/system/" + dropIn,
	})
	sb.wantProps(agentUnit, map[string]string{"LoadState": "loaded", "FragmentPath": "/etc/systemd/system/" + agentUnit})
	return sb
}

// configureAgent edits /etc/etcd-discovery-agent/agent.env (installed from
// agent.env.example) as an operator would: the example's token lines
// replaced by token (what token new --print env prints), the name and the
// address.
func (sb *sandbox) configureAgent(token string) {
	sb.t.Helper()
	example := string(readFile(sb.t, exampleEnv))
	re := regexp.MustCompile(`(?m)^EDA_DISCOVERY_(TOKEN|ENDPOINTS)=.*\n`)
	if n := len(re.FindAllString(example, -1)); n != 2 {
		sb.t.Fatalf("%s has %d EDA_DISCOVERY_TOKEN= and EDA_DISCOVERY_ENDPOINTS= lines, want 2", exampleEnv, n)
	}
	conf := re.ReplaceAllLiteralString(example, "") + token
	conf += "\n# Set by the sandbox test.\nEDA_NAME=" + memberName + "\nEDA_ADVERTISE_ADDRESS=127.0.0.1\n"
	if _, err := envfile.Parse([]byte(conf)); err != nil {
		sb.t.Fatalf("edited agent.env is not in the safe subset: %v", err)
	}
	if out, errOut, code := sb.exec(10*time.Second, conf, "/bin/sh", "-c", `cat > "$1"`, "sh", agentEnvPath); code != 0 {
		sb.t.Fatalf("writing %s: exit %d:\n%s%s", agentEnvPath, code, out, errOut)
	}
}

// agentLog returns the agent unit's journal of its latest run, waiting
// (bounded) until it shows until: journald may still be reading the
// stream when systemctl returns.
func (sb *sandbox) agentLog(until string) string { return sb.journal(agentUnit, until) }

// journal returns the log of unit's last run once it shows until.
func (sb *sandbox) journal(unit, until string) string {
	sb.t.Helper()
	id := sb.prop(unit, "InvocationID")
	if id == "" {
		sb.t.Fatalf("%s has no InvocationID: it never ran", unit)
	}
	var log string
	for i := 0; i < 300; i++ {
		log, _, _ = sb.exec(10*time.Second, "", "journalctl", "--no-pager", "-o", "cat",
			"-u", unit, "_SYSTEMD_INVOCATION_ID="+id)
		if strings.Contains(log, until) {
			return log
		}
		time.Sleep(50 * time.Millisecond)
	}
	sb.t.Fatalf("journalctl -u %s (invocation %s) shows no %q within 15s:\n%s", unit, id, until, log)
	return ""
}

// etcdEnvFile reads and parses the agent's env file inside the sandbox.
func (sb *sandbox) etcdEnvFile() map[string]string {
	sb.t.Helper()
	data := sb.mustExec("cat", etcdEnvPath)
	m, err := testenv.ParseEnv([]byte(data))
	if err != nil {
		sb.t.Fatalf("%s: %v:\n%s", etcdEnvPath, err, data)
	}
	return m
}

func wantVars(t *testing.T, what string, have, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			t.Errorf("%s: %s=%q (set: %v), want %q", what, k, got, ok, v)
		}
	}
}

// wantEtcdEnviron checks that the running etcd got every variable of the
// env file, over the values of Debian's Environment= lines, and runs as
// the package's etcd user.
func (sb *sandbox) wantEtcdEnviron(envFile map[string]string) {
	sb.t.Helper()
	pid := sb.prop("etcd.service", "MainPID")
	if pid == "" || pid == "0" {
		sb.t.Fatalf("etcd.service has no MainPID")
	}
	environ := map[string]string{}
	for _, kv := range strings.Split(sb.mustExec("cat", "/proc/"+pid+"/environ"), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			environ[k] = v
		}
	}
	wantVars(sb.t, "etcd's environment (/proc/"+pid+"/environ)", environ, envFile)
	uid := strings.TrimSpace(sb.mustExec("id", "-u", "etcd"))
	status := sb.mustExec("cat", "/proc/"+pid+"/status")
	if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindStringSubmatch(status); m == nil || m[1] != uid {
		sb.t.Errorf("etcd (pid %s) runs as uid %v, want the etcd user (%s)", pid, m, uid)
	}
}

func (sb *sandbox) wantHealthy() {
	sb.t.Helper()
	out, errOut, code := sb.exec(30*time.Second, "", "etcdctl", "--endpoints", etcdClientURL, "--dial-timeout", "2s", "--command-timeout", "5s", "endpoint", "health")
	if code != 0 || !strings.Contains(out+errOut, "is healthy") {
		sb.t.Errorf("etcdctl endpoint health: exit %d:\n%s%s", code, out, errOut)
	}
}

// sandboxPrereqs skips the test unless the sandbox can run here, and
// returns the path of Debian's etcd.service.
func sandboxPrereqs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.SkipUnlessCI(t, "needs root (namespaces, mounts, cgroups) to boot systemd in a sandbox")
	}
	for _, tool := range []string{"unshare", "nsenter", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipUnlessCI(t, "%s not installed (Debian: util-linux, bash): %v", tool, err)
		}
	}
	for _, f := range []string{"/lib/systemd/systemd", "/usr/bin/etcd", "/usr/bin/etcdctl"} {
		if _, err := os.Stat(f); err != nil {
			testenv.SkipUnlessCI(t, "%s not installed (Debian: systemd, etcd-server, etcd-client): %v", f, err)
		}
	}
	if cgroupRoot() == "" {
		testenv.SkipUnlessCI(t, "no cgroup2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup")
	}
	for _, p := range []string{"/lib/systemd/system/etcd.service", "/usr/lib/systemd/system/etcd.service"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testenv.SkipUnlessCI(t, "Debian's etcd.service is not installed (apt-get install etcd-server)")
	return ""
}

// cgroupRoot returns where the cgroup2 hierarchy is mounted: the unified
// tree of a hybrid host, or /sys/fs/cgroup itself; "" if nowhere.
func cgroupRoot() string {
	const cgroup2Magic = 0x63677270
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st syscall.Statfs_t
		if syscall.Statfs(p, &st) == nil && st.Type == cgroup2Magic {
			return p
		}
	}
	return ""
}

// ownCgroup returns the directory of this process's cgroup2 cgroup.
func ownCgroup(root string) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(root, rest), nil
		}
	}
	return "", errors.New("/proc/self/cgroup has no cgroup2 line")
}

// sweepStaleCgroups removes the empty cgroups of sandboxes whose test
// binary died (SIGKILL leaves them behind; the sandboxes themselves die
// with it through Pdeathsig and unshare --kill-child).
func sweepStaleCgroups(t *testing.T) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(cgroupRoot(), cgroupPrefix+"*"))
	for _, d := range dirs {
		owner, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), cgroupPrefix), "-")
		pid, err := strconv.Atoi(owner)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test binary still runs
		}
		if err := removeCgroupTree(d); err != nil {
			t.Logf("stale sandbox cgroup %s not removed: %v", d, err)
		} else {
			t.Logf("removed stale sandbox cgroup %s", d)
		}
	}
}

// removeCgroupTree removes a cgroup and its descendants, deepest first.
// Only empty cgroups can be removed; a populated one is an error.
func removeCgroupTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var first error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) && first == nil {
			first = fmt.Errorf("rmdir %s: %w", dirs[i], err)
		}
	}
	return first
}

var sandboxSeq atomic.Int32

// sandbox is one systemd running as PID 1 in its own namespaces.
type sandbox struct {
	t       *testing.T
	dir     string // scratch: seed/, root/ and layer/ (mount points), console.log
	cgroup  string // the cgroup its systemd is rooted at
	unshare *exec.Cmd
	exited  chan struct{} // closed when unshare (and so the sandbox) has exited
	pid1    int           // host PID of the sandbox's systemd
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	// cp -a seed/. copies seed's own mode onto the overlay's root
	// directory: it must be 0755, as / is, whatever the umask.
	if err := os.Chmod(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	return &sandbox{t: t, dir: dir}
}

// seed puts a file at path (absolute, inside the sandbox) into the
// overlay's upper layer before boot.
func (sb *sandbox) seed(path string, data []byte, perm os.FileMode) {
	sb.t.Helper()
	dst := filepath.Join(sb.dir, "seed", path)
	// Directories as a package would make them: 0755, whatever the umask.
	for d := filepath.Dir(dst); d != filepath.Join(sb.dir, "seed"); d = filepath.Dir(d) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			sb.t.Fatal(err)
		}
	}
	if err := filepath.WalkDir(filepath.Join(sb.dir, "seed"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	}); err != nil {
		sb.t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		sb.t.Fatal(err)
	}
	if err := os.Chmod(dst, perm); err != nil {
		sb.t.Fatal(err)
	}
}

// boot starts the sandbox and waits until its systemd has finished
// booting. Teardown is registered with t.Cleanup.
func (sb *sandbox) boot() {
	t := sb.t
	t.Helper()
	start := time.Now()
	script, err := filepath.Abs(sandboxScript)
	if err != nil {
		t.Fatal(err)
	}
	root := cgroupRoot()
	orig, err := ownCgroup(root)
	if err != nil {
		t.Fatal(err)
	}
	// systemd in the sandbox gets a cgroup of its own, created before
	// unshare --cgroup so that the new cgroup namespace is rooted there:
	// otherwise it would make its slices in the host's root cgroup.
	sb.cgroup = filepath.Join(root, fmt.Sprintf("%s%d-%d", cgroupPrefix, os.Getpid(), sandboxSeq.Add(1)))
	if err := os.Mkdir(sb.cgroup, 0o755); err != nil {
		t.Fatalf("creating the sandbox cgroup: %v", err)
	}
	cgfd, err := syscall.Open(sb.cgroup, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(cgfd)
	console, err := os.Create(filepath.Join(sb.dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()

	sb.unshare = exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork",
		"--uts", "--ipc", "--cgroup", "--net", "--kill-child",
		"/bin/bash", script, sb.dir)
	sb.unshare.Env = sandboxEnv
	// The sandbox's output goes to a file, never to a pipe of ours: it
	// outlives every command we wait for (pitfall 12 of the recipe).
	sb.unshare.Stdout, sb.unshare.Stderr = console, console
	sb.unshare.SysProcAttr = &syscall.SysProcAttr{
		// Start unshare in the sandbox cgroup (clone3 with CLONE_INTO_CGROUP).
		UseCgroupFD: true,
		CgroupFD:    cgfd,
		// If the test binary dies, so does unshare, and --kill-child
		// then kills the sandbox's PID 1 and with it the whole sandbox.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := sb.unshare.Start(); err != nil {
		_ = removeCgroupTree(sb.cgroup)
		t.Fatalf("starting unshare: %v", err)
	}
	sb.exited = make(chan struct{})
	go func() {
		_ = sb.unshare.Wait()
		close(sb.exited)
	}()
	t.Cleanup(sb.down)

	// Wait for the child of unshare to become systemd and open its private
	// bus socket; calling systemctl earlier fails ("Failed to connect to
	// bus"). Checking comm first: before pivot_root, /proc/PID/root is
	// the host's root, which has the socket too when it runs systemd.
	u := sb.unshare.Process.Pid
	moved := false
	deadline := time.Now().Add(20 * time.Second)
	for sb.pid1 == 0 {
		select {
		case <-sb.exited:
			t.Fatalf("sandbox exited while booting (%v); console:\n%s", sb.unshare.ProcessState, sb.console())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox did not boot within 20s; console:\n%s", sb.console())
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", u, u))
		if f := strings.Fields(string(children)); len(f) > 0 {
			child, _ := strconv.Atoi(f[0])
			if !moved {
				// unshare itself goes back: only the sandbox stays in its cgroup.
				if err := os.WriteFile(filepath.Join(orig, "cgroup.procs"), []byte(strconv.Itoa(u)), 0o644); err != nil {
					t.Fatalf("moving unshare (pid %d) back to %s: %v", u, orig, err)
				}
				moved = true
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
			fi, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", child))
			if strings.TrimSpace(string(comm)) == "systemd" && err == nil && fi.Mode()&os.ModeSocket != 0 {
				sb.pid1 = child
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	state, _, _ := sb.exec(60*time.Second, "", "systemctl", "is-system-running", "--wait")
	state = strings.TrimSpace(state)
	switch state {
	case "running":
	case "degraded":
		// Something of the host's boot did not work in the sandbox; not
		// what this test is about, but worth seeing.
		failed, _ := sb.systemctl("--failed", "--no-legend")
		t.Logf("sandbox booted degraded; failed units:\n%s", failed)
	default:
		t.Fatalf("sandbox systemd is %q after booting, want running; console:\n%s", state, sb.console())
	}
	t.Logf("sandbox booted in %v (systemd is host pid %d, cgroup %s)", time.Since(start).Round(time.Millisecond), sb.pid1, sb.cgroup)
}

// down stops the sandbox by PID and removes its cgroup; run by t.Cleanup.
func (sb *sandbox) down() {
	t := sb.t
	if t.Failed() && sb.pid1 != 0 {
		sb.dumpLogs()
	}
	start := time.Now()
	waitExit := func(d time.Duration) bool {
		select {
		case <-sb.exited:
			return true
		case <-time.After(d):
			return false
		}
	}
	select {
	case <-sb.exited:
	default:
		if sb.pid1 != 0 {
			// SIGRTMIN+4: systemd powers off cleanly, stopping every unit.
			_ = syscall.Kill(sb.pid1, syscall.Signal(38))
		} else {
			// Not booted: killing unshare kills its child (--kill-child).
			_ = sb.unshare.Process.Kill()
		}
	}
	if !waitExit(10 * time.Second) {
		t.Errorf("sandbox did not power off within 10s; killing it")
		if sb.pid1 != 0 {
			_ = syscall.Kill(sb.pid1, syscall.SIGKILL)
		}
		_ = sb.unshare.Process.Kill()
		if !waitExit(10 * time.Second) {
			t.Errorf("unshare (pid %d) still runs 10s after SIGKILL", sb.unshare.Process.Pid)
			return
		}
	}
	// The namespaces are torn down asynchronously after the last process
	// exits; the cgroups empty shortly after.
	var err error
	for i := 0; i < 100; i++ {
		if err = removeCgroupTree(sb.cgroup); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("sandbox cgroup left behind: %v", err)
	}
	if _, statErr := os.Stat(sb.cgroup); statErr == nil {
		t.Errorf("sandbox cgroup %s still exists", sb.cgroup)
	}
	// A clean poweroff ends PID 1 with SIGINT (reboot(2) in a pid
	// namespace), which unshare reports as its own exit.
	t.Logf("sandbox torn down in %v (unshare: %v)", time.Since(start).Round(time.Millisecond), sb.unshare.ProcessState)
}

func (sb *sandbox) console() string {
	b, _ := os.ReadFile(filepath.Join(sb.dir, "console.log"))
	if len(b) == 0 {
		return "(empty: PID 1 logs to the journal once journald runs)"
	}
	return string(b)
}

// dumpLogs logs what an operator would look at after a failure.
func (sb *sandbox) dumpLogs() {
	sb.t.Logf("--- sandbox console:\n%s", sb.console())
	status, _, _ := sb.exec(20*time.Second, "", "systemctl", "status", "--no-pager", "-l", "--lines=0",
		agentUnit, "etcd.service", registryUnit)
	sb.t.Logf("--- systemctl status:\n%s", status)
	journal, _, _ := sb.exec(20*time.Second, "", "journalctl", "--no-pager", "-o", "short-precise", "-n", "400")
	sb.t.Logf("--- journalctl (last 400 lines):\n%s", journal)
}

// exec runs a command inside the sandbox (all its namespaces, its root)
// with input on stdin, and returns its output and exit code. Not
// finishing within timeout, or not starting, is fatal.
func (sb *sandbox) exec(timeout time.Duration, input string, args ...string) (stdout, stderr string, code int) {
	sb.t.Helper()
	stdout, stderr, code, err := sb.execE(timeout, input, args...)
	if err != nil {
		sb.t.Fatal(err)
	}
	return stdout, stderr, code
}

func (sb *sandbox) execE(timeout time.Duration, input string, args ...string) (string, string, int, error) {
	// Not t.Context(): it is already done when the cleanup that logs the
	// journal runs.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nsArgs := append([]string{"-t", strconv.Itoa(sb.pid1), "-a", "-r", "-w", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", nsArgs...)
	cmd.Env = sandboxEnv
	cmd.Stdin = strings.NewReader(input)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), errOut.String(), -1, fmt.Errorf("in the sandbox: %s: no result within %v:\n%s%s", strings.Join(args, " "), timeout, &out, &errOut)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return out.String(), errOut.String(), -1, fmt.Errorf("in the sandbox: %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), 0, nil
}

// mustExec runs a command in the sandbox that must succeed; it returns
// its stdout.
func (sb *sandbox) mustExec(args ...string) string {
	sb.t.Helper()
	out, errOut, code := sb.exec(30*time.Second, "", args...)
	if code != 0 {
		sb.t.Fatalf("in the sandbox: %s: exit %d:\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// systemctl runs systemctl in the sandbox; start jobs wait for the agent
// and etcd, hence the generous bound.
func (sb *sandbox) systemctl(args ...string) (string, int) {
	sb.t.Helper()
	out, errOut, code := sb.exec(60*time.Second, "", append([]string{"systemctl", "--no-pager"}, args...)...)
	return out + errOut, code
}

func (sb *sandbox) mustSystemctl(args ...string) {
	sb.t.Helper()
	start := time.Now()
	if out, code := sb.systemctl(args...); code != 0 {
		sb.t.Fatalf("systemctl %s: exit %d:\n%s", strings.Join(args, " "), code, out)
	}
	sb.t.Logf("systemctl %s: ok in %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// prop returns one property of a unit (systemctl show -p NAME --value).
func (sb *sandbox) prop(unit, name string) string {
	sb.t.Helper()
	return strings.TrimSpace(sb.mustExec("systemctl", "show", "-p", name, "--value", unit))
}

func (sb *sandbox) wantProps(unit string, want map[string]string) {
	sb.t.Helper()
	for name, v := range want {
		if got := sb.prop(unit, name); got != v {
			sb.t.Errorf("systemctl show -p %s %s: %q, want %q", name, unit, got, v)
		}
	}
}
