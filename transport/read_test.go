package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
)

type message struct {
	binary bool
	data   string
}

func (m message) String() string {
	if m.binary {
		return fmt.Sprintf("binary %q", m.data)
	}
	return fmt.Sprintf("text %q", m.data)
}

// maskPayload masks p with key the slow, obvious way (RFC 6455 §5.3),
// independently of the code under test.
func maskPayload(key [4]byte, p []byte) []byte {
	out := make([]byte, len(p))
	for i := range p {
		out[i] = p[i] ^ key[i%4]
	}
	return out
}

var rfcKey = [4]byte{0x37, 0xfa, 0x21, 0x3d} // RFC 6455 §5.7

// typedPassword is what webrepl.html sends for "secret\r": one masked text
// frame per key (webrepl.md §6.1 L2 (browser)).
func typedPassword() []byte {
	var b []byte
	for _, c := range []byte("secret\r") {
		b = append(b, 0x81, 0x81)
		b = append(b, rfcKey[:]...)
		b = append(b, maskPayload(rfcKey, []byte{c})...)
	}
	return b
}

type readCase struct {
	name    string
	client  bool // false: the Conn is the server
	max     int
	in      string // hex, see unhex
	inBytes []byte // appended to in
	want    []message
	wantErr error  // io.EOF means exactly io.EOF
	reply   string // hex of everything the Conn writes back (client key: 00 00 00 00)
}

// readCases drive TestReadMessage and seed FuzzReadMessage. Frames from
// the reference CLI come from webrepl.md §6; the "Hello" frames from
// RFC 6455 §5.7.
func readCases() []readCase {
	hello := "48 65 6c 6c 6f"
	return []readCase{
		{name: "cli password (6.1 L2)", in: "82 07 73 65 63 72 65 74 0d",
			want: []message{{true, "secret\r"}}, wantErr: io.EOF},
		{name: "cli get_ver (6.2 V1)", in: "82 52 57 41 03 00 00×78",
			want: []message{{true, "WA\x03" + string(make([]byte, 79))}}, wantErr: io.EOF},
		{name: "cli split put header (6.4 P1a P1b)",
			in: "82 0a 57 41 01 00 00×6  82 48 00 00 0a 00 00 00 09 00 2f 74 65 73 74 2e 74 78 74 00×55",
			want: []message{
				{true, "WA\x01\x00" + string(make([]byte, 6))},
				{true, "\x00\x00\x0a\x00\x00\x00\x09\x00/test.txt" + string(make([]byte, 55))},
			}, wantErr: io.EOF},
		{name: "cli get ack (6.3 G3)", in: "82 01 00", want: []message{{true, "\x00"}}, wantErr: io.EOF},
		{name: "cli put data (6.4 P3)", in: "82 0a 41 42 43 44 45 46 47 48 49 4a",
			want: []message{{true, "ABCDEFGHIJ"}}, wantErr: io.EOF},
		{name: "browser typed password (6.1 L2 browser)", inBytes: typedPassword(),
			want:    []message{{false, "s"}, {false, "e"}, {false, "c"}, {false, "r"}, {false, "e"}, {false, "t"}, {false, "\r"}},
			wantErr: io.EOF},
		{name: "rfc unmasked text", in: "81 05 " + hello, want: []message{{false, "Hello"}}, wantErr: io.EOF},
		{name: "rfc masked text", in: "81 85 37 fa 21 3d 7f 9f 4d 51 58", want: []message{{false, "Hello"}}, wantErr: io.EOF},
		{name: "rfc fragmented text", in: "01 03 48 65 6c 80 02 6c 6f", want: []message{{false, "Hello"}}, wantErr: io.EOF},
		{name: "ping between fragments", in: "01 03 48 65 6c 89 05 " + hello + " 80 02 6c 6f",
			want: []message{{false, "Hello"}}, wantErr: io.EOF, reply: "8a 05 " + hello},
		{name: "masked ping", in: "89 85 37 fa 21 3d 7f 9f 4d 51 58 82 01 07",
			want: []message{{true, "\x07"}}, wantErr: io.EOF, reply: "8a 05 " + hello},
		{name: "empty ping", in: "89 00", wantErr: io.EOF, reply: "8a 00"},
		{name: "client answers ping masked", client: true, in: "89 05 " + hello,
			wantErr: io.EOF, reply: "8a 85 00 00 00 00 " + hello},
		{name: "pong ignored", in: "8a 02 01 02 82 01 07", want: []message{{true, "\x07"}}, wantErr: io.EOF},
		{name: "rsv bits ignored", in: "f2 01 07 c1 01 41", want: []message{{true, "\x07"}, {false, "A"}}, wantErr: io.EOF},
		{name: "invalid utf-8 text kept", in: "81 03 e2 82 ff 81 01 ac",
			want: []message{{false, "\xe2\x82\xff"}, {false, "\xac"}}, wantErr: io.EOF},
		{name: "empty messages skipped", in: "82 00 81 00 01 00 80 00 82 80 01 02 03 04 82 01 07",
			want: []message{{true, "\x07"}}, wantErr: io.EOF},
		{name: "16-bit length", in: "82 7e 00 7e 78×126", want: []message{{true, string(bytes.Repeat([]byte("x"), 126))}}, wantErr: io.EOF},
		{name: "non-minimal 64-bit length", in: "82 7f 00×7 05 31 32 33 34 35", want: []message{{true, "12345"}}, wantErr: io.EOF},
		{name: "server masked frame read by client", client: true, in: "81 85 37 fa 21 3d 7f 9f 4d 51 58",
			want: []message{{false, "Hello"}}, wantErr: io.EOF},
		{name: "close with code", in: "88 02 03 e8 82 01 07", wantErr: io.EOF, reply: "88 00"},
		{name: "masked close with code (browser)", in: "88 82 37 fa 21 3d 34 12", wantErr: io.EOF, reply: "88 00"},
		{name: "client answers close", client: true, in: "88 00", wantErr: io.EOF, reply: "88 80 00 00 00 00"},
		{name: "eof between frames", in: "", wantErr: io.EOF},
		{name: "eof in header", in: "82", wantErr: io.ErrUnexpectedEOF},
		{name: "eof in extended length", in: "82 7e 00", wantErr: io.ErrUnexpectedEOF},
		{name: "eof in mask key", in: "82 81 37", wantErr: io.ErrUnexpectedEOF},
		{name: "eof in payload", in: "82 05 01 02", wantErr: io.ErrUnexpectedEOF},
		{name: "eof between fragments", in: "02 01 41", wantErr: io.ErrUnexpectedEOF},
		{name: "eof in control payload", in: "89 05 48", wantErr: io.ErrUnexpectedEOF},
		{name: "too big", max: 16, in: "82 11 00×17", wantErr: ErrMessageTooBig, reply: "88 02 03 f1"},
		{name: "exactly the limit", max: 16, in: "82 10 61×16", want: []message{{true, "aaaaaaaaaaaaaaaa"}}, wantErr: io.EOF},
		{name: "64-bit length, top bit set", in: "82 7f ff×8", wantErr: ErrMessageTooBig, reply: "88 02 03 f1"},
		{name: "64-bit length, huge", in: "82 7f 7f ff ff ff ff ff ff ff", wantErr: ErrMessageTooBig, reply: "88 02 03 f1"},
		{name: "too big in fragments", max: 16, in: "02 0a 61×10 80 0a 62×10", wantErr: ErrMessageTooBig, reply: "88 02 03 f1"},
		{name: "too big, client", client: true, max: 16, in: "82 7e 01 00", wantErr: ErrMessageTooBig, reply: "88 82 00 00 00 00 03 f1"},
		{name: "reserved data opcode", in: "83 00", wantErr: ErrProtocol, reply: "88 02 03 ea"},
		{name: "reserved control opcode", in: "8b 00", wantErr: ErrProtocol, reply: "88 02 03 ea"},
		{name: "control frame too long", in: "89 7e 00 7e", wantErr: ErrProtocol, reply: "88 02 03 ea"},
		{name: "continuation without start", in: "80 01 41", wantErr: ErrProtocol, reply: "88 02 03 ea"},
		{name: "new message inside fragmented one", in: "01 01 41 01 01 42", wantErr: ErrProtocol, reply: "88 02 03 ea"},
	}
}

func (tc readCase) input(t testing.TB) []byte {
	return append(unhex(t, tc.in), tc.inBytes...)
}

func TestReadMessage(t *testing.T) {
	for _, tc := range readCases() {
		t.Run(tc.name, func(t *testing.T) {
			rw := newMemRW(tc.input(t))
			role := Server
			if tc.client {
				role = Client
			}
			c := fixedKey(NewConn(rw, nil, &Options{Role: role, MaxMessage: tc.max, Logf: t.Logf}), [4]byte{})
			var got []message
			var err error
			for {
				var bin bool
				var p []byte
				bin, p, err = c.ReadMessage(bg())
				if err != nil {
					break
				}
				got = append(got, message{bin, string(p)})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d messages %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("message %d: got %v, want %v", i, got[i], tc.want[i])
				}
			}
			if tc.wantErr == io.EOF {
				if err != io.EOF {
					t.Errorf("got error %v, want exactly io.EOF", err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want one wrapping %v", err, tc.wantErr)
			} else if msg := err.Error(); len(msg) < 9 || msg[:9] != "webrepl: " {
				t.Errorf("error %q lacks the webrepl: prefix", msg)
			}
			// The error is final.
			if _, _, err2 := c.ReadMessage(bg()); err2 != err {
				t.Errorf("second read: got %v, want the same error %v", err2, err)
			}
			if got, want := rw.written(), unhex(t, tc.reply); !bytes.Equal(got, want) {
				t.Errorf("wrote % x, want % x", got, want)
			}
			if rw.isClosed() {
				t.Error("ReadMessage closed the stream; only Close and contexts may")
			}
		})
	}
}

// TestReadMessageNoHugeAllocation checks that a header announcing a huge
// payload allocates nothing of that size: neither above the limit (the
// header is refused) nor below it (the buffer grows with the bytes that
// really arrive).
func TestReadMessageNoHugeAllocation(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"64-bit length", "82 7f 00 00 00 ff ff ff ff ff 00×32", ErrMessageTooBig},
		{"just under the 1 MiB limit, then the peer vanishes", "82 7f 00 00 00 00 00 0f ff ff 00×32", io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c := NewConn(newMemRW(in), nil, &Options{Role: Server})
			_, _, err := c.ReadMessage(bg())
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
				t.Errorf("allocated %d bytes for a %d-byte input", d, len(in))
			}
		})
	}
}

// FuzzReadMessage feeds arbitrary bytes to a server and a client Conn:
// no panics, only errors, no message over the limit, and every call after
// an error returns that error.
func FuzzReadMessage(f *testing.F) {
	for _, tc := range readCases() {
		f.Add(tc.input(f))
	}
	const max = 4 << 10
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, role := range []Role{Client, Server} {
			c := fixedKey(NewConn(newMemRW(in), nil, &Options{Role: role, MaxMessage: max}), [4]byte{1, 2, 3, 4})
			var err error
			for i := 0; i <= len(in); i++ {
				var p []byte
				if _, p, err = c.ReadMessage(bg()); err != nil {
					break
				}
				if len(p) == 0 || len(p) > max {
					t.Fatalf("%v: message of %d bytes", role, len(p))
				}
			}
			if err == nil {
				t.Fatalf("%v: %d messages from %d bytes and no error", role, len(in)+1, len(in))
			}
			if _, _, err2 := c.ReadMessage(bg()); err2 != err {
				t.Fatalf("%v: error not final: %v then %v", role, err, err2)
			}
		}
	})
}
