package agent

import (
	"strconv"
	"unicode/utf8"
)

// QuoteShown is the most bytes of an untrusted string that Quote and Clip
// show; the rest is replaced by an ellipsis and the total length.
const QuoteShown = 200

// QuoteMax bounds the length of what Quote returns: QuoteShown bytes, each
// escaped to at most four (\xff), the quotes, and the " ... (N bytes)" tail.
const QuoteMax = 4*QuoteShown + len(`""... (18446744073709551615 bytes)`)

// Quote renders untrusted text (registry keys and values, DNS names, what a
// peer answered) for an error message or a terminal: double-quoted, control
// characters, other non-printable characters and invalid UTF-8 escaped as
// strconv.Quote does, and at most QuoteShown bytes of it shown, followed by
// "... (N bytes)" when it is longer. The result is valid UTF-8, holds only
// printable characters and is at most QuoteMax bytes long.
func Quote(s string) string {
	head, cut := clip(s)
	q := strconv.Quote(head)
	if cut {
		q += "... (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return q
}

// Clip bounds untrusted text for a log attribute, whose handler escapes it
// (slog's handlers quote, but do not bound): at most QuoteShown bytes of s,
// followed by "... (N bytes)" when it is longer.
func Clip(s string) string {
	head, cut := clip(s)
	if cut {
		return head + "... (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

// clip returns at most QuoteShown bytes of s, not splitting a UTF-8
// sequence, and whether anything was left off.
func clip(s string) (head string, cut bool) {
	if len(s) <= QuoteShown {
		return s, false
	}
	i := QuoteShown
	for j := 0; j < utf8.UTFMax-1 && !utf8.RuneStart(s[i]); j++ {
		i--
	}
	if !utf8.RuneStart(s[i]) { // not UTF-8 there anyway
		i = QuoteShown
	}
	return s[:i], true
}
