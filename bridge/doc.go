// Package bridge will expose a board that is only wired (USB, UART) as a
// WebREPL endpoint: terminal fan-out to a controller and read-only
// observers, the WebREPL file protocol translated into raw-REPL operations,
// reconnection, and the HTTP side (upgrade, Origin checks, TLS).
//
// It builds on protocol.Device, which already speaks the device side of
// WebREPL over any protocol.Link, and on transport.Accept for the lenient
// handshake that every existing WebREPL client needs. Until it lands,
// internal/emulator plays the device on a directory.
package bridge
