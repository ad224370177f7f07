//go:build !linux

package transport

import "net"

// wrapTCP returns c unchanged: TCP_QUICKACK exists only on Linux.
func wrapTCP(c *net.TCPConn) net.Conn { return c }
