package agent

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	long := strings.Repeat("a", 1<<20)
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "etcd-1=http://10.0.0.1:2380", `"etcd-1=http://10.0.0.1:2380"`},
		{"empty", "", `""`},
		{"newline forging a line", "x\nlevel=ERROR msg=forged", `"x\nlevel=ERROR msg=forged"`},
		{"terminal escape", "\x1b[2J\x1b[H", `"\x1b[2J\x1b[H"`},
		{"invalid UTF-8", "a\xffb", `"a\xffb"`},
		{"right-to-left override", "abc\u202edef", `"abc\u202edef"`},
		{"printable non-ASCII kept", "größe", `"größe"`},
		{"exactly the limit", long[:QuoteShown], strconv.Quote(long[:QuoteShown])},
		{"one byte over", long[:QuoteShown+1], `"` + long[:QuoteShown] + `"... (201 bytes)`},
		{"1 MB", long, `"` + long[:QuoteShown] + `"... (1048576 bytes)`},
		// A two-byte character across the limit is left out whole.
		{"no split character", long[:QuoteShown-1] + "éé", `"` + long[:QuoteShown-1] + `"... (203 bytes)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quote(tc.in); got != tc.want {
				t.Errorf("Quote = %.300s; want %.300s", got, tc.want)
			}
		})
	}
}

func TestClip(t *testing.T) {
	if got := Clip("short\n"); got != "short\n" {
		t.Errorf("Clip(short) = %q", got)
	}
	long := strings.Repeat("v", 5000)
	if got, want := Clip(long), long[:QuoteShown]+"... (5000 bytes)"; got != want {
		t.Errorf("Clip(5000 bytes) = %q; want %q", got, want)
	}
}

// FuzzQuote: whatever the bytes, Quote returns valid UTF-8 made only of
// printable characters, at most QuoteMax bytes, that unquotes to the text
// (or, when it was cut, to a prefix of it); Clip returns a bounded prefix.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{
		"", "etcd-1=http://10.0.0.1:2380", "\x1b[2J", "a\nb\rc\td", "\xff\xfe", "\u202e\u2028\u00a0",
		"\U0010ffff", strings.Repeat("\x00", 300), strings.Repeat("é", 150), strings.Repeat("a", 199) + "\xe2\x82",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		if !utf8.ValidString(q) {
			t.Fatalf("Quote(%q) = %q: not UTF-8", s, q)
		}
		for _, r := range q {
			if !strconv.IsPrint(r) {
				t.Fatalf("Quote(%q) = %q holds the non-printable %U", s, q, r)
			}
		}
		if len(q) > QuoteMax {
			t.Fatalf("Quote of %d bytes is %d bytes long; want at most %d", len(s), len(q), QuoteMax)
		}
		quoted, tail := q, ""
		if i := strings.LastIndex(q, `"... (`); i >= 0 && len(s) > QuoteShown {
			quoted, tail = q[:i+1], q[i+1:]
		}
		head, err := strconv.Unquote(quoted)
		switch {
		case err != nil:
			t.Fatalf("Quote(%q) = %q does not unquote: %v", s, q, err)
		case tail == "" && head != s:
			t.Fatalf("Quote(%q) unquotes to %q", s, head)
		case tail != "" && (!strings.HasPrefix(s, head) || len(head) > QuoteShown || tail != "... ("+strconv.Itoa(len(s))+" bytes)"):
			t.Fatalf("Quote(%q) = %q: not a prefix of at most %d bytes and the length", s, q, QuoteShown)
		}
		c := Clip(s)
		if len(s) <= QuoteShown && c != s || len(c) > QuoteShown+len("... (18446744073709551615 bytes)") {
			t.Fatalf("Clip(%q) = %q", s, c)
		}
		if cut := strings.TrimSuffix(c, "... ("+strconv.Itoa(len(s))+" bytes)"); !strings.HasPrefix(s, cut) {
			t.Fatalf("Clip(%q) = %q: not a prefix", s, c)
		}
	})
}
