package protocol

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptLink plays a fixed list of messages, then io.EOF, and accepts any
// write. It starts no goroutine.
type scriptLink struct {
	mu     sync.Mutex
	msgs   []memMsg
	closed bool
	sent   []memMsg
}

func (l *scriptLink) ReadMessage(ctx context.Context) (bool, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, nil, net.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		l.closed = true
		return false, nil, err
	}
	if len(l.msgs) == 0 {
		return false, nil, io.EOF
	}
	m := l.msgs[0]
	l.msgs = l.msgs[1:]
	return m.binary, m.p, nil
}

func (l *scriptLink) WriteMessage(_ context.Context, binary bool, p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return net.ErrClosed
	}
	l.sent = append(l.sent, memMsg{binary, bytes.Clone(p)})
	return nil
}

func (l *scriptLink) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

// decodeScript turns fuzz bytes into messages: each message is a byte
// (top bit: binary; low 7 bits: length) and that many payload bytes.
func decodeScript(b []byte) []memMsg {
	var msgs []memMsg
	for len(b) > 0 {
		n := min(int(b[0]&0x7f), len(b)-1)
		msgs = append(msgs, memMsg{binary: b[0]&0x80 != 0, p: b[1 : 1+n]})
		b = b[1+n:]
	}
	return msgs
}

// encodeScript is the inverse of decodeScript.
func encodeScript(msgs ...memMsg) []byte {
	var out []byte
	for _, m := range msgs {
		p := m.p
		for first := true; first || len(p) > 0; first = false {
			n := min(len(p), 0x7f)
			h := byte(n)
			if m.binary {
				h |= 0x80
			}
			out = append(append(out, h), p[:n]...)
			p = p[n:]
		}
	}
	return out
}

func text(s string) memMsg { return memMsg{p: []byte(s)} }
func bin(s string) memMsg  { return memMsg{binary: true, p: []byte(s)} }

func FuzzLogin(f *testing.F) {
	// §6.1: L1 then L3 ok / L3 bad, whole and one byte per message.
	f.Add(encodeScript(text(passwordPrompt), text(connectedBanner)))
	f.Add(encodeScript(text(passwordPrompt), text(deniedBanner)))
	var split []memMsg
	for _, c := range []byte(passwordPrompt + connectedBanner) {
		split = append(split, text(string(c)))
	}
	f.Add(encodeScript(split...))
	f.Add(encodeScript(text(passwordPrompt + connectedBanner + "extra")))
	f.Add(encodeScript(bin("WB\x00\x00"), text("Pass: "), bin("x"), text("\r\nWebREPL conn"), text("ected\r\n")))
	f.Add(encodeScript(text("Password:"), text(" "), text("Access"), text(" denied")))
	f.Add(encodeScript(text(passwordPrompt)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, script []byte) {
		link := &scriptLink{msgs: decodeScript(script)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		c, err := Login(ctx, link, "pw", nil)
		if time.Since(start) > 4*time.Second {
			t.Fatalf("Login took %v", time.Since(start))
		}
		if err != nil {
			if c != nil {
				t.Fatal("a client came back with an error")
			}
			if !strings.HasPrefix(err.Error(), "webrepl: login: ") {
				t.Fatalf("error %q lacks the prefix", err)
			}
			if !link.closed {
				t.Fatal("failed Login left the link open")
			}
			return
		}
		defer c.Close()
		var all []byte
		for _, m := range decodeScript(script) {
			if !m.binary {
				all = append(all, m.p...)
			}
		}
		if !bytes.Contains(all, []byte(connectedMarker)) {
			t.Fatalf("logged in without %q in the text", connectedMarker)
		}
		if len(link.sent) == 0 || string(link.sent[0].p) != "pw\r" || link.sent[0].binary {
			t.Fatalf("password not sent as one text message: %v", link.sent)
		}
		c.Close()
		<-c.Done()
		if _, err := c.Version(ctx); err == nil {
			t.Fatal("Version after Close succeeded")
		}
	})
}

// FuzzDevice feeds arbitrary client messages to a Device: Serve must not
// panic, must return once the messages run out, and must leave no pending
// PUT behind.
func FuzzDevice(f *testing.F) {
	for _, name := range []string{"device_cli_get.golden", "device_cli_put.golden", "device_browser_put.golden", "device_login_denied.golden"} {
		steps := readGolden(f, name)
		var msgs []memMsg
		for _, st := range steps {
			if !st.fromDev && !st.close {
				msgs = append(msgs, memMsg{st.binary, st.payload})
			}
		}
		f.Add(encodeScript(msgs...), false)
		f.Add(encodeScript(msgs...), true)
	}
	f.Fuzz(func(t *testing.T, script []byte, extended bool) {
		mfs := newMemFS(map[string]string{"/test.txt": "0123456789", "big": string(pattern(600))})
		link := &scriptLink{msgs: decodeScript(script)}
		d, err := NewDevice(link, &DeviceOptions{Password: "secret", FS: mfs, Extended: extended})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Serve(context.Background())
		if err != nil && !strings.HasPrefix(err.Error(), "webrepl: ") {
			t.Fatalf("error %q lacks the prefix", err)
		}
		if pending, _ := mfs.counts(); pending != 0 {
			t.Fatalf("%d PUTs left pending", pending)
		}
		if !link.closed {
			t.Fatal("Serve left the link open")
		}
		for _, m := range link.sent {
			if len(m.p) > MaxMessageSize {
				t.Fatalf("sent a %d-byte message", len(m.p))
			}
		}
	})
}
