// Package transport carries WebREPL messages: WebSocket framing over TCP,
// TLS, serial lines and pipes. It is the only package of the project that
// knows about WebSocket and serial-port libraries; everything above it
// sees a *Conn, which satisfies protocol.Link: whole text or binary
// messages, a context on every blocking call, and Close.
//
// # Where to start
//
//   - A client: Dial(ctx, "192.168.4.1", nil), or "ws://host:port/path",
//     "wss://...", "serial:///dev/ttyACM0?framing=ws". ParseAddress reads
//     the same strings.
//   - A server (a device emulator, a bridge): accept a net.Conn from a
//     net.Listener and call Accept(ctx, conn, nil).
//   - WebSocket framing straight on a byte stream, with no HTTP (a
//     pseudo-terminal, a pipe, a UART): NewConn(rw, br, &Options{Role: ...}).
//   - A serial port as a plain io.ReadWriteCloser: OpenSerial.
//   - The raw REPL, a plain byte stream: OpenStream(ctx, addr, nil) with
//     "/dev/ttyACM0", "COM3", "serial:///dev/ttyUSB0?baud=115200",
//     "tcp://host:port" (ser2net, socat), or a board chosen by USB
//     identity: "auto", "usb:2e8a:0005[:SERIAL]", "id:SERIAL".
//     Address.IsWebREPL tells which of Dial and OpenStream an address
//     is for.
//   - What is plugged in: ListPorts, and FindPort to pick from its list.
//
// # Roles
//
// A Conn is either the Client or the Server end. A client masks what it
// writes and sends a close frame when it closes. A server writes unmasked
// frames, answers a close frame with exactly 88 00 as MicroPython does, and
// cuts the text it writes on UTF-8 boundaries (an incomplete character is
// held back for the next text write, invalid bytes become U+FFFD), because
// browsers drop a connection that carries invalid UTF-8 in a text frame.
// Neither role ever sends a ping: a ping with a payload corrupts a real
// device's session state.
//
// # Lenient on purpose
//
// The reference client webrepl_cli.py does not follow RFC 6455 and real
// devices do not either, so this package accepts what they do:
//
//   - Accept takes any non-empty Sec-WebSocket-Key (the CLI sends "foo"), a
//     missing Sec-WebSocket-Version, any path and any Host; it answers with
//     the three headers the device sends and nothing else.
//   - Both roles read masked and unmasked frames (the CLI does not mask).
//   - RSV bits are ignored, and received text is never checked for UTF-8
//     (devices split characters across frames and print arbitrary bytes).
//     Empty data messages are skipped, as the device skips them.
//   - Fragmented messages are joined; pings are answered, pongs ignored.
//
// What is not tolerated: frames or messages beyond Options.MaxMessage (the
// Conn answers close 1009 and fails; nothing that large is allocated),
// reserved opcodes, control frames over 125 bytes, and continuation frames
// that continue nothing.
//
// # Byte streams
//
// A stream has no connection start, so a client Dial on a serial line
// synchronises by sending close frames until the server answers 88 00; a
// server-role Conn that receives a close frame returns io.EOF from
// ReadMessage without closing the stream, so its owner can start the next
// session on it (see NewConn).
package transport
