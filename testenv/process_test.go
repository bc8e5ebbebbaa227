package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv tells TestHelperProcess, in a child test process, what to
// start; it is empty in a normal run.
const helperEnv = "EDA_TESTENV_HELPER"

// TestHelperProcess is not a test of its own. In the child test process
// that startHelper runs, it starts processes through testenv the way tests
// do, prints READY and waits to be killed, so that the parent can check
// what a killed test process leaves behind. The processes are sleeps,
// whose last argument (3601 to 3604) tells them apart, and named:
//
//	procs  sleep 3601 (Start), sh with its "agent" sleep 3602 (StartHostArgs),
//	       named (Named)
//	net    a Network (NETWORK <id> is printed) with named on its router,
//	       sleep 3603 in host a (NetHost.Start), and sh with sleep 3604 in
//	       host b (StartNetHost)
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "procs":
		Start(t, "sleep", sleep, []string{"3601"}, nil)
		StartHostArgs(t, sleep, EtcdBinary(t), Hosts(t, "h", 1)[0], "3602")
		Named(t, "example.test.")
	case "net":
		n := NewNetwork(t)
		fmt.Printf("NETWORK %s\n", n.id)
		n.Named(t, "example.test.")
		n.AddHost(t, "a").Start(t, "sleep", sleep, []string{"3603"}, nil)
		StartNetHost(t, sleep, EtcdBinary(t), n.AddHost(t, "b"), "3604")
	default:
		t.Fatalf("%s=%q", helperEnv, mode)
	}
	fmt.Printf("TEMPDIR %s\nREADY\n", filepath.Dir(t.TempDir()))
	time.Sleep(2 * time.Minute)
	t.Fatal("not killed within 2 minutes")
}

// startHelper runs TestHelperProcess in a child test process, in mode, and
// waits until it has started everything. It returns the child and what it
// printed, by line. The child's temporary directories, which it cannot
// remove when it is killed, are removed when the test ends.
func startHelper(t *testing.T, mode string, wait time.Duration) (*Process, []string) {
	t.Helper()
	p := Start(t, "helper-"+mode, os.Args[0], []string{"-test.run=^TestHelperProcess$", "-test.timeout=10m"}, []string{helperEnv + "=" + mode})
	deadline := time.Now().Add(wait)
	for !strings.Contains(p.Output(), "\nREADY\n") {
		select {
		case <-p.Done():
			t.Fatalf("helper exited (%d) before it was ready:\n%s", p.ExitCode(), p.Output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper not ready after %s:\n%s", wait, p.Output())
		}
	}
	lines := strings.Split(p.Output(), "\n")
	for _, l := range lines {
		dir, ok := strings.CutPrefix(l, "TEMPDIR ")
		if ok && filepath.Dir(dir) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(dir), "TestHelperProcess") {
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
	}
	return p, lines
}

// proc is a process as /proc shows it.
type proc struct {
	pid, ppid int
	comm      string // the executable's name
	args      []string
	state     byte   // R, S, Z, ...
	start     string // start time in clock ticks after boot: with pid, it names the process
}

// readProc reads /proc/PID; ok is false when there is no such process.
func readProc(pid int) (p proc, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(stat)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return proc{}, false
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3 (state), f[19] field 22 (starttime)
	if len(f) < 20 {
		return proc{}, false
	}
	p = proc{pid: pid, comm: s[open+1 : end], state: f[0][0], start: f[19]}
	p.ppid, _ = strconv.Atoi(f[1])
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	p.args = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return p, true
}

// descendants returns every process below pid (children, their children,
// ...).
func descendants(t *testing.T, pid int) []proc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	children := map[int][]proc{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(n); ok {
			children[p.ppid] = append(children[p.ppid], p)
		}
	}
	var out []proc
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0].pid]...)
	}
	return out
}

// wantProc describes an expected process: its executable's name, its last
// argument if not "", and its parent's executable's name if not "".
type wantProc struct{ comm, lastArg, parent string }

func (w wantProc) String() string {
	return fmt.Sprintf("%s %s (child of %q)", w.comm, w.lastArg, w.parent)
}

// waitTree waits up to 30 s until the processes below root include every
// wanted one, and returns them all.
func waitTree(t *testing.T, root int, want ...wantProc) []proc {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tree := descendants(t, root)
		comm := map[int]string{root: "helper"}
		for _, p := range tree {
			comm[p.pid] = p.comm
		}
		var missing []string
		for _, w := range want {
			found := false
			for _, p := range tree {
				if p.comm == w.comm && (w.lastArg == "" || p.args[len(p.args)-1] == w.lastArg) && (w.parent == "" || comm[p.ppid] == w.parent) {
					found = true
				}
			}
			if !found {
				missing = append(missing, w.String())
			}
		}
		if len(missing) == 0 {
			for _, p := range tree {
				t.Logf("started: pid %d, parent %d (%s): %q", p.pid, p.ppid, comm[p.ppid], p.args)
			}
			return tree
		}
		if time.Now().After(deadline) {
			t.Fatalf("below the helper (pid %d) after 30 s: %v; missing %s", root, tree, strings.Join(missing, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killAndCheck SIGKILLs the helper, as a -timeout panic or the OOM killer
// ends a test process (no cleanup runs), and fails the test unless every
// process of tree is gone (or a zombie, dead but not yet reaped by
// whoever inherited it) within 10 s.
func killAndCheck(t *testing.T, helper *Process, tree []proc) {
	t.Helper()
	helper.Signal(syscall.SIGKILL)
	helper.Wait(t, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var alive []string
		for _, p := range tree {
			now, ok := readProc(p.pid)
			if ok && now.start == p.start && now.state != 'Z' && now.state != 'X' {
				alive = append(alive, fmt.Sprintf("%d %q", p.pid, now.args))
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the test process was killed, these processes it started still run:\n%s", strings.Join(alive, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// What testenv starts dies with the test process that started it, also
// when that process is killed and runs no cleanup: a plain process, the
// agent that sh runs before exec'ing etcd (a grandchild), and a DNS
// server.
func TestStartedProcessesDieWithTheTestProcess(t *testing.T) {
	killedHelper(t, "procs", time.Minute,
		wantProc{"sleep", "3601", "helper"},
		wantProc{"sh", "", "helper"},
		wantProc{"sleep", "3602", "sh"},
		wantProc{"named", "", "helper"})
}

// killedHelper runs TestHelperProcess in mode (see startHelper), waits
// until the processes want run below it (waitTree), kills it and checks
// that they died with it (killAndCheck). It returns what the helper
// printed, by line.
func killedHelper(t *testing.T, mode string, wait time.Duration, want ...wantProc) []string {
	t.Helper()
	// What the helper starts; without one, the helper would skip instead
	// of printing READY.
	NamedBinary(t)
	EtcdBinary(t)
	setprivBinary(t)
	helper, lines := startHelper(t, mode, wait)
	killAndCheck(t, helper, waitTree(t, helper.PID(), want...))
	return lines
}

// The same in network namespaces: what `ip netns exec` runs, named on the
// router and the agent under sh on a host die with the test process; and
// the namespaces, link, route and /etc/netns entries it leaves behind do
// not keep the next Network from being built.
func TestNetworkAfterAKilledRun(t *testing.T) {
	needNetns(t)
	// Between the kill and this test taking the network lock, another test
	// process may take it first and clear the leftovers itself (what is
	// tested here, but then not seen): try again, a few times.
	var id string
	var leftovers func() []string
	for try := 1; ; try++ {
		id = killedNetwork(t)
		// Under the lock no other test process changes the network while
		// this test looks at the leftovers and builds its own.
		release := takeNetworkLock(t)
		leftovers = func() []string { return networkLeftovers(t, id) }
		got := leftovers()
		if len(got) == 7 {
			t.Cleanup(release)
			break
		}
		release()
		if len(got) == 0 && try < 3 {
			t.Logf("another test process cleared the killed run's network first (try %d); again", try)
			continue
		}
		t.Fatalf("the killed run left %q; want its 3 namespaces, 2 /etc/netns entries, link and route", got)
	}

	n := buildNetwork(t)
	if got := leftovers(); len(got) != 0 {
		t.Errorf("after building a new network, the killed run's %q are still there", got)
	}
	named := n.Named(t, "example.test.")
	a := n.AddHost(t, "a")
	named.MustUpdate(t, "update add a.example.test. 60 A "+a.Addr.String())
	if out := n.execIn(t, a.NS, "dig", "+short", "+time=2", "+tries=1", "a.example.test", "A"); out != a.Addr.String() {
		t.Errorf("host a resolved a.example.test to %q through the new network; want %s", out, a.Addr)
	}
}

// killedNetwork runs a helper that builds a network and starts processes
// in it, kills it, checks that its processes died with it, and returns
// the network's ID.
func killedNetwork(t *testing.T) string {
	t.Helper()
	// The helper waits for the network lock as long as other test
	// processes hold it.
	lines := killedHelper(t, "net", 5*time.Minute,
		wantProc{"named", "", "helper"},
		wantProc{"sleep", "3603", "helper"},
		wantProc{"sh", "", "helper"},
		wantProc{"sleep", "3604", "sh"})
	var id string
	for _, l := range lines {
		if s, ok := strings.CutPrefix(l, "NETWORK "); ok {
			id = s
		}
	}
	if !ownLink.MatchString(id + "-t") {
		t.Fatalf("helper printed no network ID:\n%s", strings.Join(lines, "\n"))
	}
	return id
}

// networkLeftovers lists what of network id is still on the host.
func networkLeftovers(t *testing.T, id string) []string {
	t.Helper()
	var found []string
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, ns := range []string{id + "-r", id + "-h1", id + "-h2"} {
		if strings.Contains("\n"+string(out), "\n"+ns+" ") || strings.Contains("\n"+string(out), "\n"+ns+"\n") {
			found = append(found, "namespace "+ns)
		}
	}
	for _, p := range []string{"/sys/class/net/" + id + "-t", "/etc/netns/" + id + "-h1", "/etc/netns/" + id + "-h2"} {
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	route, err := exec.Command("ip", "route", "show", "exact", networkPrefix).Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	if strings.Contains(string(route), id+"-t") {
		found = append(found, "route "+strings.TrimSpace(string(route)))
	}
	return found
}

// Only names that NewNetwork makes count as its leftovers.
func TestOwnNames(t *testing.T) {
	for _, tc := range []struct {
		name      string
		namespace bool
		link      bool
	}{
		{"eda0a1b2-r", true, false},
		{"eda0a1b2-h1", true, false},
		{"eda0a1b2-h250", true, false},
		{"eda0a1b2-t", false, true},
		{"eda0a1b2-tr", false, false}, // the router's end, inside the router namespace
		{"eda0a1b2-1", false, false},  // a host's link, inside its namespace
		{"eda-1234-5678", false, false},
		{"eda0A1B2-r", false, false},
		{"eda0a1b-r", false, false},
		{"xeda0a1b2-r", false, false},
		{"eda0a1b2-r-x", false, false},
		{"eth0", false, false},
	} {
		if got := ownNamespace.MatchString(tc.name); got != tc.namespace {
			t.Errorf("namespace %q counts as a Network's: %v, want %v", tc.name, got, tc.namespace)
		}
		if got := ownLink.MatchString(tc.name); got != tc.link {
			t.Errorf("link %q counts as a Network's: %v, want %v", tc.name, got, tc.link)
		}
	}
}
