package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// parseHex reads hex bytes written as in reference/webrepl.md §6:
// whitespace-separated tokens "HH", or "HH*N" for N copies of HH.
func parseHex(s string) ([]byte, error) {
	var out []byte
	for tok := range strings.FieldsSeq(s) {
		hexPart, count := tok, 1
		if i := strings.IndexByte(tok, '*'); i >= 0 {
			n, err := strconv.Atoi(tok[i+1:])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bad repeat count in %q", tok)
			}
			hexPart, count = tok[:i], n
		}
		if len(hexPart) != 2 {
			return nil, fmt.Errorf("bad hex byte %q", tok)
		}
		b, err := strconv.ParseUint(hexPart, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad hex byte %q", tok)
		}
		for range count {
			out = append(out, byte(b))
		}
	}
	return out, nil
}

// mustHex is parseHex for constant test vectors.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := parseHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHex(t *testing.T) {
	got, err := parseHex("57 41 00*3 ff")
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x57, 0x41, 0, 0, 0, 0xff}; string(got) != string(want) {
		t.Errorf("got % x, want % x", got, want)
	}
	for _, bad := range []string{"5", "zz", "00*x", "123"} {
		if _, err := parseHex(bad); err == nil {
			t.Errorf("parseHex(%q): no error", bad)
		}
	}
}
