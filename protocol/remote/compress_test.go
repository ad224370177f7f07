package remote

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"webrepl/protocol"
)

// getLines encodes data as a get's output: a line per chunk of bytes,
// deflated where compress says so, with the given line end.
func getLines(data []byte, chunk int, compress func(i int) bool, eol string) []byte {
	var out bytes.Buffer
	var z deflater
	for i := 0; len(data) > 0; i++ {
		c := data[:min(chunk, len(data))]
		data = data[len(c):]
		if compress(i) {
			out.WriteByte(zMark)
			c = z.deflate(c)
		}
		out.WriteString(base64.StdEncoding.EncodeToString(c) + eol)
	}
	return out.Bytes()
}

func deflated(s string) string {
	var z deflater
	return base64.StdEncoding.EncodeToString(z.deflate([]byte(s)))
}

func TestLineDecoder(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		in   string
		want string
		err  error // matched with errors.Is; nil: no error
	}{
		{name: "plain", max: 16, in: "aGVsbG8=\n", want: "hello"},
		{name: "CRLF, as print makes on MCU ports", max: 16, in: "aGVsbG8=\r\naGVsbG8=\r\n", want: "hellohello"},
		{name: "no final line end", max: 16, in: "aGVsbG8=", want: "hello"},
		{name: "empty lines skipped", max: 16, in: "\n\r\naGVsbG8=\n\n", want: "hello"},
		{name: "compressed", max: 16, in: "*" + deflated("hello hello") + "\n", want: "hello hello"},
		{name: "compressed, exactly max", max: 11, in: "*" + deflated("hello hello") + "\n", want: "hello hello"},
		{name: "mixed", max: 16, in: "*" + deflated("abcabcabc") + "\nZGVm\n", want: "abcabcabcdef"},
		{name: "empty compressed chunk", max: 16, in: "*" + deflated("") + "\n", want: ""},
		{name: "bad base64", max: 16, in: "aGV$bG8=\n", err: protocol.ErrProtocol},
		{name: "bad base64 after the mark", max: 16, in: "*!!\n", err: protocol.ErrProtocol},
		{name: "not deflate", max: 16, in: "*" + base64.StdEncoding.EncodeToString([]byte{0xff, 0xff, 0xff}) + "\n", err: protocol.ErrProtocol},
		{name: "truncated deflate", max: 64, in: "*" + base64.StdEncoding.EncodeToString(mustDeflate("hello hello hello")[:3]) + "\n", err: protocol.ErrProtocol},
		// A hostile board: a chunk that inflates past the bound is refused
		// before it is written whole.
		{name: "inflates past max", max: 10, in: "*" + deflated("hello hello") + "\n", err: protocol.ErrProtocol},
		{name: "line too long", max: 5, in: strings.Repeat("aGVsbG8g", 20) + "\n", err: protocol.ErrProtocol},
		{name: "line too long, no line end", max: 5, in: strings.Repeat("A", 100), err: protocol.ErrProtocol},
		{name: "longest line", max: 5, in: "*" + deflated("hello") + "\r\n", want: "hello"},
		{name: "bomb", max: 4096, in: "*" + deflated(strings.Repeat("x", 1<<20)) + "\n", err: protocol.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			d := &lineDecoder{w: &got, max: tc.max}
			_, err := d.Write([]byte(tc.in))
			if err == nil {
				err = d.flush()
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want || d.n != int64(len(tc.want)) {
				t.Errorf("got %q (%d counted), want %q", got.String(), d.n, tc.want)
			}
		})
	}
}

func mustDeflate(s string) []byte {
	var z deflater
	return bytes.Clone(z.deflate([]byte(s)))
}

// TestLineDecoderSplitWrites feeds a get's output in pieces of every size,
// as the raw REPL delivers it.
func TestLineDecoderSplitWrites(t *testing.T) {
	data := bytes.Repeat([]byte("every byte \x00\x01\xfe\xff "), 300)
	in := getLines(data, 512, func(i int) bool { return i%2 == 0 }, "\r\n")
	for _, size := range []int{1, 2, 3, 7, 100, 4096} {
		var got bytes.Buffer
		d := &lineDecoder{w: &got, max: 512}
		for p := in; len(p) > 0; p = p[min(size, len(p)):] {
			if n, err := d.Write(p[:min(size, len(p))]); err != nil || n != min(size, len(p)) {
				t.Fatalf("pieces of %d: Write = %d, %v", size, n, err)
			}
		}
		if err := d.flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Errorf("pieces of %d: got %d bytes, want the %d sent", size, got.Len(), len(data))
		}
	}
}

func FuzzLineDecoder(f *testing.F) {
	f.Add([]byte("hello"), uint8(3), uint8(0b101))
	f.Add([]byte{}, uint8(1), uint8(0))
	f.Add(bytes.Repeat([]byte{0, 1, 2, 255}, 100), uint8(50), uint8(0xff))
	f.Fuzz(func(t *testing.T, data []byte, chunk, mask uint8) {
		m := int(chunk) + 1
		in := getLines(data, m, func(i int) bool { return mask>>(i%8)&1 != 0 }, "\n")
		var got bytes.Buffer
		d := &lineDecoder{w: &got, max: m}
		if _, err := d.Write(in); err != nil {
			t.Fatal(err)
		}
		if err := d.flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("got %q, want %q", got.Bytes(), data)
		}
		// Whatever a board sends, decoding fails cleanly or writes at
		// most max bytes a line.
		d = &lineDecoder{w: &bytes.Buffer{}, max: m}
		d.Write(append([]byte{zMark}, data...))
		d.flush()
	})
}

func TestWindowBits(t *testing.T) {
	for _, tc := range []struct{ chunk, put, get int }{
		{1, 8, 8},
		{256, 8, 8},
		{257, 9, 9},
		{1000, 10, 10},
		{4096, 12, 12},
		{6144, 13, 12},
		{8192, 13, 12},
		{8193, 14, 12},
		{1 << 20, 15, 12},
	} {
		if put, get := putWindowBits(tc.chunk), getWindowBits(tc.chunk); put != tc.put || get != tc.get {
			t.Errorf("chunk %d: got windows 2^%d (put), 2^%d (get), want 2^%d, 2^%d", tc.chunk, put, get, tc.put, tc.get)
		}
	}
}

func TestPyBytes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `b''`},
		{"abc", `b'abc'`},
		{`it's \ ok`, `b'it\'s \\ ok'`},
		{"\x00\n\x7f\xff", `b'\x00\x0a\x7f\xff'`},
	} {
		if got := pyBytes(tc.in); got != tc.want {
			t.Errorf("pyBytes(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestChunkSize(t *testing.T) {
	for _, tc := range []struct{ opt, free, want int }{
		{0, -1, DefaultChunkSize},
		{0, 1 << 30, DefaultChunkSize},
		{0, 8 * DefaultChunkSize, DefaultChunkSize},
		{0, 8*DefaultChunkSize - 1, DefaultChunkSize - minChunkSize},
		{0, 30000, 3072},
		{0, 20000, 2048},
		{0, 1000, minChunkSize},
		{0, 0, minChunkSize},
		{5000, 1000, 5000}, // the caller's choice stands
		{100000, -1, 100000},
	} {
		if got := chunkSize(tc.opt, tc.free); got != tc.want {
			t.Errorf("chunkSize(%d, %d) = %d, want %d", tc.opt, tc.free, got, tc.want)
		}
	}
}
