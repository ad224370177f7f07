package transport

import "unicode/utf8"

// textCutter makes the payloads of server-role text frames valid UTF-8.
//
// A MicroPython device writes REPL output as it comes, so a multi-byte
// character is often split over two writes, and programs may print bytes
// that are not UTF-8 at all. Browsers close the connection on a text frame
// that is not valid UTF-8, so a server writing text frames:
//
//   - holds back an incomplete multi-byte sequence at the end of a write and
//     puts it in front of the next text write;
//   - replaces every byte that cannot be part of valid UTF-8 with U+FFFD.
//
// The zero value is ready to use. It is guarded by the Conn's write lock.
type textCutter struct {
	held  [utf8.UTFMax - 1]byte
	nheld int
	in    []byte // scratch: held bytes + new bytes
	out   []byte // scratch: the cleaned payload
}

// maxScratch bounds the scratch buffers a cutter keeps between writes.
const maxScratch = 64 << 10

// cut returns the payload to send for the text write p. send is false when
// every byte of p was held back (a lone partial character): then no frame
// is to be sent. An empty p gives an empty frame. payload may alias p or the
// cutter's scratch; it is valid until the next call.
func (t *textCutter) cut(p []byte) (payload []byte, send bool) {
	if t.nheld == 0 && utf8.Valid(p) {
		return p, true
	}
	in := append(t.in[:0], t.held[:t.nheld]...)
	in = append(in, p...)
	t.nheld = 0
	out := t.out[:0]
	for i := 0; i < len(in); {
		c := in[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(in[i:])
		if r == utf8.RuneError && size == 1 {
			if !utf8.FullRune(in[i:]) {
				// The rest is the valid start of a character whose
				// remaining bytes have not been written yet.
				t.nheld = copy(t.held[:], in[i:])
				break
			}
			out = append(out, "\uFFFD"...)
			i++
			continue
		}
		out = append(out, in[i:i+size]...)
		i += size
	}
	if cap(in) <= maxScratch {
		t.in = in[:0]
	} else {
		t.in = nil
	}
	if cap(out) <= maxScratch {
		t.out = out[:0]
	} else {
		t.out = nil
	}
	return out, len(out) > 0 || len(p) == 0
}
