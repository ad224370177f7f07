// Package protocol speaks MicroPython's WebREPL over a message link: the
// client side (Login, Client), the device side (NewDevice, Device, with a
// host-directory file system in DirFS), and the wire codecs both share
// (wire.go). It imports only the standard library; the WebSocket layer
// below it is anything that implements Link.
//
// # Session flow
//
// A session carries two protocols over one link. Text messages are the
// terminal: the device's REPL output one way, keystrokes the other, as a
// plain byte stream. Binary messages are the file protocol.
//
//  1. Login. The device sends "Password: " as text. The client answers the
//     password and "\r" (any message kind counts). The device answers
//     "\r\nWebREPL connected\r\n>>> ", or "\r\nAccess denied\r\n" and drops
//     the connection.
//  2. Terminal and file operations, at the same time. A file operation
//     starts with an 82-byte request (Request): PUT (OpPut) is answered by
//     a "WB" status, then the client sends the data and the device a final
//     status; GET (OpGet) is answered by a status, then the device sends
//     one chunk (a uint16 length and up to 256 bytes) per one-byte ack
//     from the client, an empty chunk at the end, and a final status;
//     GET_VER (OpGetVersion) is answered by 3 version bytes. Real firmware
//     only ever sends status 0: on any file error it drops the connection.
//  3. Close. Either side closes the link; there is no goodbye.
//
// # Where to start
//
// A client dials a link (package transport), calls Login, and then uses
// Client.Put, Client.Get and Client.Version, and Client.Read and
// Client.Write for the terminal. A device emulator wraps an accepted link
// with NewDevice and calls Device.Serve; DeviceOptions.Extended chooses
// between behaving exactly like firmware and reporting errors properly.
// The codecs (AppendRequest, DecodeRequest, AppendReply, DecodeReply,
// DecodeVersion, AppendChunk, DecodeChunkHeader) are pure functions with
// runnable examples.
//
// # The GET window
//
// A real device sends one GET chunk per ack, so one ack per chunk costs a
// round trip per 256 bytes. Client.Get keeps up to three acks in flight
// (ClientOptions.GetWindow). The acks left over at the end of the file are
// read by the device as the first bytes of its next request; their place
// is the request's signature, which the device does not check, so the
// client completes them into a GET_VER request and consumes the answer.
// The session then is exactly where it would have been with one ack per
// chunk. Client.Get explains the arithmetic and why the window stops at 3.
//
// # Errors
//
// Errors start with "webrepl: " and name the operation and file. Match
// them with errors.Is and errors.As: ErrAccessDenied, *StatusError (which
// also matches fs.ErrNotExist and friends), io.ErrUnexpectedEOF (the
// device dropped the connection mid-operation), net.ErrClosed, and the
// context's errors.
package protocol
