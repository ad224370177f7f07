package protocol

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// FuzzRawSession feeds arbitrary board answers to EnterRaw, Exec and
// Eval: whatever the board says, they must not panic, hang or leak.
// The fake board stays silent until the host has asked for raw mode
// (Ctrl-A), then prints the input and hangs up.
func FuzzRawSession(f *testing.F) {
	const banner = "\r\nraw REPL; CTRL-B to exit\r\n>"
	const ok = "\x04\x041\r\n\x04\x04>" // paste end ack, then stdout "1", empty stderr
	for _, s := range []string{
		banner + "R\x01\x80\x00\x01" + "\x04" + "1\r\n\x04\x04>" + "R\x01\x80\x00\x01" + "\x04" + "1\r\n\x04\x04>",
		banner + "raw REPL; CTRL-B to exit\r\n>" + "OK1\r\n\x04\x04>" + "OK3\n\x04\x04>",
		banner + "R\x00>" + "OK1\r\n\x04\x04>" + "OK3\r\n\x04\x04>",
		banner + "R\x01\x80\x00\x01\x04\x04Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nOSError: [Errno 2] ENOENT\r\n\x04>",
		banner + "R\x01\x00\x00\x01",
		banner + "R\x01\x01\x00\x01\x01\x01\x01" + ok,
		banner + "R\x01\x80\x00\x04\x04\x04SyntaxError: invalid syntax\r\n\x04>",
		banner + "R\x01\x80\x00\x01\x04\x04\x04\x04MPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>",
		"\xff\x00noise raw REPL; CTRL-B to exit\n\n>R\x01",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		host, dev := rawConnPair()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer dev.Close()
			buf := make([]byte, 64)
			for {
				n, err := dev.Read(buf)
				if bytes.IndexByte(buf[:n], rawCtrlA) >= 0 {
					break
				}
				if err != nil {
					return
				}
			}
			_, _ = dev.Write(answer)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		opts := &RawOptions{Silence: 50 * time.Millisecond, quiet: time.Millisecond}
		r, err := EnterRaw(ctx, rawNoDeadline{host}, opts)
		if err == nil {
			_ = r.Exec(ctx, []byte("print(1)"), io.Discard)
			_, _ = r.Eval(ctx, "1+2")
			_ = r.Interrupt(ctx)
			_ = r.Exit(ctx)
		}
		host.Close()
		<-done
		if ctx.Err() != nil {
			t.Fatalf("took too long")
		}
	})
}
