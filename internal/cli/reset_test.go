package cli

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"webrepl/bridge"
	"webrepl/internal/leakcheck"
	"webrepl/protocol"
)

// fakeResetServer answers POST /api/reset with status and body (status 0:
// it hangs up without an answer), and counts those requests and the
// WebSocket requests that machine.reset() would go through (it refuses
// them, so a fallback fails with its 503).
type fakeResetServer struct {
	status int
	body   string

	mu            sync.Mutex
	resets, dials int
	badPassword   bool
}

func (f *fakeResetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/api/reset" {
		f.dials++
		http.Error(w, "no WebSocket here", http.StatusServiceUnavailable)
		return
	}
	f.resets++
	if _, pw, ok := r.BasicAuth(); !ok || pw != tlsPassword || r.URL.Query().Get("board") != "esp" {
		f.badPassword = true
	}
	if f.status == 0 {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.WriteHeader(f.status)
	io.WriteString(w, f.body)
}

func (f *fakeResetServer) counts(t *testing.T) (resets, dials int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.badPassword {
		t.Error("the reset request lacked the password or the board")
	}
	return f.resets, f.dials
}

// TestHardResetFallback: reset --hard through a bridge runs machine.reset()
// only when the device has no reset endpoint or cannot pulse DTR/RTS.
func TestHardResetFallback(t *testing.T) {
	leakcheck.Check(t)
	const fallback = "fallback"
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // "" (done), fallback, or part of the error
	}{
		{"the bridge reset the board", 200, "reset\n", ""},
		{"WebREPL firmware's page", 200, "<base href=\"http://micropython.org/webrepl/\">", fallback},
		{"an HTTP server without the endpoint", 404, "404 page not found", fallback},
		{"an unknown board", 404, "no board named esp", "no board named esp"},
		{"a WebREPL server (WebSocket only)", 400, "This is a WebREPL endpoint: it speaks WebSocket only.", fallback},
		{"method not allowed", 405, "", fallback},
		{"a port without DTR/RTS", 501, "reset failed: no DTR/RTS on a pseudo-terminal", fallback},
		{"a hang-up (older firmware)", 0, "", fallback},
		{"a wrong password", 401, "wrong or missing password", "refused the password"},
		{"a refused origin", 403, "origin not allowed", "403"},
		{"a missing board", 503, "reset failed: the board is gone", "503"},
		{"a redirect", 302, "", "302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeResetServer{status: tc.status, body: tc.body}
			srv := httptest.NewServer(f)
			defer srv.Close()
			r := run(t, "", "reset", "--hard", "-d", "ws://"+srv.Listener.Addr().String()+"/esp", "-p", tlsPassword)
			resets, dials := f.counts(t)
			if resets != 1 {
				t.Fatalf("%d reset requests, want 1", resets)
			}
			switch tc.want {
			case "":
				if r.err != nil || dials != 0 {
					t.Fatalf("got %v and %d WebSocket dials, want success and none", r.err, dials)
				}
			case fallback:
				if dials != 1 || r.err == nil || !strings.Contains(r.err.Error(), "503") || !strings.Contains(r.stderr, "machine.reset()") {
					t.Fatalf("got %v, %d WebSocket dials, stderr %q; want machine.reset() tried", r.err, dials, r.stderr)
				}
			default:
				if r.err == nil || !strings.Contains(r.err.Error(), tc.want) || dials != 0 {
					t.Fatalf("got %v and %d WebSocket dials, want an error about %q and none", r.err, dials, tc.want)
				}
			}
			if tc.status == 401 && !errors.Is(r.err, protocol.ErrAccessDenied) {
				t.Fatalf("a refused password: %v, want ErrAccessDenied", r.err)
			}
			if tc.status == 501 && !strings.Contains(r.stderr, "DTR/RTS") {
				t.Fatalf("stderr %q does not say why", r.stderr)
			}
		})
	}
}

// TestHardResetTLS: the reset request trusts what the WebSocket dial
// trusts (--tls-fingerprint), and a TLS failure is an error, never a
// fallback.
func TestHardResetTLS(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name        string
		status      int
		pin         bool   // give the server's fingerprint
		fingerprint string // or this one
		want        string // "" for success, else part of the error
		resets      int
	}{
		{"pinned", 200, true, "", "", 1},
		{"no fingerprint", 200, false, "", "certificate", 0},
		{"another fingerprint", 200, false, strings.Repeat("00", 32), "fingerprint", 0},
		{"a hang-up over TLS", 0, true, "", "EOF", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeResetServer{status: tc.status, body: "reset"}
			srv := httptest.NewUnstartedServer(f)
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
			srv.StartTLS()
			defer srv.Close()
			args := []string{"reset", "--hard", "-d", "wss://" + srv.Listener.Addr().String() + "/esp", "-p", tlsPassword}
			switch {
			case tc.pin:
				args = append(args, "--tls-fingerprint", bridge.Fingerprint(srv.Certificate().Raw))
			case tc.fingerprint != "":
				args = append(args, "--tls-fingerprint", tc.fingerprint)
			}
			r := run(t, "", args...)
			resets, dials := f.counts(t)
			if resets != tc.resets || dials != 0 {
				t.Fatalf("%d reset requests and %d WebSocket dials, want %d and none", resets, dials, tc.resets)
			}
			if tc.want == "" {
				if r.err != nil {
					t.Fatal(r.err)
				}
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", r.err, tc.want)
			}
		})
	}
}
