package systemd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/agent/envfile"
	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

const (
	agentUnit  = "etcd-discovery-agent.service"
	dropIn     = "etcd.service.d/10-discovery-agent.conf"
	exampleEnv = "agent.env.example"
	// agentBin is where the unit expects the binary. The verify tests
	// install the freshly built binary there inside a throw-away root, so
	// the unit is checked byte for byte as shipped.
	agentBin = "/usr/local/bin/etcd-discovery-agent"
	// brokenLine is appended to a unit to check that verify reads it.
	brokenLine = "XBrokenByTest=1\n"
)

// bootstrapFlags are the flags of "etcd-discovery-agent bootstrap".
// TestFlagListMatchesBinary compares the list with the binary's --help, so
// a flag added to the agent fails here until agent.env.example and this
// list mention it.
var bootstrapFlags = []string{
	"name", "discovery-token", "discovery-endpoints", "discovery", "discovery-cacert", "discovery-cert", "discovery-key",
	"discovery-insecure-skip-tls-verify", "discovery-user", "discovery-password-file",
	"discovery-srv", "size", "dns-resolver",
	"cluster-token", "output", "advertise-address", "listen-address",
	"peer-port", "client-port", "scheme", "listen-loopback",
	"data-dir", "env-file", "state-dir", "timeout", "on-full", "join-as", "replace",
	"cluster-cacert", "cluster-cert", "cluster-key", "cluster-user", "cluster-password-file",
	"peer-cacert", "peer-cert", "peer-key",
	"peer-wait", "etcd-binary", "etcd-version", "publish-server", "publish-zone",
	"srv-domain", "srv-name", "tsig-key-file", "dns-ttl", "dns-check",
	"log-level",
}

// envName is the variable the agent reads a flag from.
func envName(flag string) string {
	return "EDA_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// minimalEtcdUnit stands in for Debian's etcd.service (package etcd-server)
// when it is not installed; it has the settings the drop-in interacts with.
const minimalEtcdUnit = `[Unit]
Description=etcd (stand-in for the etcd-server package's unit)
After=network.target
Wants=network-online.target

[Service]
Environment=DAEMON_ARGS=
Environment=ETCD_NAME=%H
Environment=ETCD_DATA_DIR=/var/lib/etcd/default
EnvironmentFile=-/etc/default/%p
Type=notify
User=etcd
ExecStart=/usr/bin/etcd $DAEMON_ARGS
Restart=on-abnormal

[Install]
WantedBy=multi-user.target
`

// builtAgent is the agent built once for this package's tests.
var builtAgent string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAgent(m, &builtAgent)) }

// run runs a command with a deadline and returns its combined output and
// exit code. Not finishing in time, or not starting at all, is fatal.
func run(t *testing.T, timeout time.Duration, dir, name string, args ...string) (string, int) {
	t.Helper()
	out, code, err := runE(t.Context(), timeout, dir, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out, code
}

func runE(ctx context.Context, timeout time.Duration, dir, name string, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// A caller's SYSTEMD_UNIT_PATH would change what verify loads.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "SYSTEMD_UNIT_PATH=")
	})
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), -1, fmt.Errorf("%s %s: no result within %v:\n%s", name, strings.Join(args, " "), timeout, out)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode(), nil
	}
	if err != nil {
		return string(out), -1, fmt.Errorf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out), 0, nil
}

// systemdAnalyze returns the path of systemd-analyze, or skips the test.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	testenv.SkipIfShort(t)
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.SkipUnlessCI(t, "systemd-analyze not installed (Debian: apt-get install systemd); unit files not verified")
	}
	help, code := run(t, 30*time.Second, "", path, "--help")
	if code != 0 {
		t.Fatalf("systemd-analyze --help: exit %d:\n%s", code, help)
	}
	for _, opt := range []string{"--root=", "--recursive-errors=", "--man"} {
		if !strings.Contains(help, opt) {
			testenv.SkipUnlessCI(t, "this systemd-analyze has no %s option (systemd >= 250 needed); unit files not verified", opt)
		}
	}
	return path
}

// hostEtcdUnit returns the installed etcd.service, or a stand-in.
func hostEtcdUnit(t *testing.T) []byte {
	t.Helper()
	for _, p := range []string{"/lib/systemd/system/etcd.service", "/usr/lib/systemd/system/etcd.service"} {
		if b, err := os.ReadFile(p); err == nil {
			t.Logf("verifying the drop-in against %s", p)
			return b
		}
	}
	t.Log("etcd.service not installed (Debian: etcd-server); verifying the drop-in against a minimal stand-in")
	return []byte(minimalEtcdUnit)
}

type rootSpec struct {
	breakAgentUnit  bool // append an unknown key to the agent unit
	breakDropIn     bool // append an unknown key to the drop-in
	omitAgentUnit   bool
	omitAgentBinary bool
}

// makeRoot lays out a file system root the way an installation would look:
// the host's vendor targets and slices (for the default dependencies),
// etcd.service in the vendor directory, our unit and drop-in in
// /etc/systemd/system, the agent at /usr/local/bin, and stand-ins for the
// binaries etcd.service runs.
func makeRoot(t *testing.T, bin string, etcdUnit []byte, spec rootSpec) string {
	t.Helper()
	root := t.TempDir()
	vendor := filepath.Join(root, "usr/lib/systemd/system")
	admin := filepath.Join(root, "etc/systemd/system")

	copied := 0
	for _, dir := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		for _, pattern := range []string{"*.target", "*.slice"} {
			matches, _ := filepath.Glob(filepath.Join(dir, pattern))
			for _, m := range matches {
				dst := filepath.Join(vendor, filepath.Base(m))
				if fi, err := os.Lstat(m); err != nil || !fi.Mode().IsRegular() {
					continue
				}
				if _, err := os.Stat(dst); err == nil {
					continue
				}
				copyFile(t, m, dst, 0o644)
				copied++
			}
		}
	}
	if copied == 0 {
		t.Fatal("no *.target or *.slice units found in /usr/lib/systemd/system; cannot satisfy default dependencies")
	}

	writeFile(t, filepath.Join(vendor, "etcd.service"), etcdUnit, 0o644)
	for _, m := range regexp.MustCompile(`(?m)^[ \t]*Exec[A-Za-z]*=[ \t]*[-@:+!|]*(/\S+)`).FindAllSubmatch(etcdUnit, -1) {
		writeFile(t, filepath.Join(root, string(m[1])), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	}

	unit := readFile(t, agentUnit)
	if spec.breakAgentUnit {
		unit = append(unit, brokenLine...)
	}
	if !spec.omitAgentUnit {
		writeFile(t, filepath.Join(admin, agentUnit), unit, 0o644)
	}
	drop := readFile(t, dropIn)
	if spec.breakDropIn {
		drop = append(drop, brokenLine...)
	}
	writeFile(t, filepath.Join(admin, dropIn), drop, 0o644)
	if !spec.omitAgentBinary {
		dst := filepath.Join(root, agentBin)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(bin, dst); err != nil {
			copyFile(t, bin, dst, 0o755)
		}
	}
	return root
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("%s: empty or no final newline", path)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// verify runs systemd-analyze verify on units inside root. --root makes it
// read units (and check ExecStart= binaries) only under root, so the host's
// own /etc/systemd and /run/systemd cannot change the verdict.
// --recursive-errors=yes turns warnings (unknown keys, ...) into a
// non-zero exit; without it verify exits 0 after printing them. --man=no
// skips running man(1) for Documentation=man:etcd in Debian's unit, which
// depends on whether the host has man pages, not on our files.
func verify(t *testing.T, analyze, root string, units ...string) (string, int) {
	t.Helper()
	args := append([]string{"verify", "--man=no", "--recursive-errors=yes", "--root=" + root}, units...)
	// Run from root: an argument naming a file in the working directory
	// could otherwise be picked up instead of the unit under root.
	return run(t, time.Minute, root, analyze, args...)
}

func TestUnitsVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	bin := builtAgent
	etcdUnit := hostEtcdUnit(t)

	t.Run("clean", func(t *testing.T) {
		root := makeRoot(t, bin, etcdUnit, rootSpec{})
		out, code := verify(t, analyze, root, agentUnit, "etcd.service")
		if code != 0 || strings.TrimSpace(out) != "" {
			t.Fatalf("systemd-analyze verify: exit %d, want 0 and no output; output:\n%s", code, out)
		}
	})

	// Controls: each breaks one thing the clean run depends on, and verify
	// must notice. Without them, a clean run could also mean that verify
	// never read our files.
	controls := []struct {
		name  string
		spec  rootSpec
		units []string
		want  []string // substrings of the output
	}{
		{"broken agent unit is reported", rootSpec{breakAgentUnit: true}, []string{agentUnit},
			[]string{"/etc/systemd/system/" + agentUnit + ":", "XBrokenByTest"}},
		{"broken drop-in is reported", rootSpec{breakDropIn: true}, []string{"etcd.service"},
			[]string{"/etc/systemd/system/" + dropIn + ":", "XBrokenByTest"}},
		// Debian's etcd.service does not mention the agent: only the
		// drop-in's Requires= can make a missing agent unit an error.
		{"drop-in Requires= the agent unit", rootSpec{omitAgentUnit: true}, []string{"etcd.service"},
			[]string{agentUnit + " not found"}},
		{"missing agent binary is reported", rootSpec{omitAgentBinary: true}, []string{agentUnit},
			[]string{"Command " + agentBin + " is not executable"}},
	}
	for _, c := range controls {
		t.Run(c.name, func(t *testing.T) {
			root := makeRoot(t, bin, etcdUnit, c.spec)
			out, code := verify(t, analyze, root, c.units...)
			if code == 0 {
				t.Errorf("systemd-analyze verify passed, want a failure; output:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q; output:\n%s", w, out)
				}
			}
		})
	}

	t.Run("start timeout outlasts --timeout", func(t *testing.T) {
		unit := parseUnit(t, agentUnit)
		spec := unit.one(t, "Service", "TimeoutStartSec")
		out, code := run(t, 30*time.Second, "", analyze, "timespan", spec)
		m := regexp.MustCompile(`(?m)^\s*(?:μs|us):\s*(\d+)\s*$`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("systemd-analyze timespan %s: exit %d:\n%s", spec, code, out)
		}
		us, _ := strconv.ParseInt(m[1], 10, 64)
		start := time.Duration(us) * time.Microsecond
		agentTimeout, err := time.ParseDuration(helpDefaults(t)["timeout"])
		if err != nil {
			t.Fatalf("--timeout default: %v", err)
		}
		if start <= agentTimeout {
			t.Errorf("TimeoutStartSec=%s (%v) must be longer than the agent's --timeout default %v, so the agent's own deadline fires first", spec, start, agentTimeout)
		}
	})
}

// unitFile maps "Section.Key" to its values in order.
type unitFile struct {
	path string
	kv   map[string][]string
}

// parseUnit reads the subset of unit syntax our files use: sections,
// Key=Value lines, # comments, no line continuations.
func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	u := unitFile{path: path, kv: map[string][]string{}}
	section := ""
	for i, line := range strings.Split(string(readFile(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: line continuation not expected", path, i+1)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not Key=Value in a section: %q", path, i+1, line)
			}
			key := section + "." + strings.TrimSpace(k)
			u.kv[key] = append(u.kv[key], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u.kv[section+"."+key]
	if len(vs) != 1 {
		t.Fatalf("%s: want one %s= in [%s], have %q", u.path, key, section, vs)
	}
	return vs[0]
}

func (u unitFile) want(t *testing.T, section, key, value string) {
	t.Helper()
	for _, v := range u.kv[section+"."+key] {
		if slices.Contains(strings.Fields(v), value) || v == value {
			return
		}
	}
	t.Errorf("%s: [%s] has no %s=%s (have %q)", u.path, section, key, value, u.kv[section+"."+key])
}

var (
	helpOnce      sync.Once
	helpDefs      map[string]string
	helpErr       error
	helpFlagRE    = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)`)
	helpDefaultRE = regexp.MustCompile(`\(default "?(.*?)"?\)$`)
)

// helpDefaults returns every flag of "bootstrap --help" with its default
// ("" when none is shown).
func helpDefaults(t *testing.T) map[string]string {
	t.Helper()
	testenv.SkipIfShort(t)
	bin := builtAgent
	helpOnce.Do(func() {
		out, code, err := runE(context.Background(), 30*time.Second, "", bin, "bootstrap", "--help")
		if err == nil && code != 0 {
			err = fmt.Errorf("bootstrap --help: exit %d:\n%s", code, out)
		}
		if err != nil {
			helpErr = err
			return
		}
		helpDefs = map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			m := helpFlagRE.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			def := ""
			if d := helpDefaultRE.FindStringSubmatch(line); d != nil {
				def = d[1]
			}
			helpDefs[m[1]] = def
		}
	})
	if helpErr != nil {
		t.Fatal(helpErr)
	}
	return helpDefs
}

func TestFlagListMatchesBinary(t *testing.T) {
	defs := helpDefaults(t)
	var have []string
	for f := range defs {
		have = append(have, f)
	}
	slices.Sort(have)
	want := slices.Sorted(slices.Values(bootstrapFlags))
	if !slices.Equal(have, want) {
		t.Errorf("bootstrap --help lists flags %q,\nthis test (and agent.env.example) knows %q", have, want)
	}
}

// TestUnitsMatchAgentDefaults ties the paths and names in the units to the
// agent's flag defaults, so changing one side alone fails.
func TestUnitsMatchAgentDefaults(t *testing.T) {
	defs := helpDefaults(t)
	agent := parseUnit(t, agentUnit)
	drop := parseUnit(t, dropIn)

	agent.want(t, "Unit", "Before", "etcd.service")
	agent.want(t, "Unit", "Wants", "network-online.target")
	agent.want(t, "Unit", "After", "network-online.target")
	agent.want(t, "Service", "Type", "oneshot")
	agent.want(t, "Service", "RemainAfterExit", "yes")
	agent.want(t, "Service", "EnvironmentFile", "/etc/etcd-discovery-agent/agent.env")
	if got := agent.one(t, "Service", "ExecStart"); got != agentBin+" bootstrap" {
		t.Errorf("ExecStart=%s, want %s bootstrap", got, agentBin)
	}
	agent.want(t, "Service", "RuntimeDirectoryPreserve", "yes")
	agent.want(t, "Install", "WantedBy", "multi-user.target")
	agent.want(t, "Install", "RequiredBy", "etcd.service")

	runDir := "/run/" + agent.one(t, "Service", "RuntimeDirectory")
	if got := filepath.Dir(defs["env-file"]); got != runDir {
		t.Errorf("--env-file default %s is not in the unit's RuntimeDirectory %s", defs["env-file"], runDir)
	}
	if got, want := defs["state-dir"], "/var/lib/"+agent.one(t, "Service", "StateDirectory"); got != want {
		t.Errorf("--state-dir default %s, unit's StateDirectory is %s", got, want)
	}

	drop.want(t, "Unit", "Requires", agentUnit)
	drop.want(t, "Unit", "After", agentUnit)
	drop.want(t, "Service", "EnvironmentFile", "-"+defs["env-file"])
	// promote runs after etcd started, with the agent's own settings.
	drop.want(t, "Service", "EnvironmentFile", "/etc/etcd-discovery-agent/agent.env")
	if got := drop.one(t, "Service", "ExecStartPost"); got != "+"+agentBin+" promote" {
		t.Errorf("drop-in ExecStartPost=%s, want +%s promote", got, agentBin)
	}
}

// TestAgentEnvExample checks that agent.env.example is in the subset that
// systemd and sh read alike, and that it sets and shows only real flags.
func TestAgentEnvExample(t *testing.T) {
	data := readFile(t, exampleEnv)
	known := map[string]bool{}
	for _, f := range bootstrapFlags {
		known[envName(f)] = true
	}

	vars, err := envfile.Parse(data)
	if err != nil {
		t.Fatalf("%s is not in the safe subset: %v", exampleEnv, err)
	}
	mentioned := map[string]bool{}
	for _, v := range vars {
		if !known[v.Name] {
			t.Errorf("%s sets %s, which is not EDA_ plus a bootstrap flag", exampleEnv, v.Name)
		}
		mentioned[v.Name] = true
	}
	if !mentioned[envName("discovery-token")] || !mentioned[envName("discovery-endpoints")] {
		t.Errorf("%s does not set %s and %s, the quick start's source of the cluster", exampleEnv, envName("discovery-token"), envName("discovery-endpoints"))
	}

	// Commented-out settings must be valid once the # is removed.
	for i, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#EDA_") {
			continue
		}
		vs, err := envfile.Parse([]byte(line[1:] + "\n"))
		if err != nil || len(vs) != 1 {
			t.Errorf("%s:%d: uncommented, %q is not in the safe subset: %v", exampleEnv, i+1, line[1:], err)
			continue
		}
		if !known[vs[0].Name] {
			t.Errorf("%s:%d: %s is not EDA_ plus a bootstrap flag", exampleEnv, i+1, vs[0].Name)
		}
		mentioned[vs[0].Name] = true
	}
	for _, f := range bootstrapFlags {
		if !mentioned[envName(f)] {
			t.Errorf("%s does not show %s (--%s)", exampleEnv, envName(f), f)
		}
	}
}
