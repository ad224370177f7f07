package transport

import "encoding/binary"

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

const (
	finBit  = 0x80
	maskBit = 0x80

	maxHeaderSize     = 14  // 2 + 8 (64-bit length) + 4 (mask key)
	maxControlPayload = 125 // RFC 6455 §5.5

	// closeMessageTooBig is close status 1009 (RFC 6455 §7.4.1).
	closeMessageTooBig = 1009
	// closeProtocolError is close status 1002.
	closeProtocolError = 1002
)

// header is one decoded frame header.
type header struct {
	fin    bool
	rsv    byte // the three RSV bits, ignored
	op     byte
	masked bool
	key    [4]byte
	length uint64 // as announced; may exceed any sane size
}

// headerLen returns the full size of a header whose first two bytes are b0
// and b1: 2, plus 2 or 8 bytes of extended length, plus 4 if masked.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&maskBit != 0 {
		n += 4
	}
	return n
}

// decodeHeader decodes a complete header. len(b) must be headerLen(b[1]).
// Any 64-bit length is accepted here, even one with the top bit set; the
// reader compares it with its limit before allocating anything.
func decodeHeader(b []byte) header {
	h := header{
		fin:    b[0]&finBit != 0,
		rsv:    (b[0] >> 4) & 0x7,
		op:     b[0] & 0x0f,
		masked: b[1]&maskBit != 0,
	}
	i := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
		i += 2
	case 127:
		h.length = binary.BigEndian.Uint64(b[2:])
		i += 8
	default:
		h.length = uint64(l)
	}
	if h.masked {
		copy(h.key[:], b[i:i+4])
	}
	return h
}

// appendHeader appends the header of a FIN frame with opcode op and an
// n-byte payload, in the shortest length form, masked with key if masked.
func appendHeader(dst []byte, op byte, n int, masked bool, key [4]byte) []byte {
	var m byte
	if masked {
		m = maskBit
	}
	dst = append(dst, finBit|op)
	switch {
	case n < 126:
		dst = append(dst, m|byte(n))
	case n <= 0xffff:
		dst = append(dst, m|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, m|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if masked {
		dst = append(dst, key[:]...)
	}
	return dst
}

// isControl reports whether op is a control opcode (close, ping, pong or a
// reserved control opcode).
func isControl(op byte) bool { return op&0x8 != 0 }
