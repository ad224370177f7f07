package transport

import (
	"bytes"
	"testing"
)

var headerCases = []struct {
	name   string
	op     byte
	n      int
	masked bool
	key    [4]byte
	want   string
}{
	{"empty text", opText, 0, false, [4]byte{}, "81 00"},
	{"prompt (6.1 L1)", opText, 10, false, [4]byte{}, "81 0a"},
	{"7-bit max", opBinary, 125, false, [4]byte{}, "82 7d"},
	{"16-bit min", opBinary, 126, false, [4]byte{}, "82 7e 00 7e"},
	{"16-bit (6.4 P3 1024-byte frame)", opBinary, 1024, false, [4]byte{}, "82 7e 04 00"},
	{"16-bit max", opBinary, 65535, false, [4]byte{}, "82 7e ff ff"},
	{"64-bit min", opBinary, 65536, false, [4]byte{}, "82 7f 00 00 00 00 00 01 00 00"},
	{"masked (RFC 6455 5.7)", opText, 5, true, rfcKey, "81 85 37 fa 21 3d"},
	{"masked 16-bit", opBinary, 300, true, [4]byte{1, 2, 3, 4}, "82 fe 01 2c 01 02 03 04"},
	{"masked 64-bit", opBinary, 70000, true, [4]byte{1, 2, 3, 4}, "82 ff 00 00 00 00 00 01 11 70 01 02 03 04"},
	{"close", opClose, 0, false, [4]byte{}, "88 00"},
	{"pong", opPong, 4, true, [4]byte{9, 9, 9, 9}, "8a 84 09 09 09 09"},
}

func TestHeaderCodec(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			got := appendHeader(nil, tc.op, tc.n, tc.masked, tc.key)
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("encoded % x, want % x", got, want)
			}
			if n := headerLen(got[1]); n != len(got) {
				t.Fatalf("headerLen = %d, want %d", n, len(got))
			}
			h := decodeHeader(got)
			if !h.fin || h.op != tc.op || h.length != uint64(tc.n) || h.masked != tc.masked || h.key != tc.key || h.rsv != 0 {
				t.Errorf("decoded %+v", h)
			}
		})
	}
}

// FuzzDecodeHeader: any bytes decode without panic; a header in the
// shortest length form with FIN set and no RSV bits encodes back to the
// same bytes.
func FuzzDecodeHeader(f *testing.F) {
	for _, tc := range headerCases {
		f.Add(appendHeader(nil, tc.op, tc.n, tc.masked, tc.key))
	}
	f.Add(unhex(f, "82 7f ff ff ff ff ff ff ff ff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 || len(b) < headerLen(b[1]) {
			return
		}
		b = b[:headerLen(b[1])]
		h := decodeHeader(b)
		if h.length > 1<<62 || !h.fin || h.rsv != 0 {
			return
		}
		minimal := (h.length < 126) == (b[1]&0x7f < 126) && (h.length <= 0xffff) == (b[1]&0x7f <= 126)
		if !minimal {
			return
		}
		if got := appendHeader(nil, h.op, int(h.length), h.masked, h.key); !bytes.Equal(got, b) {
			t.Fatalf("% x decodes to %+v, which encodes to % x", b, h, got)
		}
	})
}
