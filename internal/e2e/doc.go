// Package e2e holds the tests that run the whole stack together: our client
// against the device emulator over an in-memory pipe, loopback TCP and a
// pseudo-terminal opened with the serial transport; the reference client's
// byte-exact exchanges; and the transfer benchmarks.
package e2e
