//go:build linux

package transport

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func sockopt(t *testing.T, c net.Conn, opt int) int {
	t.Helper()
	var tc *net.TCPConn
	switch c := c.(type) {
	case *net.TCPConn:
		tc = c
	case *quickAckConn:
		tc = c.TCPConn
	default:
		t.Fatalf("%T is not TCP", c)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// TestSocketOptions: the client runs with TCP_NODELAY on and reads through
// the TCP_QUICKACK wrapper; a faithful server turns Nagle back on, as the
// device has it.
func TestSocketOptions(t *testing.T) {
	leakCheck(t)
	ln := listen(t)
	accepted := make(chan *Conn, 1)
	served := goAsync(t, func() error {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		c, err := Accept(bg(), nc, &AcceptOptions{Faithful: true})
		if err != nil {
			return err
		}
		accepted <- c
		return c.WriteMessage(bg(), false, []byte("Password: "))
	}, ln)
	c, err := Dial(bg(), ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := <-accepted
	t.Cleanup(func() { s.Close() })
	if err := recvErr(t, served); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(bg()); err != nil || string(p) != "Password: " {
		t.Fatalf("got %q %v", p, err)
	}
	qc, ok := c.rw.(*quickAckConn)
	if !ok {
		t.Fatalf("client stream is %T, want *quickAckConn", c.rw)
	}
	if v := sockopt(t, qc, unix.TCP_NODELAY); v == 0 {
		t.Error("client: TCP_NODELAY is off")
	}
	if v := sockopt(t, s.rw.(net.Conn), unix.TCP_NODELAY); v != 0 {
		t.Error("faithful server: TCP_NODELAY is on")
	}
	if !s.split {
		t.Error("faithful server does not split writes")
	}
}
