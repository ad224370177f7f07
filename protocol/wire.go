package protocol

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Sizes and limits of the WebREPL file protocol. All multi-byte integers on
// the wire are little-endian.
const (
	// RequestSize is the length of a request record ("<2sBBQLH64s").
	RequestSize = 82
	// ReplySize is the length of a status reply: "WB" and a uint16 status.
	ReplySize = 4
	// VersionSize is the length of the answer to a GET_VER request:
	// major, minor and micro, with no "WB" prefix.
	VersionSize = 3
	// ChunkHeaderSize is the length of the uint16 that starts every GET
	// data chunk.
	ChunkHeaderSize = 2
	// ChunkSize is the most file data a device sends in one GET chunk.
	ChunkSize = 256
	// MaxChunkData is the most data a chunk header can announce.
	MaxChunkData = 1<<16 - 1
	// PutFrameSize is the size of the binary messages a client sends PUT
	// data in; the last message of a file is shorter. Real devices lose
	// bytes when the frame sizes vary, so keep to it.
	PutFrameSize = 1024
	// NameFieldSize is the size of the NUL-padded name field of a request.
	NameFieldSize = 64
	// MaxNameLen is the longest name a request can carry: the device needs
	// a NUL inside the name field.
	MaxNameLen = NameFieldSize - 1
	// MaxMessageSize is the largest message a real device can receive
	// (it has no 64-bit WebSocket length).
	MaxMessageSize = 1<<16 - 1
)

// Offsets of the request fields.
const (
	offSig     = 0
	offOp      = 2
	offFlags   = 3
	offOffset  = 4
	offSize    = 12
	offNameLen = 16
	offName    = 18
)

// Signatures of requests ("WA") and status replies ("WB").
const (
	requestSig = "WA"
	replySig   = "WB"
)

// Op is the operation code of a request.
type Op uint8

// The operations a device knows. Any other value is an unknown op: a real
// device answers it with WB 0 and then ignores every later binary byte.
const (
	OpPut        Op = 1 // PUT_FILE: store a file on the device
	OpGet        Op = 2 // GET_FILE: read a file from the device
	OpGetVersion Op = 3 // GET_VER: ask for the firmware version
)

// String returns the lower-case name used in error messages: "put", "get",
// "get-version", or "op(N)" for an unknown value.
func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpGet:
		return "get"
	case OpGetVersion:
		return "get-version"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Request is the 82-byte record that starts every file operation.
//
// Flags and Offset are reserved: clients send 0 and devices ignore them.
// Size is the file length for OpPut and 0 otherwise. Name is a path on the
// device, relative to its current directory unless it starts with "/".
type Request struct {
	Op     Op
	Flags  uint8
	Offset uint64
	Size   uint32
	Name   string
}

// CheckName reports whether name fits the name field of a request: at most
// MaxNameLen bytes, valid UTF-8 and no NUL byte. The error wraps
// ErrNameTooLong or ErrBadName. Names are never cut to fit.
func CheckName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes, at most %d fit in a request", ErrNameTooLong, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadName, name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return fmt.Errorf("%w: %q contains a NUL byte", ErrBadName, name)
		}
	}
	return nil
}

// AppendRequest appends the 82-byte encoding of r to b. The signature is
// "WA" and fname_len is the byte length of the name. It fails, appending
// nothing, when CheckName refuses r.Name.
func AppendRequest(b []byte, r Request) ([]byte, error) {
	if err := CheckName(r.Name); err != nil {
		return b, err
	}
	start := len(b)
	b = append(b, make([]byte, RequestSize)...)
	h := b[start:]
	copy(h[offSig:], requestSig)
	h[offOp] = byte(r.Op)
	h[offFlags] = r.Flags
	binary.LittleEndian.PutUint64(h[offOffset:], r.Offset)
	binary.LittleEndian.PutUint32(h[offSize:], r.Size)
	binary.LittleEndian.PutUint16(h[offNameLen:], uint16(len(r.Name)))
	copy(h[offName:], r.Name)
	return b, nil
}

// MarshalBinary returns the 82-byte encoding of r (see AppendRequest).
func (r Request) MarshalBinary() ([]byte, error) {
	return AppendRequest(make([]byte, 0, RequestSize), r)
}

// DecodeRequest parses an 82-byte request the way a device does. The
// signature is not checked (a device does not check it either), fname_len
// is ignored, and the name is the bytes of the name field up to the first
// NUL. A name field without a NUL is refused with ErrNameTooLong, where a
// device would read past the field. The name is returned as it is, even
// when it is not valid UTF-8.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) != RequestSize {
		return Request{}, protocolErrorf("request is %d bytes, want %d", len(b), RequestSize)
	}
	field := b[offName : offName+NameFieldSize]
	n := 0
	for n < len(field) && field[n] != 0 {
		n++
	}
	if n == len(field) {
		return Request{}, fmt.Errorf("%w: the name field has no NUL terminator", ErrNameTooLong)
	}
	return Request{
		Op:     Op(b[offOp]),
		Flags:  b[offFlags],
		Offset: binary.LittleEndian.Uint64(b[offOffset:]),
		Size:   binary.LittleEndian.Uint32(b[offSize:]),
		Name:   string(field[:n]),
	}, nil
}

// AppendReply appends the 4-byte status reply "WB" + status to b.
func AppendReply(b []byte, status uint16) []byte {
	b = append(b, replySig...)
	return binary.LittleEndian.AppendUint16(b, status)
}

// DecodeReply parses a 4-byte status reply and returns its status. It
// fails with an error matching ErrProtocol if b is not 4 bytes or does not
// start with "WB".
func DecodeReply(b []byte) (uint16, error) {
	if len(b) != ReplySize {
		return 0, protocolErrorf("status reply is %d bytes, want %d", len(b), ReplySize)
	}
	if string(b[:2]) != replySig {
		return 0, protocolErrorf("status reply starts with %q, want %q", b[:2], replySig)
	}
	return binary.LittleEndian.Uint16(b[2:]), nil
}

// Version is a firmware version as GET_VER reports it.
type Version struct {
	Major, Minor, Micro uint8
}

// String formats v as "major.minor.micro", for example "1.19.1".
func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
}

// AppendVersion appends the 3-byte GET_VER answer for v to b.
func AppendVersion(b []byte, v Version) []byte {
	return append(b, v.Major, v.Minor, v.Micro)
}

// DecodeVersion parses the 3-byte answer to a GET_VER request.
func DecodeVersion(b []byte) (Version, error) {
	if len(b) != VersionSize {
		return Version{}, protocolErrorf("version reply is %d bytes, want %d", len(b), VersionSize)
	}
	return Version{Major: b[0], Minor: b[1], Micro: b[2]}, nil
}

// AppendChunk appends a GET data chunk to b: the uint16 length of data,
// then data. An empty data is the end-of-file chunk. Data longer than
// MaxChunkData is refused with an error matching ErrProtocol.
func AppendChunk(b, data []byte) ([]byte, error) {
	if len(data) > MaxChunkData {
		return b, protocolErrorf("chunk of %d bytes, at most %d fit", len(data), MaxChunkData)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...), nil
}

// DecodeChunkHeader parses the 2-byte header of a GET data chunk and
// returns the number of data bytes that follow it; 0 means end of file.
func DecodeChunkHeader(b []byte) (int, error) {
	if len(b) != ChunkHeaderSize {
		return 0, protocolErrorf("chunk header is %d bytes, want %d", len(b), ChunkHeaderSize)
	}
	return int(binary.LittleEndian.Uint16(b)), nil
}

// getVersionTail returns the last RequestSize-k bytes of a GET_VER
// request whose first k bytes are zero: the part a client sends after k
// surplus GET acks, which a device reads as the start of the next request
// (see the GET window notes in client.go). k must be at most 2, so that
// the acks fall on the signature, which a device does not check.
func getVersionTail(k int) []byte {
	if k < 0 || k > offOp {
		panic("protocol: getVersionTail: k out of range")
	}
	var h [RequestSize]byte
	h[offOp] = byte(OpGetVersion)
	return h[k:]
}
