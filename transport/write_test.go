package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// TestServerWritesGolden checks what a server-role Conn puts on the wire
// against the device's frames in webrepl.md §6.
func TestServerWritesGolden(t *testing.T) {
	big1024 := bytes.Repeat([]byte{0x41}, 1024)
	big64k := bytes.Repeat([]byte{0x42}, 65536)
	cases := []struct {
		name   string
		binary bool
		p      []byte
		want   string
		extra  []byte // appended to want
	}{
		{name: "L1 password prompt", p: []byte("Password: "), want: "81 0a 50 61 73 73 77 6f 72 64 3a 20"},
		{name: "L3 ok", p: []byte("\r\nWebREPL connected\r\n>>> "),
			want: "81 19 0d 0a 57 65 62 52 45 50 4c 20 63 6f 6e 6e 65 63 74 65 64 0d 0a 3e 3e 3e 20"},
		{name: "L3 bad", p: []byte("\r\nAccess denied\r\n"), want: "81 11 0d 0a 41 63 63 65 73 73 20 64 65 6e 69 65 64 0d 0a"},
		{name: "G2 WB 0", binary: true, p: []byte("WB\x00\x00"), want: "82 04 57 42 00 00"},
		{name: "V2 version", binary: true, p: []byte{1, 0x13, 1}, want: "82 03 01 13 01"},
		{name: "G4 chunk", binary: true, p: []byte("\x0a\x000123456789"), want: "82 0c 0a 00 30 31 32 33 34 35 36 37 38 39"},
		{name: "G6 end of file", binary: true, p: []byte{0, 0}, want: "82 02 00 00"},
		{name: "125 bytes, 7-bit length", binary: true, p: big1024[:125], want: "82 7d", extra: big1024[:125]},
		{name: "126 bytes, 16-bit length", binary: true, p: big1024[:126], want: "82 7e 00 7e", extra: big1024[:126]},
		{name: "1024 bytes, 16-bit length", binary: true, p: big1024, want: "82 7e 04 00", extra: big1024},
		{name: "65535 bytes, 16-bit length", binary: true, p: big64k[:65535], want: "82 7e ff ff", extra: big64k[:65535]},
		{name: "65536 bytes, 64-bit length", binary: true, p: big64k, want: "82 7f 00 00 00 00 00 01 00 00", extra: big64k},
		{name: "empty binary", binary: true, p: nil, want: "82 00"},
	}
	for _, tc := range cases {
		for _, split := range []bool{false, true} {
			name := tc.name
			if split {
				name += " split"
			}
			t.Run(name, func(t *testing.T) {
				rw := newMemRW(nil)
				c := NewConn(rw, nil, &Options{Role: Server, SplitWrites: split})
				orig := bytes.Clone(tc.p)
				if err := c.WriteMessage(bg(), tc.binary, tc.p); err != nil {
					t.Fatal(err)
				}
				want := append(unhex(t, tc.want), tc.extra...)
				if got := rw.written(); !bytes.Equal(got, want) {
					t.Errorf("wrote % x, want % x", head(got), head(want))
				}
				if !bytes.Equal(tc.p, orig) {
					t.Error("WriteMessage changed the caller's buffer")
				}
				wantCalls := 1
				if split && len(tc.p) > 0 {
					wantCalls = 2
				}
				if len(tc.p) > writeChunk && !split {
					wantCalls = 2 // header, then the caller's buffer as is
				}
				if got := rw.calls(); got != wantCalls {
					t.Errorf("%d Write calls, want %d", got, wantCalls)
				}
			})
		}
	}
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// TestClientWritesGolden checks client frames: masked with the key, the
// payload masked in a copy (RFC 6455 §5.7 example for "Hello").
func TestClientWritesGolden(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80000 bytes: 64-bit length, several chunks
	cases := []struct {
		name   string
		binary bool
		key    [4]byte
		p      []byte
		want   []byte
	}{
		{name: "rfc masked hello", key: rfcKey, p: []byte("Hello"), want: unhex(t, "81 85 37 fa 21 3d 7f 9f 4d 51 58")},
		{name: "password, zero key", binary: true, p: []byte("secret\r"), want: unhex(t, "82 87 00 00 00 00 73 65 63 72 65 74 0d")},
		{name: "get ack", binary: true, key: rfcKey, p: []byte{0}, want: unhex(t, "82 81 37 fa 21 3d 37")},
		{name: "empty", binary: true, key: rfcKey, want: unhex(t, "82 80 37 fa 21 3d")},
		{name: "text is not altered", key: [4]byte{}, p: []byte{0xe2, 0x82}, want: unhex(t, "81 82 00 00 00 00 e2 82")},
		{name: "80000 bytes", binary: true, key: rfcKey, p: long,
			want: append(unhex(t, "82 ff 00 00 00 00 00 01 38 80 37 fa 21 3d"), maskPayload(rfcKey, long)...)},
	}
	for _, tc := range cases {
		for _, split := range []bool{false, true} {
			name := tc.name
			if split {
				name += " split"
			}
			t.Run(name, func(t *testing.T) {
				rw := newMemRW(nil)
				c := fixedKey(NewConn(rw, nil, &Options{Role: Client, SplitWrites: split}), tc.key)
				orig := bytes.Clone(tc.p)
				if err := c.WriteMessage(bg(), tc.binary, tc.p); err != nil {
					t.Fatal(err)
				}
				if got := rw.written(); !bytes.Equal(got, tc.want) {
					t.Errorf("wrote % x, want % x", head(got), head(tc.want))
				}
				if !bytes.Equal(tc.p, orig) {
					t.Error("WriteMessage changed the caller's buffer")
				}
				if split && len(tc.p) > 0 && len(rw.writes[0]) != len(tc.want)-len(tc.p) {
					t.Errorf("first Write of %d bytes, want the %d-byte header alone", len(rw.writes[0]), len(tc.want)-len(tc.p))
				}
			})
		}
	}
}

// TestClientMasksRandomly checks that client keys come from crypto/rand:
// different for each frame, and that the frames decode.
func TestClientMasksRandomly(t *testing.T) {
	rw := newMemRW(nil)
	c := NewConn(rw, nil, nil)
	keys := map[[4]byte]bool{}
	for range 100 {
		if err := c.WriteMessage(bg(), true, []byte("abcd")); err != nil {
			t.Fatal(err)
		}
	}
	s := NewConn(newMemRW(rw.written()), nil, &Options{Role: Server})
	for i, w := range rw.writes {
		if w[1]&0x80 == 0 {
			t.Fatalf("frame %d not masked: % x", i, w)
		}
		keys[[4]byte(w[2:6])] = true
		_, p, err := s.ReadMessage(bg())
		if err != nil || string(p) != "abcd" {
			t.Fatalf("frame %d: got %q, %v", i, p, err)
		}
	}
	if len(keys) < 95 {
		t.Errorf("only %d different keys in 100 frames", len(keys))
	}
}

// utf8Cases drive TestServerTextUTF8 and seed FuzzTextCutter. Each write
// is one server-role text WriteMessage; want lists the frames that appear
// ("-" stands for "no frame").
var utf8Cases = []struct {
	name   string
	writes []string
	want   []string
}{
	{"ascii", []string{"abc"}, []string{"abc"}},
	{"whole characters", []string{"é€😀"}, []string{"é€😀"}},
	{"2-byte split", []string{"a\xc3", "\xa9b"}, []string{"a", "éb"}},
	{"3-byte split 1+2", []string{"\xe2", "\x82\xac"}, []string{"-", "€"}},
	{"3-byte split 2+1", []string{"x\xe2\x82", "\xacy"}, []string{"x", "€y"}},
	{"4-byte split 1+1+1+1", []string{"\xf0", "\x9f", "\x98", "\x80"}, []string{"-", "-", "-", "😀"}},
	{"4-byte split 3+1", []string{"ab\xf0\x9f\x98", "\x80"}, []string{"ab", "😀"}},
	{"invalid byte", []string{"a\xffb"}, []string{"a\uFFFDb"}},
	{"lone continuation byte", []string{"\x80"}, []string{"\uFFFD"}},
	{"truncated, then ascii", []string{"\xe2\x82", "A"}, []string{"-", "\uFFFD\uFFFDA"}},
	{"utf-16 surrogate", []string{"\xed\xa0\x80"}, []string{"\uFFFD\uFFFD\uFFFD"}},
	{"overlong slash", []string{"\xc0\xaf"}, []string{"\uFFFD\uFFFD"}},
	{"above U+10FFFF", []string{"\xf4\x90\x80\x80"}, []string{"\uFFFD\uFFFD\uFFFD\uFFFD"}},
	{"empty write", []string{""}, []string{""}},
	{"empty write while holding", []string{"\xc3", "", "\xa9"}, []string{"-", "", "é"}},
	{"device echo, byte by byte", []string{"\xd0", "\xb4", "\xd0", "\xb0"}, []string{"-", "д", "-", "а"}},
}

func TestServerTextUTF8(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			rw := newMemRW(nil)
			c := NewConn(rw, nil, &Options{Role: Server})
			var got []string
			for _, w := range tc.writes {
				before := rw.calls()
				if err := c.WriteMessage(bg(), false, []byte(w)); err != nil {
					t.Fatal(err)
				}
				switch rw.calls() - before {
				case 0:
					got = append(got, "-")
				case 1:
					f := rw.writes[len(rw.writes)-1]
					h := decodeHeader(f[:headerLen(f[1])])
					p := f[headerLen(f[1]):]
					if h.op != opText || !h.fin || int(h.length) != len(p) {
						t.Fatalf("bad frame % x", f)
					}
					if !utf8.Valid(p) {
						t.Errorf("text frame with invalid UTF-8: % x", p)
					}
					got = append(got, string(p))
				default:
					t.Fatalf("one write gave %d frames", rw.calls()-before)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("frames %+q, want %+q", got, tc.want)
			}
		})
	}
}

// TestTextCutOnlyServerText checks that binary frames and client text go
// out unchanged, and that a binary write does not disturb a held-back
// character.
func TestTextCutOnlyServerText(t *testing.T) {
	rw := newMemRW(nil)
	s := NewConn(rw, nil, &Options{Role: Server})
	for _, w := range []struct {
		binary bool
		p      string
	}{{false, "\xe2\x82"}, {true, "\xff\xe2"}, {false, "\xac!"}} {
		if err := s.WriteMessage(bg(), w.binary, []byte(w.p)); err != nil {
			t.Fatal(err)
		}
	}
	want := unhex(t, "82 02 ff e2 81 04 e2 82 ac 21")
	if got := rw.written(); !bytes.Equal(got, want) {
		t.Errorf("wrote % x, want % x", got, want)
	}
}

// FuzzTextCutter checks that whatever the bytes and however they are cut
// into writes, every frame is valid UTF-8 and the frames together are what
// one write of all the bytes gives.
func FuzzTextCutter(f *testing.F) {
	for _, tc := range utf8Cases {
		var cuts []byte
		for _, w := range tc.writes {
			cuts = append(cuts, byte(len(w)))
		}
		f.Add([]byte(strings.Join(tc.writes, "")), cuts)
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var whole textCutter
		want, _ := whole.cut(data)
		want = bytes.Clone(want)
		var tc textCutter
		var got []byte
		rest := data
		for _, n := range cuts {
			n := min(int(n), len(rest))
			out, send := tc.cut(rest[:n])
			if !utf8.Valid(out) {
				t.Fatalf("invalid UTF-8 out: % x", out)
			}
			if !send && len(out) > 0 {
				t.Fatalf("no frame, yet %d bytes", len(out))
			}
			got = append(got, out...)
			rest = rest[n:]
		}
		out, _ := tc.cut(rest)
		got = append(got, out...)
		if !bytes.Equal(got, want) {
			t.Fatalf("cut writes give % x, one write gives % x", got, want)
		}
		if utf8.Valid(data) && !bytes.Equal(got, data) {
			t.Fatalf("valid input % x changed to % x", data, got)
		}
	})
}

// TestConcurrentWriters runs writers on a client while the peer pings it
// and its reader answers the pings with pongs; every message must arrive
// whole (run with -race).
func TestConcurrentWriters(t *testing.T) {
	leakCheck(t)
	a, b := net.Pipe()
	client := NewConn(a, nil, &Options{Role: Client})
	server := NewConn(b, nil, &Options{Role: Server})
	const writers, each, pings = 8, 40, 50
	readerDone := goAsync(t, func() error {
		_, _, err := client.ReadMessage(bg()) // answers pings until the end
		return err
	}, server, client)
	pingerDone := goAsync(t, func() error {
		for range pings {
			if _, err := b.Write(unhex(t, "89 04 70 69 6e 67")); err != nil {
				return err
			}
		}
		return nil
	}, server, client)
	writersDone := goAsync(t, func() error {
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					p := bytes.Repeat([]byte{byte(w)}, 1+(i*97)%3000)
					if err := client.WriteMessage(bg(), true, p); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}, server, client)
	msgs := make(chan []byte, writers*each)
	serverDone := goAsync(t, func() error {
		for { // the server keeps reading so that pongs can flow
			_, p, err := server.ReadMessage(bg())
			if err != nil {
				return err
			}
			msgs <- p
		}
	}, server, client)
	counts := map[byte]int{}
	for range writers * each {
		var p []byte
		select {
		case p = <-msgs:
		case err := <-serverDone:
			t.Fatal(err)
		}
		for _, b := range p {
			if b != p[0] {
				t.Fatalf("message mixes writers: % x", head(p))
			}
		}
		counts[p[0]]++
	}
	for _, ch := range []<-chan error{writersDone, pingerDone} {
		if err := recvErr(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	for w := range writers {
		if counts[byte(w)] != each {
			t.Errorf("writer %d: %d messages, want %d", w, counts[byte(w)], each)
		}
	}
	client.Close() // ends both readers
	// The client reader sees either its own Close or the server's answer
	// to the close frame Close sent.
	if err := recvErr(t, readerDone); err != io.EOF && !errors.Is(err, net.ErrClosed) {
		t.Errorf("client reader: got %v, want net.ErrClosed or io.EOF", err)
	}
	if err := recvErr(t, serverDone); err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("server reader: got %v, want the end of the stream", err)
	}
}

// TestWriteAfterClose checks the errors of writes after Close, after a
// close frame went out, and after a failed write.
func TestWriteAfterClose(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		c := NewConn(newMemRW(nil), nil, &Options{Role: Server})
		c.Close()
		if err := c.WriteMessage(bg(), true, []byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("got %v, want net.ErrClosed", err)
		}
		if _, _, err := c.ReadMessage(bg()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read: got %v, want net.ErrClosed", err)
		}
	})
	t.Run("after the peer's close", func(t *testing.T) {
		rw := newMemRW(unhex(t, "88 00"))
		c := NewConn(rw, nil, &Options{Role: Server})
		if _, _, err := c.ReadMessage(bg()); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
		if err := c.WriteMessage(bg(), false, []byte("late")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("got %v, want an error wrapping net.ErrClosed", err)
		}
		if got, want := rw.written(), unhex(t, "88 00"); !bytes.Equal(got, want) {
			t.Errorf("wrote % x, want % x", got, want)
		}
	})
}
