package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Request vectors from reference/webrepl.md §6 (captured from
// webrepl_cli.py against a server that copies modwebrepl.c).
const (
	// §6.3 G1: GET /test.txt.
	vecGetHeader = "57 41 02 00  00*8  00 00 00 00  09 00  2f 74 65 73 74 2e 74 78 74  00*55"
	// §6.4 P1 (the browser's one-frame form; the CLI sends the same 82
	// bytes as 10 + 72): PUT /test.txt, 10 bytes.
	vecPutHeader = "57 41 01 00  00*8  0a 00 00 00  09 00  2f 74 65 73 74 2e 74 78 74  00*55"
	// §6.2 V1: GET_VER.
	vecVersionHeader = "57 41 03 00  00*78"
)

var requestTests = []struct {
	name string
	req  Request
	wire string
}{
	{"§6.3 G1 get /test.txt", Request{Op: OpGet, Name: "/test.txt"}, vecGetHeader},
	{"§6.4 P1 put /test.txt 10 bytes", Request{Op: OpPut, Size: 10, Name: "/test.txt"}, vecPutHeader},
	{"§6.2 V1 get-version", Request{Op: OpGetVersion}, vecVersionHeader},
	{"all fields", Request{Op: OpPut, Flags: 0xa5, Offset: 0x0102030405060708, Size: 0xdeadbeef, Name: "lib/x.py"},
		"57 41 01 a5  08 07 06 05 04 03 02 01  ef be ad de  08 00  6c 69 62 2f 78 2e 70 79  00*56"},
	{"63-byte name fits", Request{Op: OpGet, Name: strings.Repeat("a", 63)},
		"57 41 02 00  00*8  00*4  3f 00  61*63 00"},
	{"utf-8 name, fname_len in bytes", Request{Op: OpGet, Name: "é"},
		"57 41 02 00  00*8  00*4  02 00  c3 a9 00*62"},
	{"unknown op", Request{Op: 9, Name: "x"}, "57 41 09 00  00*8  00*4  01 00  78 00*63"},
}

func TestAppendRequest(t *testing.T) {
	for _, tt := range requestTests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.wire)
			got, err := AppendRequest([]byte("prefix"), tt.req)
			if err != nil {
				t.Fatalf("AppendRequest: %v", err)
			}
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Errorf("got\n% x\nwant prefix +\n% x", got, want)
			}
			mb, err := tt.req.MarshalBinary()
			if err != nil || !bytes.Equal(mb, want) {
				t.Errorf("MarshalBinary = % x, %v; want % x", mb, err, want)
			}
			if len(want) != RequestSize {
				t.Errorf("vector is %d bytes, want %d", len(want), RequestSize)
			}
		})
	}
}

func TestAppendRequestRefusesNames(t *testing.T) {
	tests := []struct {
		name    string
		reqName string
		want    error
	}{
		{"64 bytes (no room for the NUL)", strings.Repeat("a", 64), ErrNameTooLong},
		{"100 bytes", strings.Repeat("b", 100), ErrNameTooLong},
		{"invalid UTF-8", "bad\xff.py", ErrBadName},
		{"NUL", "a\x00b", ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendRequest([]byte("x"), Request{Op: OpPut, Name: tt.reqName})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if string(got) != "x" {
				t.Errorf("appended % x on error", got[1:])
			}
			if !strings.HasPrefix(err.Error(), "webrepl: ") {
				t.Errorf("error %q lacks the webrepl: prefix", err)
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	for _, tt := range requestTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(mustHex(t, tt.wire))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.req {
				t.Errorf("got %+v, want %+v", got, tt.req)
			}
		})
	}
	devTests := []struct {
		name string
		wire string
		want Request
	}{
		// modwebrepl.c ignores the signature and fname_len (§1.3 table).
		{"signature not checked", "00 00 03 00  00*78", Request{Op: OpGetVersion}},
		{"fname_len ignored", "57 41 02 00  00*8  00*4  ff ff  61 62 00*62", Request{Op: OpGet, Name: "ab"}},
		{"name ends at the first NUL", "57 41 02 00  00*8  00*4  05 00  61 00 62 63 00*60", Request{Op: OpGet, Name: "a"}},
		{"non-UTF-8 name kept as is", "57 41 02 00  00*8  00*4  01 00  ff 00*63", Request{Op: OpGet, Name: "\xff"}},
	}
	for _, tt := range devTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(mustHex(t, tt.wire))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	badTests := []struct {
		name string
		wire string
		want error
	}{
		{"64-byte name without NUL", "57 41 02 00  00*8  00*4  40 00  61*64", ErrNameTooLong},
		{"short", "57 41 03 00", ErrProtocol},
		{"long", "57 41 03 00  00*79", ErrProtocol},
		{"empty", "", ErrProtocol},
	}
	for _, tt := range badTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRequest(mustHex(t, tt.wire))
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

var replyTests = []struct {
	name   string
	wire   string
	status uint16
	err    error
}{
	{"§6.3 G2 WB 0", "57 42 00 00", 0, nil},
	{"status 2 (ENOENT)", "57 42 02 00", 2, nil},
	{"status little-endian", "57 42 34 12", 0x1234, nil},
	{"bad signature", "57 41 00 00", 0, ErrProtocol},
	{"short", "57 42 00", 0, ErrProtocol},
	{"long", "57 42 00 00 00", 0, ErrProtocol},
}

func TestReply(t *testing.T) {
	for _, tt := range replyTests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.wire)
			got, err := DecodeReply(b)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got != tt.status {
				t.Errorf("status = %d, want %d", got, tt.status)
			}
			if enc := AppendReply(nil, tt.status); !bytes.Equal(enc, b) {
				t.Errorf("AppendReply = % x, want % x", enc, b)
			}
		})
	}
}

var versionTests = []struct {
	name string
	wire string
	want Version
	str  string
	err  error
}{
	{"§6.2 V2 1.19.1", "01 13 01", Version{1, 19, 1}, "1.19.1", nil},
	{"§1.3 unix build 1.29.0", "01 1d 00", Version{1, 29, 0}, "1.29.0", nil},
	{"zero", "00 00 00", Version{}, "0.0.0", nil},
	{"max", "ff ff ff", Version{255, 255, 255}, "255.255.255", nil},
	{"WB prefix is not a version", "57 42 00 00", Version{}, "", ErrProtocol},
	{"short", "01 13", Version{}, "", ErrProtocol},
}

func TestVersion(t *testing.T) {
	for _, tt := range versionTests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.wire)
			got, err := DecodeVersion(b)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got != tt.want || got.String() != tt.str {
				t.Errorf("got %v (%q), want %v (%q)", got, got.String(), tt.want, tt.str)
			}
			if enc := AppendVersion(nil, got); !bytes.Equal(enc, b) {
				t.Errorf("AppendVersion = % x, want % x", enc, b)
			}
		})
	}
}

var chunkTests = []struct {
	name string
	data string // hex
	wire string
}{
	{"§6.3 G4 ten bytes", "30 31 32 33 34 35 36 37 38 39", "0a 00 30 31 32 33 34 35 36 37 38 39"},
	{"§6.3 G6 end of file", "", "00 00"},
	{"256 bytes (length 00 01)", "aa*256", "00 01 aa*256"},
}

func TestChunk(t *testing.T) {
	for _, tt := range chunkTests {
		t.Run(tt.name, func(t *testing.T) {
			data, wire := mustHex(t, tt.data), mustHex(t, tt.wire)
			got, err := AppendChunk(nil, data)
			if err != nil || !bytes.Equal(got, wire) {
				t.Fatalf("AppendChunk = % x, %v; want % x", got, err, wire)
			}
			n, err := DecodeChunkHeader(wire[:ChunkHeaderSize])
			if err != nil || n != len(data) {
				t.Errorf("DecodeChunkHeader = %d, %v; want %d", n, err, len(data))
			}
		})
	}
	if _, err := AppendChunk(nil, make([]byte, MaxChunkData+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("AppendChunk(65536 bytes): err = %v, want ErrProtocol", err)
	}
	if _, err := DecodeChunkHeader([]byte{1}); !errors.Is(err, ErrProtocol) {
		t.Errorf("DecodeChunkHeader(1 byte): err = %v, want ErrProtocol", err)
	}
}

func TestOpString(t *testing.T) {
	tests := []struct {
		op   Op
		want string
	}{
		{OpPut, "put"}, {OpGet, "get"}, {OpGetVersion, "get-version"}, {0, "op(0)"}, {9, "op(9)"},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(tt.op), got, tt.want)
		}
	}
}

// TestGetVersionTail checks the bytes that complete the surplus GET acks
// into a GET_VER request (see Client.Get).
func TestGetVersionTail(t *testing.T) {
	v1 := mustHex(t, vecVersionHeader)
	for k := 0; k <= 2; k++ {
		tail := getVersionTail(k)
		if len(tail) != RequestSize-k {
			t.Fatalf("k=%d: tail is %d bytes, want %d", k, len(tail), RequestSize-k)
		}
		req, err := DecodeRequest(append(make([]byte, k), tail...))
		if err != nil || req != (Request{Op: OpGetVersion}) {
			t.Errorf("k=%d: zeros + tail decode to %+v, %v; want a GET_VER", k, req, err)
		}
		if k == 0 && !bytes.Equal(tail[2:], v1[2:]) {
			t.Errorf("k=0: tail % x differs from V1 after the signature", tail)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, tt := range requestTests {
		f.Add(mustHex(f, tt.wire))
	}
	f.Add(mustHex(f, "57 41 02 00  00*8  00*4  40 00  61*64"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if CheckName(req.Name) != nil {
			return // a device takes any bytes; our encoder does not
		}
		enc, err := AppendRequest(nil, req)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", req, err)
		}
		again, err := DecodeRequest(enc)
		if err != nil || again != req {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", req, again, err)
		}
		// Everything but the signature, fname_len and the bytes after the
		// name's NUL is kept.
		if !bytes.Equal(enc[offOp:offNameLen], b[offOp:offNameLen]) {
			t.Fatalf("fixed fields changed: % x -> % x", b[offOp:offNameLen], enc[offOp:offNameLen])
		}
	})
}

func FuzzRequestRoundTrip(f *testing.F) {
	for _, tt := range requestTests {
		f.Add(uint8(tt.req.Op), tt.req.Flags, tt.req.Offset, tt.req.Size, tt.req.Name)
	}
	f.Add(uint8(OpPut), uint8(0), uint64(0), uint32(0), strings.Repeat("x", 64))
	f.Add(uint8(OpGet), uint8(0), uint64(0), uint32(0), "a\x00b")
	f.Fuzz(func(t *testing.T, op, flags uint8, offset uint64, size uint32, name string) {
		req := Request{Op: Op(op), Flags: flags, Offset: offset, Size: size, Name: name}
		enc, err := AppendRequest(nil, req)
		if err != nil {
			if CheckName(name) == nil {
				t.Fatalf("AppendRequest(%+v): %v, but the name is valid", req, err)
			}
			return
		}
		if len(enc) != RequestSize {
			t.Fatalf("encoded %d bytes", len(enc))
		}
		got, err := DecodeRequest(enc)
		if err != nil || got != req {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", req, got, err)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	for _, tt := range replyTests {
		f.Add(mustHex(f, tt.wire))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		status, err := DecodeReply(b)
		if err != nil {
			return
		}
		if enc := AppendReply(nil, status); !bytes.Equal(enc, b) {
			t.Fatalf("AppendReply(%d) = % x, decoded from % x", status, enc, b)
		}
	})
}

func FuzzDecodeVersion(f *testing.F) {
	for _, tt := range versionTests {
		f.Add(mustHex(f, tt.wire))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVersion(b)
		if err != nil {
			return
		}
		if enc := AppendVersion(nil, v); !bytes.Equal(enc, b) {
			t.Fatalf("AppendVersion(%v) = % x, decoded from % x", v, enc, b)
		}
		if want := fmt.Sprintf("%d.%d.%d", b[0], b[1], b[2]); v.String() != want {
			t.Fatalf("String() = %q, want %q", v.String(), want)
		}
	})
}

func FuzzDecodeChunkHeader(f *testing.F) {
	for _, tt := range chunkTests {
		f.Add(mustHex(f, tt.wire)[:ChunkHeaderSize])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeChunkHeader(b)
		if err != nil {
			return
		}
		if n < 0 || n > MaxChunkData {
			t.Fatalf("length %d out of range", n)
		}
		enc, err := AppendChunk(nil, make([]byte, n))
		if err != nil || !bytes.Equal(enc[:ChunkHeaderSize], b) {
			t.Fatalf("AppendChunk header = % x, %v; decoded from % x", enc[:ChunkHeaderSize], err, b)
		}
	})
}

func BenchmarkAppendRequest(b *testing.B) {
	req := Request{Op: OpGet, Name: "/lib/module.py"}
	buf := make([]byte, 0, RequestSize)
	b.ReportAllocs()
	b.SetBytes(RequestSize)
	for b.Loop() {
		var err error
		if buf, err = AppendRequest(buf[:0], req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	wire, err := hex.DecodeString(strings.ReplaceAll("57410200"+strings.Repeat("00", 12)+"0e00"+hex.EncodeToString([]byte("/lib/module.py"))+strings.Repeat("00", 50), " ", ""))
	if err != nil || len(wire) != RequestSize {
		b.Fatalf("bad vector: %d bytes, %v", len(wire), err)
	}
	b.ReportAllocs()
	b.SetBytes(RequestSize)
	for b.Loop() {
		if _, err := DecodeRequest(wire); err != nil {
			b.Fatal(err)
		}
	}
}
