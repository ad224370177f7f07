package protocol

import "context"

// Link carries whole messages, each either text or binary, in order, in
// both directions. It is the only thing the WebREPL session code needs from
// the layer below: a WebSocket connection (with or without the HTTP upgrade
// in front) satisfies it, and so does any test double.
//
// ReadMessage returns the next data message. The returned payload belongs
// to the caller. At the peer's orderly close it returns io.EOF. Only one
// goroutine may call ReadMessage at a time.
//
// WriteMessage sends p as one message of the given kind. It does not keep p
// after it returns. It is safe to call from several goroutines.
//
// A cancelled ctx on either method closes the link: the message stream
// cannot be resumed after a partial read or write.
//
// Close is idempotent and unblocks pending reads and writes.
//
// How this package uses a Link: Client and Device each read it from one
// goroutine of their own and close it when they are done with it. They
// take io.EOF from ReadMessage as the peer's orderly close and any other
// error as the link breaking. They never need pings, and a real device
// must not get any (a ping with a payload corrupts its file protocol), nor
// messages over MaxMessageSize bytes (it has no 64-bit length). Text
// payloads are not valid UTF-8 in general: a Link must not check them.
type Link interface {
	ReadMessage(ctx context.Context) (binary bool, p []byte, err error)
	WriteMessage(ctx context.Context, binary bool, p []byte) error
	Close() error
}
