package bench

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// benchRounds is the number of measured rounds: $BENCH_ROUNDS, or def when
// it is not set. Anything but a positive integer fails the benchmark.
func benchRounds(b *testing.B, def int) int {
	b.Helper()
	s, ok := os.LookupEnv("BENCH_ROUNDS")
	if !ok {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("BENCH_ROUNDS=%q: want a positive integer (unset: %d rounds)", s, def)
	}
	return n
}

// table renders a markdown table; align has one letter per column, l or r.
func table(sb *strings.Builder, align string, head []string, rows [][]string) {
	sb.WriteString("| " + strings.Join(head, " | ") + " |\n|")
	for _, a := range align {
		if a == 'r' {
			sb.WriteString(" ---: |")
		} else {
			sb.WriteString(" --- |")
		}
	}
	sb.WriteString("\n")
	for _, r := range rows {
		sb.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	sb.WriteString("\n")
}

// command is the command line that runs benchmark name alone with the
// given number of rounds (omitted when BENCH_ROUNDS was not set).
func command(name, timeout string) string {
	env := ""
	if s, ok := os.LookupEnv("BENCH_ROUNDS"); ok {
		env = "BENCH_ROUNDS=" + s + " "
	}
	return fmt.Sprintf("%sgo test ./bench -run '^$' -bench '^%s$' -benchtime 1x -timeout %s", env, name, timeout)
}

// runInfo is the first lines of a benchmark's section: the command that
// produced it, when, and on what, with the first line of each of the
// given programs' version output (program and its version flag).
func runInfo(b *testing.B, name, timeout string, versions ...[]string) string {
	b.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "Produced by\n\n```sh\n%s\n```\n\n", command(name, timeout))
	fmt.Fprintf(&sb, "on %s: %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine())
	for _, v := range versions {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, v[0], v[1:]...).CombinedOutput()
		cancel()
		if err != nil {
			b.Fatalf("%s: %v: %s", strings.Join(v, " "), err, out)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		fmt.Fprintf(&sb, "; `%s`: %s", filepath.Base(v[0]), first)
	}
	sb.WriteString(".\n\n")
	return sb.String()
}

// machine describes this machine from /proc: cores, CPU model, memory,
// kernel, Go version, and the load average when the benchmark started
// (other work on the machine shows in the figures).
func machine() string {
	field := func(file, key string) string {
		b, _ := os.ReadFile(file)
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
		return "?"
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	mem := field("/proc/meminfo", "MemTotal")
	if kb, err := strconv.Atoi(strings.TrimSuffix(mem, " kB")); err == nil {
		mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d cores (%s), %s RAM, Linux %s, %s, load average %s",
		runtime.NumCPU(), field("/proc/cpuinfo", "model name"), mem, strings.TrimSpace(string(kernel)),
		runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
}

// writeSection prints a benchmark's markdown section and, when BENCH_DOC
// names a file (relative to the module root, e.g. BENCHMARKS.md), puts it
// there in place of what stands between the lines "<!-- BEGIN name -->"
// and "<!-- END name -->".
func writeSection(b *testing.B, name, md string) {
	b.Helper()
	fmt.Printf("\n%s\n", md)
	doc := os.Getenv("BENCH_DOC")
	if doc == "" {
		return
	}
	if !filepath.IsAbs(doc) {
		doc = filepath.Join(testenv.ModuleRoot(b), doc)
	}
	old, err := os.ReadFile(doc)
	if err != nil {
		b.Fatalf("BENCH_DOC: %v", err)
	}
	out, err := replaceSection(old, name, md)
	if err != nil {
		b.Fatalf("BENCH_DOC %s: %v", doc, err)
	}
	if err := os.WriteFile(doc, out, 0o644); err != nil {
		b.Fatalf("BENCH_DOC: %v", err)
	}
}

func markers(name string) (begin, end string) {
	return "<!-- BEGIN " + name + " -->\n", "<!-- END " + name + " -->\n"
}

// replaceSection puts md between name's markers in doc.
func replaceSection(doc []byte, name, md string) ([]byte, error) {
	begin, end := markers(name)
	i := bytes.Index(doc, []byte(begin))
	j := bytes.Index(doc, []byte(end))
	if i < 0 || j < i || bytes.Count(doc, []byte(begin)) != 1 || bytes.Count(doc, []byte(end)) != 1 {
		return nil, fmt.Errorf("want one %q line followed by one %q line", strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(begin)])
	out.WriteString(strings.TrimSpace(md) + "\n")
	out.Write(doc[j:])
	return out.Bytes(), nil
}

func TestReplaceSection(t *testing.T) {
	doc := "# T\n<!-- BEGIN BenchmarkX -->\nold\nfigures\n<!-- END BenchmarkX -->\ntail\n"
	got, err := replaceSection([]byte(doc), "BenchmarkX", "new\n\n")
	if want := "# T\n<!-- BEGIN BenchmarkX -->\nnew\n<!-- END BenchmarkX -->\ntail\n"; err != nil || string(got) != want {
		t.Errorf("replaceSection = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"# T\n", "<!-- END BenchmarkX -->\n<!-- BEGIN BenchmarkX -->\n", doc + doc} {
		if _, err := replaceSection([]byte(bad), "BenchmarkX", "new"); err == nil {
			t.Errorf("replaceSection(%q) did not fail", bad)
		}
	}
}

// BENCHMARKS.md has one section for each benchmark of this package, and
// only for those, each with the command that runs that benchmark: the
// document and the code name the same benchmarks.
func TestBenchmarksDocument(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var benchmarks []string
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Benchmark") {
				benchmarks = append(benchmarks, fn.Name.Name)
			}
		}
	}
	if len(benchmarks) < 4 {
		t.Fatalf("found only the benchmarks %v in %v", benchmarks, files)
	}
	doc, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	for _, m := range regexp.MustCompile(`(?m)^<!-- BEGIN (\S+) -->$`).FindAllSubmatch(doc, -1) {
		sections = append(sections, string(m[1]))
	}
	slices.Sort(benchmarks)
	slices.Sort(sections)
	if !slices.Equal(benchmarks, sections) {
		t.Fatalf("BENCHMARKS.md has sections for %v; the package has the benchmarks %v", sections, benchmarks)
	}
	for _, name := range benchmarks {
		begin, end := markers(name)
		_, rest, _ := bytes.Cut(doc, []byte(begin))
		body, _, ok := bytes.Cut(rest, []byte(end))
		if !ok {
			t.Errorf("BENCHMARKS.md: no %q after the section's beginning", end)
			continue
		}
		if cmd := fmt.Sprintf("-bench '^%s$'", name); !bytes.Contains(body, []byte(cmd)) {
			t.Errorf("BENCHMARKS.md: the section of %s does not show the command that runs it (%s)", name, cmd)
		}
	}
}
