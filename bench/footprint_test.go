package bench

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// footprintBefore is the commit BenchmarkFootprint compares against: the
// last one before the registry and cluster clients moved to
// go.etcd.io/etcd/client/v2 and client/v3 (hand-written v2 keys API and
// JSON-gateway clients).
const footprintBefore = "3e4d213"

// footprintTimeout is the -timeout the command in the report names.
const footprintTimeout = "20m"

// timeBinary is GNU time (Debian's package time), which reports a
// process's peak RSS (%M, KiB).
const timeBinary = "/usr/bin/time"

// A build of the agent: where it came from and what it weighs.
type agentBuild struct {
	label    string         // "before" or "after"
	rev      string         // what it was built from
	bin      string         // CGO_ENABLED=0, -trimpath, -ldflags='-s -w'
	size     int64          // bytes of bin
	symbols  string         // the same build with its symbol table, for attribution
	deps     int            // go list -deps ./cmd/etcd-discovery-agent | wc -l
	nonStd   int            // of those, outside the standard library
	modules  map[string]int // packages per module ("std" for the standard library)
	pkgOwner map[string]string
}

// BenchmarkFootprint measures the agent's binary before and after it took
// etcd's client libraries: the stripped size of
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/etcd-discovery-agent
//
// the packages it links (go list -deps), the peak RSS (GNU time's %M) of
// --help and of a real bootstrap (one host, a size-1 token, against a
// real registry: Debian's etcd with --enable-v2, v2 and v3 tokens), and
// what each module costs: its bytes in the binary (symbol sizes in
// PROGBITS sections of the same build with its symbol table) and what its
// package initialisers allocate and take (GODEBUG=inittrace=1 on --help).
// "before" is commit footprintBefore, exported from the git history with
// git archive into a temporary directory (no worktree is made); "after"
// is the module as it is. Runs alternate between the two binaries.
func BenchmarkFootprint(b *testing.B) {
	testenv.SkipIfShort(b)
	if _, err := os.Stat(timeBinary); err != nil {
		testenv.SkipUnlessCI(b, "no %s (apt-get install time): %v", timeBinary, err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		testenv.SkipUnlessCI(b, "needs git to build commit %s: %v", footprintBefore, err)
	}
	rounds := benchRounds(b, 10)
	info := runInfo(b, "BenchmarkFootprint", footprintTimeout, []string{testenv.EtcdBinary(b), "--version"}) // the load average at the start
	root := testenv.ModuleRoot(b)
	if _, err := run(root, nil, "git", "cat-file", "-e", footprintBefore+"^{commit}"); err != nil {
		testenv.SkipUnlessCI(b, "commit %s is not in this clone's history: %v", footprintBefore, err)
	}
	tmp := b.TempDir()
	src := filepath.Join(tmp, "src-before")
	if err := exportCommit(root, footprintBefore, src); err != nil {
		b.Fatal(err)
	}
	after := describe(root)
	builds := []*agentBuild{
		buildAgent(b, "before", footprintBefore, src, filepath.Join(tmp, "before")),
		buildAgent(b, "after", after, root, filepath.Join(tmp, "after")),
	}

	registry, _ := testenv.Registry(b)
	type run struct {
		build *agentBuild
		kind  string // help, v2, v3
	}
	runs := []run{{builds[0], "help"}, {builds[1], "help"}, {builds[0], "v2"}, {builds[1], "v2"}, {builds[1], "v3"}}
	rss := map[string][]float64{}  // KiB, by label/kind
	wall := map[string][]float64{} // ms
	for r := 0; r < rounds; r++ {
		for i := range runs {
			ru := runs[(i+r)%len(runs)]
			k, ms := peakRSS(b, ru.build, ru.kind, registry, tmp, r)
			rss[ru.build.label+"/"+ru.kind] = append(rss[ru.build.label+"/"+ru.kind], k)
			wall[ru.build.label+"/"+ru.kind] = append(wall[ru.build.label+"/"+ru.kind], ms)
		}
	}
	inits := map[string]map[string]initCost{}
	for _, bu := range builds {
		inits[bu.label] = initTrace(b, bu, rounds)
	}
	sizes := map[string]map[string]int64{}
	for _, bu := range builds {
		sizes[bu.label] = symbolBytes(b, bu)
	}

	var sb strings.Builder
	sb.WriteString(info)
	fmt.Fprintf(&sb, "before = commit `%s`, exported with `git archive` into a temporary directory and built there; after = `%s`, this module as it is. "+
		"Both built with `CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/etcd-discovery-agent`. "+
		"Peak RSS is GNU time's `%%M` (`/usr/bin/time -f %%M`, KiB; 1 MiB = 1024 KiB) over %d runs of each, the binaries alternating: `--help`, and `bootstrap` of one host on a fresh size-1 token (it registers, finds the token full with itself, writes the env file and exits 0) against Debian's etcd with `--enable-v2`, through its v2 keys API (`--discovery URL`) and its v3 API (`--discovery-token`, after only).\n\n",
		footprintBefore, after, rounds)
	mib := func(k float64) string { return fmt.Sprintf("%.1f", k/1024) }
	rows := [][]string{
		{"stripped binary, MiB", fmt.Sprintf("%.2f", float64(builds[0].size)/(1<<20)), fmt.Sprintf("%.2f", float64(builds[1].size)/(1<<20)), fmt.Sprintf("%.2f", float64(builds[1].size)/float64(builds[0].size))},
		{"`go list -deps ./cmd/etcd-discovery-agent \\| wc -l`", strconv.Itoa(builds[0].deps), strconv.Itoa(builds[1].deps), fmt.Sprintf("%.2f", float64(builds[1].deps)/float64(builds[0].deps))},
		{"of those outside the standard library", strconv.Itoa(builds[0].nonStd), strconv.Itoa(builds[1].nonStd), fmt.Sprintf("%.2f", float64(builds[1].nonStd)/float64(builds[0].nonStd))},
		{"modules (the standard library counted as one)", strconv.Itoa(len(builds[0].modules)), strconv.Itoa(len(builds[1].modules)), "-"},
	}
	for _, kind := range []struct{ id, what string }{{"help", "`--help`"}, {"v2", "`bootstrap`, v2 token"}, {"v3", "`bootstrap`, v3 token"}} {
		x, y := rss["before/"+kind.id], rss["after/"+kind.id]
		row := []string{kind.what + ": peak RSS, MiB: median (max)", "-", "-", "-"}
		if len(x) > 0 {
			row[1] = fmt.Sprintf("%s (%s)", mib(median(x)), mib(slices.Max(x)))
		}
		if len(y) > 0 {
			row[2] = fmt.Sprintf("%s (%s)", mib(median(y)), mib(slices.Max(y)))
		}
		if len(x) > 0 && len(y) > 0 {
			row[3] = fmt.Sprintf("%.2f", median(y)/median(x))
		}
		rows = append(rows, row)
		wx, wy := wall["before/"+kind.id], wall["after/"+kind.id]
		row = []string{kind.what + ": wall time under `time`, ms: median", "-", "-", "-"}
		if len(wx) > 0 {
			row[1] = fmt.Sprintf("%.1f", median(wx))
		}
		if len(wy) > 0 {
			row[2] = fmt.Sprintf("%.1f", median(wy))
		}
		if len(wx) > 0 && len(wy) > 0 {
			row[3] = fmt.Sprintf("%.2f", median(wy)/median(wx))
		}
		rows = append(rows, row)
	}
	table(&sb, "lrrr", []string{"", "before", "after", "after/before"}, rows)

	var worst float64
	for _, kind := range []string{"v2", "v3"} {
		if xs := rss["after/"+kind]; len(xs) > 0 {
			worst = max(worst, slices.Max(xs))
		}
	}
	fmt.Fprintf(&sb, "Target: peak RSS of `bootstrap` at most 20 MB. The largest of every `bootstrap` run after: %s MiB (%.1f MB).\n\n", mib(worst), worst*1024/1e6)

	sb.WriteString("What each module costs: its packages, its bytes in the binary (sizes of its symbols in the file's PROGBITS sections, from the same build with its symbol table; generic instances and type data count for the package that declares them), " +
		"and what its package initialisers allocate and take before `main` runs (GODEBUG=inittrace=1 on `--help`, median over the runs). " +
		"The last row is what no symbol accounts for (mainly the function tables, runtime.pclntab, and ELF headers). Sorted by the bytes after:\n\n")
	mods := map[string]bool{}
	for _, bu := range builds {
		for m := range bu.modules {
			mods[m] = true
		}
		for m := range sizes[bu.label] {
			mods[m] = true
		}
	}
	modList := slices.Collect(maps.Keys(mods))
	slices.SortFunc(modList, func(x, y string) int {
		if c := sizes["after"][y] - sizes["after"][x]; c != 0 {
			if c > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(x, y)
	})
	kib := func(n int64) string {
		switch {
		case n == 0:
			return "-"
		case n < 512:
			return "<1"
		}
		return fmt.Sprintf("%.0f", float64(n)/1024)
	}
	rows = nil
	var attributed [2]int64
	for _, m := range modList {
		if m == otherSymbols {
			continue
		}
		row := []string{modName(m)}
		for _, bu := range builds {
			row = append(row, pkgCount(bu.modules[m]))
		}
		for i, bu := range builds {
			row = append(row, kib(sizes[bu.label][m]))
			attributed[i] += sizes[bu.label][m]
		}
		for _, bu := range builds {
			c := inits[bu.label][m]
			row = append(row, initCell(c))
		}
		rows = append(rows, row)
	}
	rows = append(rows, []string{"not attributed to a package", "", "",
		kib(builds[0].size - attributed[0]), kib(builds[1].size - attributed[1]), "", ""})
	table(&sb, "lrrrrrr", []string{"module", "packages before", "packages after", "KiB before", "KiB after", "init before: KiB allocated, ms", "init after: KiB allocated, ms"}, rows)

	writeSection(b, "BenchmarkFootprint", sb.String())
	b.Run("sizes", func(b *testing.B) {
		b.ReportMetric(float64(builds[0].size), "before-bytes")
		b.ReportMetric(float64(builds[1].size), "after-bytes")
		b.ReportMetric(float64(builds[0].deps), "before-packages")
		b.ReportMetric(float64(builds[1].deps), "after-packages")
		for k, xs := range rss {
			b.ReportMetric(median(xs), strings.ReplaceAll(k, "/", "-")+"-rss-KiB")
		}
		b.ReportMetric(0, "ns/op")
	})
}

// otherSymbols are symbols that belong to no package (linker data).
const otherSymbols = "(linker)"

func modName(m string) string {
	switch m {
	case "std":
		return "Go standard library and runtime"
	case "github.com/etcd-discovery-agent/etcd-discovery-agent":
		return "this module"
	}
	return "`" + m + "`"
}

func pkgCount(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func initCell(c initCost) string {
	if c.bytes == 0 && c.ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f, %.2f", c.bytes/1024, c.ms)
}

// run runs a program in dir with env added to this process's environment
// and returns its combined output.
func run(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// exportCommit writes the tree of commit rev into dir, with git archive
// and tar: nothing is added to the repository (no worktree, no ref).
func exportCommit(root, rev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tarball := dir + ".tar"
	if _, err := run(root, nil, "git", "archive", "--format=tar", "--output", tarball, rev); err != nil {
		return err
	}
	defer os.Remove(tarball)
	_, err := run(dir, nil, "tar", "-xf", tarball)
	return err
}

// describe names the working tree's commit, with -dirty if it has changes.
func describe(root string) string {
	out, err := run(root, nil, "git", "describe", "--always", "--dirty")
	if err != nil {
		return "the working tree"
	}
	return strings.TrimSpace(out)
}

// buildAgent builds ./cmd/etcd-discovery-agent of the module in src
// stripped and with symbols, and lists its packages.
func buildAgent(b *testing.B, label, rev, src, dir string) *agentBuild {
	b.Helper()
	bu := &agentBuild{label: label, rev: rev, bin: filepath.Join(dir, "stripped", "etcd-discovery-agent"), symbols: filepath.Join(dir, "symbols", "etcd-discovery-agent")}
	env := []string{"CGO_ENABLED=0", "GOWORK=off", "GOFLAGS="}
	if _, err := run(src, env, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bu.bin, "./cmd/etcd-discovery-agent"); err != nil {
		b.Fatalf("build %s: %v", label, err)
	}
	if _, err := run(src, env, "go", "build", "-trimpath", "-o", bu.symbols, "./cmd/etcd-discovery-agent"); err != nil {
		b.Fatalf("build %s with symbols: %v", label, err)
	}
	fi, err := os.Stat(bu.bin)
	if err != nil {
		b.Fatal(err)
	}
	bu.size = fi.Size()
	// Listed as the report's command lists them, in the default
	// environment (with cgo, so runtime/cgo is one of them).
	out, err := run(src, []string{"GOWORK=off", "GOFLAGS="}, "go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{with .Module}}{{.Path}}{{end}}", "./cmd/etcd-discovery-agent")
	if err != nil {
		b.Fatalf("go list %s: %v", label, err)
	}
	bu.modules, bu.pkgOwner = map[string]int{}, map[string]string{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		bu.deps++
		mod := "std"
		if f[1] != "true" {
			bu.nonStd++
			if len(f) < 3 {
				b.Fatalf("go list %s: package %s has no module", label, f[0])
			}
			mod = f[2]
		}
		bu.modules[mod]++
		bu.pkgOwner[f[0]] = mod
	}
	return bu
}

// peakRSS runs one build once under GNU time and returns its peak RSS in
// KiB and its wall time in ms: --help, or bootstrap of a fresh host on a
// fresh size-1 token (kind v2 or v3), which must exit 0 having written an
// env file that names the host as the one member.
func peakRSS(b *testing.B, bu *agentBuild, kind, registry, tmp string, round int) (float64, float64) {
	b.Helper()
	args := []string{"--help"}
	var envFile string
	if kind != "help" {
		h := testenv.Hosts(b, fmt.Sprintf("fp%d-%s-%s-h", round, bu.label, kind), 1)[0]
		defer os.RemoveAll(h.Dir)
		token, err := newToken(registry, kind == "v3", fmt.Sprintf("fp-%d-%d-%s", time.Now().UnixNano(), round, bu.label), 1)
		if err != nil {
			b.Fatalf("%s token: %v", kind, err)
		}
		switch kind {
		case "v2":
			args = testenv.AgentArgs(h, token)
		case "v3":
			args = v3AgentArgs(h, token, registry)
		}
		envFile = h.EnvFile()
		defer func() {
			env := testenv.ReadEnvFile(b, envFile)
			if want := h.Name + "=" + h.PeerURL(); env["ETCD_INITIAL_CLUSTER"] != want {
				b.Fatalf("%s %s: ETCD_INITIAL_CLUSTER=%q, want %q", bu.label, kind, env["ETCD_INITIAL_CLUSTER"], want)
			}
		}()
	}
	out := filepath.Join(tmp, "time.out")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, timeBinary, append([]string{"-f", "%M", "-o", out, bu.bin}, args...)...)
	start := time.Now()
	log, err := cmd.CombinedOutput()
	ms := float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		b.Fatalf("%s %s %s: %v\n%s", bu.label, bu.bin, strings.Join(args, " "), err, log)
	}
	text, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	k, err := strconv.ParseFloat(strings.TrimSpace(string(text)), 64)
	if err != nil {
		b.Fatalf("%s's output %q: %v", timeBinary, text, err)
	}
	return k, ms
}

// initCost is what a module's package initialisers took.
type initCost struct{ bytes, ms float64 }

var initLine = regexp.MustCompile(`^init (\S+) @\S+ ms, (\S+) ms clock, (\d+) bytes, \d+ allocs$`)

// initTrace runs --help with GODEBUG=inittrace=1 rounds times and returns,
// per module, the median over the runs of its initialisers' allocations
// and clock time.
func initTrace(b *testing.B, bu *agentBuild, rounds int) map[string]initCost {
	b.Helper()
	samples := map[string][][2]float64{}
	for r := 0; r < rounds; r++ {
		cmd := exec.Command(bu.bin, "--help")
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		per := map[string][2]float64{}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			m := initLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			mod := ownerOf(bu, m[1])
			ms, _ := strconv.ParseFloat(m[2], 64)
			by, _ := strconv.ParseFloat(m[3], 64)
			c := per[mod]
			per[mod] = [2]float64{c[0] + by, c[1] + ms}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("%s --help: %v", bu.label, err)
		}
		for mod, c := range per {
			samples[mod] = append(samples[mod], c)
		}
	}
	out := map[string]initCost{}
	for mod, cs := range samples {
		var by, ms []float64
		for _, c := range cs {
			by, ms = append(by, c[0]), append(ms, c[1])
		}
		out[mod] = initCost{bytes: median(by), ms: median(ms)}
	}
	return out
}

// ownerOf is the module of package pkg in build bu ("std" for the standard
// library, including its vendored packages; main is this module).
func ownerOf(bu *agentBuild, pkg string) string {
	if m, ok := bu.pkgOwner[pkg]; ok {
		return m
	}
	if pkg == "main" {
		return bu.pkgOwner["github.com/etcd-discovery-agent/etcd-discovery-agent/cmd/etcd-discovery-agent"]
	}
	if strings.HasPrefix(pkg, "go:") {
		return otherSymbols
	}
	if strings.HasPrefix(pkg, "vendor/") || !strings.Contains(strings.SplitN(pkg, "/", 2)[0], ".") {
		return "std"
	}
	return otherSymbols
}

// symbolBytes sums the sizes of the symbols of bu's build with symbols
// that occupy the file (sections of type PROGBITS), by module.
func symbolBytes(b *testing.B, bu *agentBuild) map[string]int64 {
	b.Helper()
	f, err := elf.Open(bu.symbols)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	for _, s := range syms {
		if s.Section >= elf.SectionIndex(len(f.Sections)) || s.Section == elf.SHN_UNDEF {
			continue
		}
		if f.Sections[s.Section].Type != elf.SHT_PROGBITS || s.Size == 0 {
			continue
		}
		out[ownerOf(bu, symbolPackage(s.Name))] += int64(s.Size)
	}
	return out
}

// symbolPackage is the import path of the package a Go symbol belongs to:
// "google.golang.org/grpc.(*Server).Serve" is google.golang.org/grpc's,
// "type:*go.etcd.io/etcd/client/v3.Client" go.etcd.io/etcd/client/v3's,
// an instance "slices.Sort[...]" slices'. Linker symbols ("go:...",
// "runtime.etext") come out as what they start with.
func symbolPackage(name string) string {
	for _, p := range []string{"type:", "go:itab.", "go:info.", "gclocals·"} {
		name = strings.TrimPrefix(name, p)
	}
	name = strings.TrimLeft(name, "*(")
	if i := strings.IndexAny(name, "[,"); i >= 0 {
		name = name[:i] // an instance's shapes; an itab's interface
	}
	slash := max(strings.LastIndexByte(name, '/'), 0)
	if dot := strings.IndexByte(name[slash:], '.'); dot >= 0 {
		return name[:slash+dot]
	}
	return name
}

func TestSymbolPackage(t *testing.T) {
	for _, tc := range []struct{ sym, want string }{
		{"google.golang.org/grpc.(*Server).Serve", "google.golang.org/grpc"},
		{"type:*go.etcd.io/etcd/client/v3.Client", "go.etcd.io/etcd/client/v3"},
		{"go:itab.*go.uber.org/zap.Logger,io.Writer", "go.uber.org/zap"},
		{"go:itab.*net.TCPConn,google.golang.org/grpc/credentials.AuthInfo", "net"},
		{"slices.SortFunc[go.shape.*uint8,go.shape.func(*uint8, *uint8) int]", "slices"},
		{"runtime.main", "runtime"},
		{"main.main", "main"},
		{"vendor/golang.org/x/net/idna.idnaValues", "vendor/golang.org/x/net/idna"},
		{"github.com/miekg/dns.(*Msg).Pack", "github.com/miekg/dns"},
		{"go.etcd.io/etcd/api/v3/etcdserverpb.init", "go.etcd.io/etcd/api/v3/etcdserverpb"},
	} {
		if got := symbolPackage(tc.sym); got != tc.want {
			t.Errorf("symbolPackage(%q) = %q, want %q", tc.sym, got, tc.want)
		}
	}
}
