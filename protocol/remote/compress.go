package remote

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"

	"webrepl/protocol"
)

// How raw-REPL transfers go.
//
// A file moves in chunks: one exec per chunk for a put, one printed line
// per chunk for a get. The chunk size bounds what the board holds at once
// (see DefaultChunkSize); unless Options.ChunkSize sets it, it is 8 KiB,
// or an eighth of the board's free memory when that is less.
//
// A board whose firmware has the deflate module (MicroPython 1.21 and
// later, on most ports) can inflate what the host deflates, and, when its
// build has compression too, deflate what it sends. Each chunk is
// compressed on its own, with the raw DEFLATE format (no header), and goes
// compressed only when that makes it smaller, so incompressible data costs
// nothing extra:
//
//   - put: the host sends `_z(b'BASE64')` for a compressed chunk and
//     `_w(_d(b'BASE64'))` for a plain one. _z inflates into the file
//     through a 1 KiB buffer, with a window of 2^putWindowBits(chunk)
//     bytes: as every chunk is compressed alone, no back-reference reaches
//     further back than the chunk is long.
//   - get: the board prints one line per chunk, "*" and the base64 of the
//     deflated chunk, or just the base64 of the chunk when deflating did
//     not make it smaller. Its compressor (uzlib's: static Huffman codes,
//     and a search of its whole window for each match) searches a window
//     of 2^getWindowBits(chunk) bytes, at most 4 KiB: Python source
//     deflates about 2.4 times so, against 1.9 with 1 KiB. The search
//     costs the board time in proportion to the window, and most on data
//     that does not compress, so the board compresses the first chunk only
//     if the file's first getSample bytes shrink, and stops compressing
//     for the rest of the file at the first chunk that did not shrink, or
//     that it compressed slower than minDeflateRate. A WebAssembly board
//     (on a PC) compresses source at some 400 kB/s; a microcontroller may
//     well be slower than minDeflateRate, and then only the first chunk of
//     each file is compressed.
//
// The first raw-REPL transfer of a Board finds out, with one exec, what
// the board can do and how much memory it has (see Board.transferMode).

// zMark starts a get line that holds a deflated chunk. It is not a base64
// character.
const zMark = '*'

// maxGetWindowBits bounds the window of the board's compressor.
const maxGetWindowBits = 12

// minDeflateRate is, in bytes per second, how fast a board must deflate a
// chunk of a get for the next to be deflated too: 32 kB/s, about three
// times the line rate at 115200 baud, so that the time the board spends
// compressing stays below what it saves on such a line. (On a much faster
// line, such as USB, compressing on a slow board may not pay: see
// Options.NoCompress.)
const minDeflateRate = 32000

// getSample is how much of a file the board compresses first in a get, to
// find out cheaply whether the file compresses at all.
const getSample = 512

// minChunkSize is the smallest chunk a board's free memory brings the
// default down to.
const minChunkSize = 1024

// putWindowBits is the window the board inflates a put chunk with: the
// smallest power of two, from 2^8 to 2^15, that holds a whole chunk.
func putWindowBits(chunk int) int {
	return min(max(bits.Len(uint(chunk-1)), 8), 15)
}

// getWindowBits is the window of the board's compressor for get.
func getWindowBits(chunk int) int {
	return min(putWindowBits(chunk), maxGetWindowBits)
}

// chunkSize is the chunk for a board with free bytes of free memory (-1:
// unknown), opt being Options.ChunkSize. A put's peak is about four
// chunks (see DefaultChunkSize); an eighth of the free memory leaves room
// for fragmentation and the program's own objects.
func chunkSize(opt, free int) int {
	if opt > 0 {
		return opt
	}
	if free < 0 || free/8 >= DefaultChunkSize {
		return DefaultChunkSize
	}
	return max(free/8&^(minChunkSize-1), minChunkSize)
}

// xfer is how a Board's raw-REPL transfers go.
type xfer struct {
	chunk int  // file bytes per exec (put) or line (get); 0 until probed
	put   bool // the board inflates the host's chunks
	get   bool // the board deflates its own, in a form the host inflates
}

// probeText is compressed both ways by the probe. It must be shorter than
// 256 bytes, the window the probe uses.
const probeText = "webrepl probe: webrepl probe: webrepl probe. \x00\x01\xff"

// Python that picks the C binascii functions. A Python binascii
// (micropython-lib's, installed with mip or frozen into a port such as the
// WebAssembly one) shadows the built-in module with base64 code in Python,
// some hundred times slower; "ubinascii" still names the built-in module
// on MicroPython 1.21 and later, and is its only name on older firmware.
const (
	pyA2B = "try:\n from ubinascii import a2b_base64 as _d\nexcept ImportError:\n from binascii import a2b_base64 as _d\n"
	pyB2A = "try:\n from ubinascii import b2a_base64 as _e\nexcept ImportError:\n from binascii import b2a_base64 as _e\n"
)

// transferMode returns how raw-REPL transfers go, finding out on the first
// call with one exec: the board reports its free memory (after a
// collection), inflates a chunk deflated here and deflates one that is
// inflated here. A board without the deflate module, or whose module
// cannot do one of the two, gets plain transfers that way;
// Options.NoCompress gives plain transfers both ways.
func (b *Board) transferMode(ctx context.Context) (xfer, error) {
	if b.xfer.chunk > 0 {
		return b.xfer, nil
	}
	sample := b.z.deflate([]byte(probeText))
	out, err := b.exec(ctx, pyA2B+pyB2A+`_m=-1
try:
 import gc
 gc.collect()
 _m=gc.mem_free()
except Exception:
 pass
_c=0
_s=_z=None
try:
 import deflate,io
 if deflate.DeflateIO(io.BytesIO(_d(b'`+base64.StdEncoding.EncodeToString(sample)+`')),deflate.RAW,8).read()==`+pyBytes(probeText)+`:
  _c=1
 _s=io.BytesIO()
 _z=deflate.DeflateIO(_s,deflate.RAW,8)
 _z.write(`+pyBytes(probeText)+`)
 _z.close()
 _s=_e(_s.getvalue()).decode().strip()
except Exception:
 _s=''
print(_m,_c,_s)
del _m,_c,_s,_z,_d,_e`)
	var ee *protocol.ExecError
	if errors.As(err, &ee) {
		// Only the binascii imports are outside a try: the transfer itself
		// fails on them, with this error.
		b.logf("webrepl: the transfer probe failed: %v", err)
		b.xfer = xfer{chunk: chunkSize(b.opts.ChunkSize, -1)}
		return b.xfer, nil
	}
	if err != nil {
		return xfer{}, err
	}
	f := strings.Fields(string(out))
	var free int64
	if len(f) == 2 || len(f) == 3 {
		free, err = strconv.ParseInt(f[0], 10, 0)
	}
	if len(f) < 2 || len(f) > 3 || err != nil || (f[1] != "0" && f[1] != "1") {
		return xfer{}, fmt.Errorf("%w: unexpected answer to the transfer probe %q", protocol.ErrProtocol, out)
	}
	x := xfer{chunk: chunkSize(b.opts.ChunkSize, int(max(free, -1))), put: f[1] == "1"}
	if len(f) == 3 {
		var got bytes.Buffer
		d := lineDecoder{w: &got, max: len(probeText)}
		x.get = d.decode([]byte(string(zMark)+f[2])) == nil && got.String() == probeText
	}
	if b.opts.NoCompress {
		x.put, x.get = false, false
	}
	b.logf("webrepl: raw-REPL transfers: %d-byte chunks (%d bytes free on the board), deflate for put %v, for get %v", x.chunk, free, x.put, x.get)
	b.xfer = x
	return x, nil
}

// pyBytes quotes s as a Python bytes literal.
func pyBytes(s string) string {
	var sb strings.Builder
	sb.WriteString("b'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, "\\x%02x", c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('\'')
	return sb.String()
}

// deflater compresses chunks, one raw DEFLATE stream each. Its zero value
// is ready; it keeps one compressor for all chunks.
type deflater struct {
	w   *flate.Writer
	out bytes.Buffer
}

// deflate returns p compressed. The result is valid until the next call.
func (z *deflater) deflate(p []byte) []byte {
	z.out.Reset()
	if z.w == nil {
		// BestCompression: chunks are small, so the host's time is
		// nothing next to the line's.
		z.w, _ = flate.NewWriter(&z.out, flate.BestCompression)
	} else {
		z.w.Reset(&z.out)
	}
	z.w.Write(p) // writes to a bytes.Buffer cannot fail
	z.w.Close()
	return z.out.Bytes()
}

// lineDecoder decodes the lines a get prints as they stream in: base64,
// or zMark and the base64 of a raw DEFLATE stream. It writes the bytes to
// w. Its memory stays bounded, whatever the board sends: a line of about
// the base64 of max bytes, and max bytes of inflated output.
type lineDecoder struct {
	w   io.Writer
	max int // the most bytes a compressed line may inflate to
	n   int64
	err error

	line []byte
	buf  []byte        // decoded base64
	out  []byte        // inflated bytes, max+1 long
	src  bytes.Reader  // over buf, for zr
	zr   io.ReadCloser // reused across lines
}

func (d *lineDecoder) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p)
		}
		// zMark, the base64 of max bytes (and some, for a stream that
		// is longer than what it inflates to), and "\r".
		if len(d.line)+i > 2+base64.StdEncoding.EncodedLen(d.max+64) {
			d.err = fmt.Errorf("%w: a line from the board is longer than a chunk's", protocol.ErrProtocol)
			return 0, d.err
		}
		d.line = append(d.line, p[:i]...)
		if i == len(p) {
			break
		}
		p = p[i+1:]
		if err := d.flush(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// flush decodes the line gathered so far.
func (d *lineDecoder) flush() error {
	line := bytes.TrimRight(d.line, "\r")
	d.line = d.line[:0]
	if len(line) == 0 || d.err != nil {
		return d.err
	}
	d.err = d.decode(line)
	return d.err
}

// decode decodes one line, with no line end, and writes its bytes.
func (d *lineDecoder) decode(line []byte) error {
	z := line[0] == zMark
	if z {
		line = line[1:]
	}
	need := base64.StdEncoding.DecodedLen(len(line))
	if cap(d.buf) < need {
		d.buf = make([]byte, need)
	}
	n, err := base64.StdEncoding.Decode(d.buf[:need], line)
	if err != nil {
		return fmt.Errorf("%w: bad base64 from the board: %v", protocol.ErrProtocol, err)
	}
	p := d.buf[:n]
	if z {
		if p, err = d.inflate(p); err != nil {
			return err
		}
	}
	m, err := d.w.Write(p)
	d.n += int64(m)
	return err
}

// inflate returns the raw DEFLATE stream p inflated, refusing more than
// d.max bytes (a board that sends more is broken, or hostile).
func (d *lineDecoder) inflate(p []byte) ([]byte, error) {
	if len(d.out) != d.max+1 {
		d.out = make([]byte, d.max+1)
	}
	d.src.Reset(p)
	if d.zr == nil {
		d.zr = flate.NewReader(&d.src)
	} else {
		d.zr.(flate.Resetter).Reset(&d.src, nil) // fails only for a bad dictionary
	}
	var (
		n   int
		err error
	)
	for n < len(d.out) && err == nil {
		var k int
		k, err = d.zr.Read(d.out[n:])
		n += k
	}
	switch {
	case n > d.max:
		return nil, fmt.Errorf("%w: a compressed chunk from the board inflates to more than %d bytes", protocol.ErrProtocol, d.max)
	case err == io.EOF:
		return d.out[:n], nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: a compressed chunk from the board is truncated", protocol.ErrProtocol)
	default:
		return nil, fmt.Errorf("%w: bad compressed chunk from the board: %v", protocol.ErrProtocol, err)
	}
}
