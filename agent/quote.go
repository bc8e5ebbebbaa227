package agent

import (
	"fmt"
	"strconv"
)

// quoteMax bounds how much of an untrusted value a message shows.
const quoteMax = 200

// Quote renders untrusted text (registry keys and values, DNS names, peer
// answers) for messages and terminal output: quoted, with control
// characters and invalid UTF-8 escaped, and at most quoteMax bytes of it
// shown.
func Quote(s string) string {
	if len(s) <= quoteMax {
		return strconv.Quote(s)
	}
	cut := quoteMax
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
