package dnsupdate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/etcd-discovery-agent/etcd-discovery-agent/testenv"
)

// testSecret is a 32-byte secret as tsig-keygen -a hmac-sha256 prints it.
const testSecret = "q2Z0Xn5JcZ8zJv3m0f6l7gQy1sWbU4eHkTnR9aPdLcE="

// writeFile writes content to a new file in a temporary directory.
func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

// assertNoSecret fails if s contains secret or a recognisable part of it.
func assertNoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		for _, part := range []string{secret, strings.TrimRight(secret, "="), secret[:12], secret[len(secret)-13:]} {
			if part != "" && strings.Contains(s, part) {
				t.Errorf("output contains (part of) the secret %q: %s", part, s)
			}
		}
	}
}

func TestReadKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    Key
		wantErr string // regexp; "" = success
	}{
		{
			name:    "tsig-keygen output",
			content: "key \"eda-test-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + testSecret + "\";\n};\n",
			want:    Key{Name: "eda-test-key", Algorithm: "hmac-sha256", Secret: testSecret},
		},
		{
			name: "comments, unquoted name, odd whitespace, capitals",
			content: "# made by tsig-keygen\n// another comment\n/* block\n comment */KEY\tupdate.example.test.\r\n{ALGORITHM HMAC-SHA512. ;" +
				"\n\n   secret\n\"" + testSecret + "\" ; } ; # trailing\n",
			want: Key{Name: "update.example.test.", Algorithm: "hmac-sha512", Secret: testSecret},
		},
		{
			name:    "one line, secret before algorithm",
			content: `key k{secret "` + testSecret + `";algorithm hmac-sha1;};`,
			want:    Key{Name: "k", Algorithm: "hmac-sha1", Secret: testSecret},
		},
		{
			name:    "bad algorithm",
			content: `key "k" { algorithm hmac-sha257; secret "` + testSecret + `"; };`,
			wantErr: `line 1: unknown algorithm "hmac-sha257" \(want hmac-sha1, `,
		},
		{
			name:    "hmac-md5",
			content: "key \"k\" {\n\talgorithm hmac-md5;\n\tsecret \"" + testSecret + "\";\n};\n",
			wantErr: `line 2: algorithm hmac-md5 is not supported .*tsig-keygen -a hmac-sha256`,
		},
		{
			name:    "bad base64",
			content: "key \"k\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + testSecret[:20] + "!!" + testSecret[22:] + "\";\n};\n",
			wantErr: `line 3: secret is not valid base64 \(bad character or padding at offset 20 of 44\)`,
		},
		{
			name:    "bad base64 padding",
			content: `key "k" { algorithm hmac-sha256; secret "` + strings.TrimRight(testSecret, "=") + `"; };`,
			wantErr: `secret is not valid base64`,
		},
		{
			name:    "missing secret",
			content: "key \"k\" {\n\talgorithm hmac-sha256;\n};\n",
			wantErr: `line 1: key "k" has no secret`,
		},
		{
			name:    "empty secret",
			content: `key "k" { algorithm hmac-sha256; secret ""; };`,
			wantErr: `empty secret`,
		},
		{
			name:    "secret without value",
			content: `key "k" { algorithm hmac-sha256; secret; ` + testSecret + `; };`,
			wantErr: `line 1: secret has no value \(found ";"\)`,
		},
		{
			name:    "missing algorithm",
			content: `key "k" { secret "` + testSecret + `"; };`,
			wantErr: `key "k" has no algorithm`,
		},
		{
			name:    "unknown statement",
			content: `key "k" { algorithm hmac-sha256; secrte "` + testSecret + `"; };`,
			wantErr: `found "secrte" inside the key`,
		},
		{
			name:    "unquoted secret where a statement belongs",
			content: `key "k" { algorithm hmac-sha256; ` + testSecret + `; };`,
			wantErr: `found an unknown word inside the key`,
		},
		{
			name:    "missing semicolon after secret",
			content: `key "k" { algorithm hmac-sha256; secret "` + testSecret + `" };`,
			wantErr: `found "}" where ";" should follow the secret`,
		},
		{
			name:    "not closed",
			content: `key "k" { algorithm hmac-sha256; secret "` + testSecret + `";`,
			wantErr: `key statement is not closed`,
		},
		{
			name:    "unclosed quote",
			content: `key "k" { algorithm hmac-sha256; secret "` + testSecret + `; };`,
			wantErr: `line 1: quoted string is not closed`,
		},
		{
			name:    "unclosed comment",
			content: "/* key \"k\" {",
			wantErr: `comment /\* is not closed`,
		},
		{
			name:    "two keys",
			content: `key a { algorithm hmac-sha256; secret "` + testSecret + `"; }; key b { algorithm hmac-sha256; secret "` + testSecret + `"; };`,
			wantErr: `a second key statement`,
		},
		{
			name:    "empty file",
			content: "# nothing\n",
			wantErr: `no key statement`,
		},
		{
			name:    "named.conf options",
			content: `options { directory "/var/cache/bind"; };`,
			wantErr: `found a word where a key statement should start`,
		},
		{
			name:    "key name not a domain name",
			content: `key "a..b" { algorithm hmac-sha256; secret "` + testSecret + `"; };`,
			wantErr: `key name "a..b" is not a domain name`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "update.key", tt.content, 0o600)
			got, err := ReadKeyFile(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadKeyFile: %v", err)
				}
				if got != tt.want {
					t.Fatalf("ReadKeyFile = %#v (secret equal: %v), want %#v", got, got.Secret == tt.want.Secret, tt.want)
				}
				if err := got.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadKeyFile succeeded (%v), want error %q", got, tt.wantErr)
			}
			msg := err.Error()
			if !regexp.MustCompile(tt.wantErr).MatchString(msg) {
				t.Errorf("error %q does not match %q", msg, tt.wantErr)
			}
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file %s", msg, path)
			}
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("error %q is not ErrInvalidKey", msg)
			}
			assertNoSecret(t, msg, testSecret)
		})
	}
}

func TestReadKeyFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.key")
	_, err := ReadKeyFile(path)
	if !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), path) {
		t.Fatalf("ReadKeyFile(missing) = %v; want ErrInvalidKey and ErrNotExist naming the file", err)
	}
}

// The real tsig-keygen's output, for every algorithm, parses to its secret.
func TestReadKeyFileTsigKeygen(t *testing.T) {
	testenv.SkipIfShort(t)
	keygen, err := exec.LookPath("tsig-keygen")
	if err != nil {
		keygen = "/usr/sbin/tsig-keygen"
		if _, err := os.Stat(keygen); err != nil {
			testenv.SkipUnlessCI(t, "no tsig-keygen (apt-get install bind9)")
		}
	}
	secretRE := regexp.MustCompile(`secret "([^"]+)"`)
	for _, alg := range []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"} {
		t.Run(alg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, keygen, "-a", alg, "eda-"+alg).Output()
			if err != nil {
				t.Fatalf("tsig-keygen: %v", err)
			}
			m := secretRE.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no secret in %q", out)
			}
			k, err := ReadKeyFile(writeFile(t, "k.key", string(out), 0o600))
			if err != nil {
				t.Fatal(err)
			}
			want := Key{Name: "eda-" + alg, Algorithm: alg, Secret: string(m[1])}
			if k != want {
				t.Fatalf("got %#v, want %#v", k, want)
			}
		})
	}
}

func TestKeyFileExposed(t *testing.T) {
	for _, tt := range []struct {
		mode os.FileMode
		want bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o644, true}, {0o604, true}} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			got, err := KeyFileExposed(writeFile(t, "k.key", "", tt.mode))
			if err != nil || got != tt.want {
				t.Fatalf("KeyFileExposed(%v) = %v, %v; want %v", tt.mode, got, err, tt.want)
			}
		})
	}
	if _, err := KeyFileExposed(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("KeyFileExposed(missing) = %v", err)
	}
}

// Printing or logging a Key, alone or inside another struct, masks the
// secret.
func TestKeyMasksSecret(t *testing.T) {
	k := Key{Name: "eda-test-key", Algorithm: "hmac-sha256", Secret: testSecret}
	u := Updater{Server: "127.0.0.1:53", Zone: "example.test.", Key: k}
	var logged bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logged, nil), slog.NewJSONHandler(&logged, nil)} {
		slog.New(h).Info("key", "key", k, "ptr", &k)
	}
	outputs := map[string]string{
		"%v":        fmt.Sprintf("%v", k),
		"%+v":       fmt.Sprintf("%+v", k),
		"%#v":       fmt.Sprintf("%#v", k),
		"%s":        fmt.Sprintf("%s", k),
		"%v ptr":    fmt.Sprintf("%v", &k),
		"%v outer":  fmt.Sprintf("%v", u),
		"%+v outer": fmt.Sprintf("%+v", u),
		"%#v outer": fmt.Sprintf("%#v", u),
		"slog":      logged.String(),
	}
	for verb, out := range outputs {
		assertNoSecret(t, out, testSecret)
		if !strings.Contains(out, "eda-test-key") || !strings.Contains(out, redacted) {
			t.Errorf("%s: %q lacks the key name or %q", verb, out, redacted)
		}
	}
}

func TestKeyValidate(t *testing.T) {
	tests := []struct {
		key     Key
		wantErr string
	}{
		{Key{"k", "hmac-sha256", testSecret}, ""},
		{Key{"K.Example.", "HMAC-SHA384.", testSecret}, ""},
		{Key{"", "hmac-sha256", testSecret}, "no key name"},
		{Key{"k", "", testSecret}, "no algorithm"},
		{Key{"k", "hmac-md5", testSecret}, "hmac-md5 is not supported"},
		{Key{"k", "hmac-sha256", ""}, "empty secret"},
		{Key{"k", "hmac-sha256", testSecret[1:]}, "not valid base64"},
	}
	for _, tt := range tests {
		err := tt.key.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%v: %v", tt.key, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%v: Validate = %v, want ErrInvalidKey %q", tt.key, err, tt.wantErr)
			continue
		}
		assertNoSecret(t, err.Error(), testSecret)
	}
}
