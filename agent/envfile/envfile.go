// Package envfile renders and writes environment files in the subset of the
// syntax that systemd's EnvironmentFile= and POSIX sh (set -a; . file) read
// identically, and writes them atomically so a reader never sees half a file.
//
// The subset: UTF-8, LF line ends, one NAME=VALUE per line starting in column
// one, names matching [A-Z_][A-Z0-9_]*, whole-line # comments, and values
// that are either unquoted and made only of A-Z a-z 0-9 _ @ % + = : , . / - [ ]
// or double-quoted with no ", \, $, ` or newline inside (Parse also takes
// single-quoted values with no ' or newline inside; Render never writes them).
package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Var is one NAME=VALUE assignment.
type Var struct {
	Name  string
	Value string
}

// ErrUnsafe reports a name, value or comment outside the safe subset.
var ErrUnsafe = errors.New("envfile: unsafe content")

var (
	nameRE     = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	unquotedRE = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./\[\]-]+$`)
)

// Render produces the file: comment lines first, then one line per variable.
// It refuses anything that systemd and sh could read differently, every
// duplicate name, and empty values (etcd treats them as unset but warns).
func Render(comments []string, vars []Var) ([]byte, error) {
	var b bytes.Buffer
	for _, c := range comments {
		if strings.ContainsAny(c, "\r\n") || !utf8.ValidString(c) {
			return nil, fmt.Errorf("%w: comment %q spans lines or is not UTF-8", ErrUnsafe, c)
		}
		b.WriteString("# " + c + "\n")
	}
	seen := map[string]bool{}
	for _, v := range vars {
		if !nameRE.MatchString(v.Name) {
			return nil, fmt.Errorf("%w: variable name %q", ErrUnsafe, v.Name)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("%w: variable %s set twice", ErrUnsafe, v.Name)
		}
		seen[v.Name] = true
		q, err := quote(v.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.Name, err)
		}
		b.WriteString(v.Name + "=" + q + "\n")
	}
	return b.Bytes(), nil
}

func quote(v string) (string, error) {
	switch {
	case v == "":
		return "", fmt.Errorf("%w: empty value", ErrUnsafe)
	case unquotedRE.MatchString(v):
		return v, nil
	case utf8.ValidString(v) && !strings.ContainsAny(v, "\"\\$`\n\r\x00"):
		return `"` + v + `"`, nil
	}
	return "", fmt.Errorf("%w: value %q cannot be written so that systemd and sh read it alike", ErrUnsafe, v)
}

// Parse reads a file written in the safe subset and returns its variables in
// order. It is strict: any line outside the subset is an error, so it doubles
// as a check that a file is safe to hand to both readers.
func Parse(data []byte) ([]Var, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrUnsafe)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("%w: no final newline", ErrUnsafe)
	}
	var vars []Var
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || !nameRE.MatchString(name) || seen[name] {
			return nil, fmt.Errorf("%w: line %d: %q", ErrUnsafe, i+1, line)
		}
		seen[name] = true
		switch {
		case len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"':
			value = value[1 : len(value)-1]
			if strings.ContainsAny(value, "\"\\$`\r") {
				return nil, fmt.Errorf("%w: line %d: quoted value %q", ErrUnsafe, i+1, value)
			}
		case len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'':
			value = value[1 : len(value)-1]
			if strings.ContainsAny(value, "'\r") {
				return nil, fmt.Errorf("%w: line %d: quoted value %q", ErrUnsafe, i+1, value)
			}
		case !unquotedRE.MatchString(value):
			return nil, fmt.Errorf("%w: line %d: value %q", ErrUnsafe, i+1, value)
		}
		vars = append(vars, Var{Name: name, Value: value})
	}
	return vars, nil
}

// WriteFile replaces path with data atomically: it writes a temporary file in
// the same directory, syncs it, renames it over path and syncs the
// directory. On any error the old file is left as it was and the temporary
// file is removed. A path that exists and is not a regular file is refused.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("write %s: exists and is not a regular file", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}
