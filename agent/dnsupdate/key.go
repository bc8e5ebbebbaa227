package dnsupdate

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// ErrInvalidKey reports a TSIG key (or key file) that cannot be used.
var ErrInvalidKey = errors.New("invalid TSIG key")

// redacted stands in for a secret wherever a key is printed.
const redacted = "<redacted>"

// maxKeyFileSize bounds how much of a key file is read: tsig-keygen writes
// about 100 bytes.
const maxKeyFileSize = 64 << 10

// Key is a TSIG key (RFC 8945) as BIND's tsig-keygen writes it.
type Key struct {
	Name      string // key name as in the key file, e.g. "eda-update" (no final dot needed)
	Algorithm string // BIND's name for it: hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512
	Secret    string // base64; never printed: String, GoString and LogValue mask it
}

// algorithms maps BIND's algorithm names to miekg/dns's. hmac-md5 is
// missing on purpose: miekg/dns v1 no longer signs with it.
var algorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// String prints the key with its secret masked.
func (k Key) String() string {
	return fmt.Sprintf("key %q (%s, secret %s)", k.Name, k.Algorithm, redacted)
}

// GoString prints the key for %#v with its secret masked.
func (k Key) GoString() string {
	return fmt.Sprintf("dnsupdate.Key{Name:%q, Algorithm:%q, Secret:%q}", k.Name, k.Algorithm, redacted)
}

// LogValue implements slog.LogValuer; the secret is masked.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", k.Name),
		slog.String("algorithm", k.Algorithm),
		slog.String("secret", redacted),
	)
}

// Validate checks that the name is a domain name, the algorithm one this
// client can sign with and the secret non-empty base64. Its errors never
// contain the secret.
func (k Key) Validate() error {
	if k.Name == "" {
		return fmt.Errorf("%w: no key name", ErrInvalidKey)
	}
	if _, ok := dns.IsDomainName(k.Name); !ok {
		return fmt.Errorf("%w: key name %q is not a domain name", ErrInvalidKey, k.Name)
	}
	if err := checkAlgorithm(k.Algorithm); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if err := checkSecret(k.Secret); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return nil
}

// tsigName is the key name as it goes on the wire and into
// dns.Client.TsigSecret: lower case, fully qualified.
func (k Key) tsigName() string { return dns.CanonicalName(k.Name) }

// tsigAlgorithm is the algorithm as miekg/dns names it ("hmac-sha256.").
func (k Key) tsigAlgorithm() string { return algorithms[normalAlgorithm(k.Algorithm)] }

func normalAlgorithm(a string) string { return strings.TrimSuffix(strings.ToLower(a), ".") }

func checkAlgorithm(a string) error {
	n := normalAlgorithm(a)
	if _, ok := algorithms[n]; ok {
		return nil
	}
	if n == "hmac-md5" || n == "hmac-md5.sig-alg.reg.int" {
		return errors.New("algorithm hmac-md5 is not supported (miekg/dns v1 dropped it): make a new key with tsig-keygen -a hmac-sha256 NAME and install it on the server")
	}
	if a == "" {
		return errors.New("no algorithm (want hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512)")
	}
	return fmt.Errorf("unknown algorithm %q (want hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512)", a)
}

// checkSecret reports whether s is usable; the error never quotes s.
func checkSecret(s string) error {
	if s == "" {
		return errors.New("empty secret")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return fmt.Errorf("secret is not valid base64 (bad character or padding at offset %d of %d)", int64(ce), len(s))
		}
		return errors.New("secret is not valid base64")
	}
	if len(b) == 0 {
		return errors.New("empty secret")
	}
	return nil
}

// ReadKeyFile reads a TSIG key file in the format tsig-keygen (and
// ddns-confgen -q) writes:
//
//	key "eda-update" {
//		algorithm hmac-sha256;
//		secret "base64...";
//	};
//
// Comments (#, //, /* */) and any whitespace are allowed, the name may be
// unquoted, and the file must hold exactly one key statement. Errors name
// the file and what is wrong, and never contain the secret.
//
// ReadKeyFile does not refuse a key file that group or others may read:
// Kubernetes mounts secrets with mode 0644 by default, and refusing would
// break the common sidecar setup. Callers should ask KeyFileExposed and log
// a warning.
func ReadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("%w: key file: %w", ErrInvalidKey, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return Key{}, fmt.Errorf("%w: key file %s: %w", ErrInvalidKey, path, err)
	}
	if len(b) > maxKeyFileSize {
		return Key{}, fmt.Errorf("%w: key file %s: larger than %d bytes; is it a key file?", ErrInvalidKey, path, maxKeyFileSize)
	}
	k, err := parseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("%w: key file %s: %v", ErrInvalidKey, path, err)
	}
	return k, nil
}

// KeyFileExposed reports whether group or others may read the key file at
// path (following symbolic links, as Kubernetes secret mounts use them).
// Anyone who can read the file can change the records the key may update,
// so callers should warn and suggest chmod 600.
func KeyFileExposed(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("key file: %w", err)
	}
	return fi.Mode().Perm()&0o044 != 0, nil
}

// token kinds of the named.conf subset a key file uses.
const (
	tokWord   = iota // unquoted word
	tokString        // "quoted string"
	tokPunct         // { } ;
)

type token struct {
	kind int
	text string
	line int
}

// describe names a token for an error message without its text, which
// might be (part of) the secret.
func (t token) describe() string {
	switch {
	case t.kind == tokPunct:
		return strconv.Quote(t.text)
	case t.kind == tokString:
		return "a quoted string"
	default:
		return "a word"
	}
}

// lex splits a key file into tokens, dropping whitespace and comments.
func lex(s string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: comment /* is not closed", line)
			}
			line += strings.Count(s[i:i+2+end], "\n")
			i += 2 + end + 2
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, token{tokPunct, string(c), line})
			i++
		case c == '"':
			start := line
			var b strings.Builder
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				if s[i] == '\n' {
					line++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("line %d: quoted string is not closed", start)
			}
			i++
			toks = append(toks, token{tokString, b.String(), start})
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n\f\v{};\"#", rune(s[j])) && !strings.HasPrefix(s[j:], "//") && !strings.HasPrefix(s[j:], "/*") {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], line})
			i = j
		}
	}
	return toks, nil
}

// parseKey parses the text of a key file. Its errors never contain token
// text except keywords and the algorithm, and never the secret.
func parseKey(s string) (Key, error) {
	toks, err := lex(s)
	if err != nil {
		return Key{}, err
	}
	p := &keyParser{toks: toks}
	var k Key
	keys := 0
	for !p.done() {
		t := p.next()
		if t.kind != tokWord || !strings.EqualFold(t.text, "key") {
			return Key{}, fmt.Errorf("line %d: found %s where a key statement should start; the file must hold only one key { ... }; statement", t.line, t.describe())
		}
		keys++
		if keys > 1 {
			return Key{}, fmt.Errorf("line %d: a second key statement; the file must hold exactly one key", t.line)
		}
		if k, err = p.keyBody(t.line); err != nil {
			return Key{}, err
		}
	}
	if keys == 0 {
		return Key{}, errors.New(`no key statement (want key "NAME" { algorithm hmac-sha256; secret "..."; };)`)
	}
	return k, nil
}

type keyParser struct {
	toks []token
	i    int
}

func (p *keyParser) done() bool { return p.i >= len(p.toks) }

func (p *keyParser) next() token {
	t := p.toks[p.i]
	p.i++
	return t
}

// expect consumes the punctuation want or reports what came instead.
func (p *keyParser) expect(want, after string, line int) error {
	if p.done() {
		return fmt.Errorf("line %d: missing %q after %s", line, want, after)
	}
	t := p.next()
	if t.kind != tokPunct || t.text != want {
		return fmt.Errorf("line %d: found %s where %q should follow %s", t.line, t.describe(), want, after)
	}
	return nil
}

// value consumes the word or string after keyword.
func (p *keyParser) value(keyword string, line int) (token, error) {
	if p.done() {
		return token{}, fmt.Errorf("line %d: %s has no value", line, keyword)
	}
	t := p.next()
	if t.kind == tokPunct {
		return token{}, fmt.Errorf("line %d: %s has no value (found %s)", t.line, keyword, t.describe())
	}
	return t, nil
}

// keyBody parses NAME { algorithm ALG; secret "S"; }; after the keyword key.
func (p *keyParser) keyBody(line int) (Key, error) {
	name, err := p.value("key", line)
	if err != nil {
		return Key{}, err
	}
	var k Key
	k.Name = strings.TrimSpace(name.text)
	if k.Name == "" {
		return Key{}, fmt.Errorf("line %d: empty key name", name.line)
	}
	if _, ok := dns.IsDomainName(k.Name); !ok {
		return Key{}, fmt.Errorf("line %d: key name %q is not a domain name", name.line, k.Name)
	}
	if err := p.expect("{", "the key name", name.line); err != nil {
		return Key{}, err
	}
	var haveAlg, haveSecret bool
	for {
		if p.done() {
			return Key{}, fmt.Errorf("line %d: key statement is not closed with };", line)
		}
		t := p.next()
		if t.kind == tokPunct && t.text == "}" {
			if err := p.expect(";", `the key's "}"`, t.line); err != nil {
				return Key{}, err
			}
			break
		}
		if t.kind != tokWord {
			return Key{}, fmt.Errorf("line %d: found %s inside the key where algorithm or secret should be", t.line, t.describe())
		}
		switch strings.ToLower(t.text) {
		case "algorithm":
			v, err := p.value("algorithm", t.line)
			if err != nil {
				return Key{}, err
			}
			if haveAlg {
				return Key{}, fmt.Errorf("line %d: second algorithm", t.line)
			}
			haveAlg = true
			if err := checkAlgorithm(v.text); err != nil {
				return Key{}, fmt.Errorf("line %d: %v", v.line, err)
			}
			k.Algorithm = normalAlgorithm(v.text)
			if err := p.expect(";", "the algorithm", v.line); err != nil {
				return Key{}, err
			}
		case "secret":
			v, err := p.value("secret", t.line)
			if err != nil {
				return Key{}, err
			}
			if haveSecret {
				return Key{}, fmt.Errorf("line %d: second secret", t.line)
			}
			haveSecret = true
			if err := checkSecret(v.text); err != nil {
				return Key{}, fmt.Errorf("line %d: %v", v.line, err)
			}
			k.Secret = v.text
			if err := p.expect(";", "the secret", v.line); err != nil {
				return Key{}, err
			}
		default:
			// Only a plain keyword is echoed; anything else might be secret.
			what := "an unknown word"
			if len(t.text) <= 20 && isKeyword(t.text) {
				what = strconv.Quote(t.text)
			}
			return Key{}, fmt.Errorf("line %d: found %s inside the key where algorithm or secret should be", t.line, what)
		}
	}
	switch {
	case !haveAlg:
		return Key{}, fmt.Errorf("line %d: key %q has no algorithm", line, k.Name)
	case !haveSecret:
		return Key{}, fmt.Errorf("line %d: key %q has no secret", line, k.Name)
	}
	return k, nil
}

// isKeyword reports whether s looks like a configuration keyword (lower-case
// letters and '-'), which a base64 secret of useful length does not.
func isKeyword(s string) bool {
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return s != ""
}
