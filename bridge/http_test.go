package bridge_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/cli"
	"webrepl/internal/leakcheck"
	"webrepl/protocol"
	"webrepl/transport"
)

func TestHealthzAndPage(t *testing.T) {
	leakcheck.Check(t)
	_, a := newFakeBoard(t)
	_, b := newFakeBoard(t)
	a.Name, b.Name = "alpha", "beta"
	br := startBridge(t, []bridge.BoardConfig{a, b}, nil)
	login(t, br.URL+"beta", testPassword)
	h := healthz(t, br)
	if h.Status != "ok" || len(h.Boards) != 2 || h.Boards[1].Name != "beta" || h.Boards[1].Clients != 1 || !h.Boards[0].Connected {
		t.Fatalf("healthz %+v", h)
	}
	resp, err := http.Get("http://" + br.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !contains(string(body), "ws://"+br.Addr+"/alpha", "ws://"+br.Addr+"/beta") {
		t.Fatalf("page %d %q", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + br.Addr + "/gamma")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown board: %d", resp.StatusCode)
	}
}

func TestSeveralBoards(t *testing.T) {
	leakcheck.Check(t)
	boardA, a := newFakeBoard(t)
	boardB, b := newFakeBoard(t)
	a.Name, b.Name = "a", "b"
	br := startBridge(t, []bridge.BoardConfig{a, b}, nil)
	ca := login(t, br.URL+"a", testPassword)
	cb := login(t, br.URL+"b", testPassword)
	root := login(t, br.URL, testPassword) // the first board, again
	expect(t, root, "you are an observer")
	ca.Write([]byte("A"))
	cb.Write([]byte("B"))
	if got := boardA.waitFor(1, 10*time.Second); string(got) != "A" {
		t.Fatalf("board a got %q", got)
	}
	if got := boardB.waitFor(1, 10*time.Second); string(got) != "B" {
		t.Fatalf("board b got %q", got)
	}
	boardB.print("from b\r\n")
	expect(t, cb, "from b")
	boardA.print("from a\r\n")
	out := expect(t, root, "from a")
	if strings.Contains(out, "from b") {
		t.Fatal("board b's output reached board a's clients")
	}
}

// resettable is a board stream that records DTR/RTS resets.
type resettable struct {
	net.Conn
	mu     sync.Mutex
	resets int
}

func (r *resettable) PulseReset(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resets++
	return nil
}

func TestHardResetEndpoint(t *testing.T) {
	leakcheck.Check(t)
	// A pseudo-terminal has no modem lines: the bridge says so.
	pico, pcfg := newFakeBoard(t)
	// A stream that can pulse DTR/RTS.
	host, dev := net.Pipe()
	t.Cleanup(func() { dev.Close() })
	go io.Copy(io.Discard, dev)
	rs := &resettable{Conn: host}
	rcfg := bridge.BoardConfig{Name: "esp", Open: func(context.Context) (io.ReadWriteCloser, error) { return rs, nil }}
	pcfg.Name = "pico"
	br := startBridge(t, []bridge.BoardConfig{pcfg, rcfg}, nil)

	post := func(board, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+br.Addr+"/api/reset?board="+board, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		board, auth string
		want        int
	}{
		{"esp", "", http.StatusUnauthorized},
		{"esp", "Bearer wrong", http.StatusUnauthorized},
		{"nope", "Bearer " + testPassword, http.StatusNotFound},
		{"pico", "Bearer " + testPassword, http.StatusNotImplemented},
		{"esp", "Bearer " + testPassword, http.StatusOK},
	} {
		if got := post(tc.board, tc.auth); got != tc.want {
			t.Errorf("reset %s with %q: %d, want %d", tc.board, tc.auth, got, tc.want)
		}
	}
	// The client's reset --hard uses the endpoint when the device is a
	// bridge.
	hard := func(board string, within time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		var out, errOut strings.Builder
		err := cli.Run(ctx, []string{"webrepl", "-d", br.URL + board, "-p", testPassword, "reset", "--hard"},
			cli.IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut})
		return errOut.String(), err
	}
	if _, err := hard("esp", 20*time.Second); err != nil {
		t.Fatalf("webrepl reset --hard: %v", err)
	}
	// Without DTR/RTS the client says so and runs machine.reset() through
	// the raw REPL, which this board never answers.
	stderr, err := hard("pico", 3*time.Second)
	if err == nil || !strings.Contains(stderr, "DTR/RTS") {
		t.Fatalf("webrepl reset --hard on a pty: %v, stderr %q; want a note about DTR/RTS and machine.reset() tried", err, stderr)
	}
	if got := pico.waitFor(1, 10*time.Second); !strings.Contains(string(got), "\x03") {
		t.Fatalf("the pty board got %q, want the raw REPL's Ctrl-C", got)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.resets != 2 {
		t.Fatalf("%d resets, want 2", rs.resets)
	}
}

func TestTLS(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	cert, fp, err := bridge.SelfSignedCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 32*3-1 {
		t.Fatalf("fingerprint %q", fp)
	}
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
	})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, "wss://"+br.Addr+"/", &transport.DialOptions{TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.Login(ctx, conn, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("z"))
	if got := board.waitFor(1, 10*time.Second); string(got) != "z" {
		t.Fatalf("the board got %q", got)
	}
	// Without trusting the certificate, the handshake fails.
	if conn, err := transport.Dial(ctx, "wss://"+br.Addr+"/", nil); err == nil {
		conn.Close()
		t.Fatal("an untrusted certificate was accepted")
	}
	// Plain ws:// on the TLS port gets nowhere.
	if conn, err := transport.Dial(ctx, br.URL, &transport.DialOptions{HandshakeTimeout: 2 * time.Second}); err == nil {
		conn.Close()
		t.Fatal("ws:// worked on the TLS port")
	}
}

func TestTrace(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	var trace syncBuffer
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{Trace: &trace})
	c := login(t, br.URL, testPassword)
	c.Write([]byte("ab\r"))
	board.waitFor(3, 10*time.Second)
	board.print("out\xff\r\n")
	expect(t, c, "out")
	lines := strings.Split(strings.TrimSpace(trace.String()), "\n")
	var sawIn, sawOut bool
	for _, l := range lines {
		f := strings.SplitN(l, " ", 5)
		if len(f) != 5 {
			t.Fatalf("trace line %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("trace time %q: %v", f[0], err)
		}
		sawIn = sawIn || (f[2] == ">" && f[4] == `"ab\r"`)
		sawOut = sawOut || (f[2] == "<" && f[4] == `"out\xff\r\n"`)
	}
	if !sawIn || !sawOut {
		t.Fatalf("trace misses the traffic:\n%s", trace.String())
	}
}

func TestHostileClients(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{HandshakeTimeout: 500 * time.Millisecond})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", br.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	status := func(c net.Conn) string {
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	for _, tc := range []struct {
		name, send, want string
	}{
		{"garbage", "\x00\x01\x02 not http at all\r\n\r\n", "400"},
		{"huge header", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", "431"},
		{"no key", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "400"},
		{"bad version", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: foo\r\nSec-WebSocket-Version: 8\r\n\r\n", "426"},
		{"post", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial()
			defer c.Close()
			io.WriteString(c, tc.send)
			if got := status(c); !strings.Contains(got, tc.want) {
				t.Fatalf("answer %q, want %s", got, tc.want)
			}
		})
	}
	t.Run("slow handshake", func(t *testing.T) {
		c := dial()
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHo")
		// Whatever the server says (a 408, or nothing), it closes.
		got, err := io.ReadAll(c)
		if err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("a stalled handshake: %v (got %q), want the connection closed", err, got)
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn := dialRaw(t, br.URL, nil)
		conn.WriteMessage(ctx, true, make([]byte, 1<<20))
		if _, err := drain(ctx, conn); err != nil {
			t.Fatal("the bridge kept a session that sent a 1 MiB frame")
		}
	})
	t.Run("binary before login", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn := dialRaw(t, br.URL, nil)
		conn.WriteMessage(ctx, true, []byte("WA\x01\x00garbage\r"))
		got, _ := drain(ctx, conn)
		if !strings.Contains(string(got), "Access denied") {
			t.Fatalf("got %q", got)
		}
	})
	// After all that, the board is untouched and a client works.
	if got := board.received(); len(got) != 0 {
		t.Fatalf("hostile clients reached the board: %q", got)
	}
	c := login(t, br.URL, testPassword)
	c.Write([]byte("ok"))
	if got := board.waitFor(2, 10*time.Second); string(got) != "ok" {
		t.Fatalf("the board got %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLoginLimits(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := newFakeBoard(t)
	var logs syncBuffer
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{
		LoginTimeout: 300 * time.Millisecond,
		LoginDelay:   time.Hour,
		MaxClients:   16,
		Logger:       newLogger(&logs),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("no password", func(t *testing.T) {
		conn := dialRaw(t, br.URL, nil)
		got, err := drain(ctx, conn)
		if err != nil || string(got) != "Password: " {
			t.Fatalf("a silent client: %q %v, want the prompt and then the connection closed", got, err)
		}
	})
	t.Run("waiting attempts are bounded", func(t *testing.T) {
		// One failure: the next attempt from this address waits an hour.
		first := dialRaw(t, br.URL, nil)
		first.WriteMessage(ctx, false, []byte("wrong\r"))
		drain(ctx, first)
		// Four attempts wait their turn; the fifth is refused at once.
		for range 4 {
			c := dialRaw(t, br.URL, nil)
			c.WriteMessage(ctx, false, []byte("wrong again\r"))
		}
		for !strings.Contains(logs.String(), "attempts=4") {
			if ctx.Err() != nil {
				t.Fatal("the four attempts never reached the throttle")
			}
			time.Sleep(5 * time.Millisecond)
		}
		fifth := dialRaw(t, br.URL, nil)
		fifth.WriteMessage(ctx, false, []byte("wrong again\r"))
		got, err := drain(ctx, fifth)
		if err != nil || !strings.Contains(string(got), "Access denied") {
			t.Fatalf("the fifth waiting attempt: %q %v, want an immediate refusal", got, err)
		}
	})
}

// pipeBoard is a board config whose stream can pulse DTR/RTS; what the
// bridge sends it is discarded.
func pipeBoard(t *testing.T) (*resettable, bridge.BoardConfig) {
	host, dev := net.Pipe()
	t.Cleanup(func() { dev.Close() })
	go io.Copy(io.Discard, dev)
	rs := &resettable{Conn: host}
	return rs, bridge.BoardConfig{Open: func(context.Context) (io.ReadWriteCloser, error) { return rs, nil }}
}

// rawStatus sends req to addr on a connection of its own, with req.Host as
// the Host header whatever the address (as a browser does after DNS
// rebinding), and returns the answer's status code.
func rawStatus(t *testing.T, addr string, req *http.Request) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// browserRequest is a request to addr's path as a browser sends it when
// the page's origin is origin ("" for none) and the host in its address is
// host.
func browserRequest(t *testing.T, method, addr, path, host, origin, auth string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if method == http.MethodGet {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Version", "13")
	}
	return req
}

// TestOriginAndHost checks the defence against DNS rebinding: a request
// from a browser (it has an Origin) must name the bridge by an address or
// a name the bridge knows as its own, for WebSockets and for /api/reset.
func TestOriginAndHost(t *testing.T) {
	leakcheck.Check(t)
	rs, cfg := pipeBoard(t)
	var logs syncBuffer
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{
		AllowOrigins: []string{"https://ide.example"},
		AllowHosts:   []string{"board.lan"},
		Logger:       newLogger(&logs),
	})
	_, port, _ := net.SplitHostPort(br.Addr)
	at := func(host string) string { return net.JoinHostPort(host, port) }
	type tc struct {
		name, host, origin string
		ok                 bool
	}
	cases := []tc{
		{"no origin, a DNS name", at("evil.example"), "", true},
		{"rebinding: foreign origin and its own name as host", at("evil.example"), "http://" + at("evil.example"), false},
		{"foreign origin, own address", br.Addr, "http://" + at("evil.example"), false},
		{"IPv4 address", br.Addr, "http://" + br.Addr, true},
		{"IPv6 address", at("::1"), "http://" + at("::1"), true},
		{"localhost", at("localhost"), "http://" + at("localhost"), true},
		{"a name under .localhost", at("board.localhost"), "http://" + at("board.localhost"), true},
		{"a listed host", at("board.lan"), "http://" + at("board.lan"), true},
		{"a listed host, any case, final dot", at("Board.LAN."), "http://" + at("Board.LAN."), true},
		{"the host of an allowed origin", "ide.example", "https://ide.example", true},
		{"an allowed origin, foreign host", at("evil.example"), "https://ide.example", false},
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		short, _, _ := strings.Cut(name, ".")
		cases = append(cases,
			tc{"this machine's name", at(name), "http://" + at(name), true},
			tc{"this machine's name with .local", at(short + ".local"), "http://" + at(short+".local"), true})
	}
	resets := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantWS, wantReset := http.StatusSwitchingProtocols, http.StatusOK
			if !c.ok {
				wantWS, wantReset = http.StatusForbidden, http.StatusForbidden
			} else {
				resets++
			}
			ws := browserRequest(t, http.MethodGet, br.Addr, "/", c.host, c.origin, "")
			if got := rawStatus(t, br.Addr, ws); got != wantWS {
				t.Errorf("WebSocket handshake: %d, want %d", got, wantWS)
			}
			reset := browserRequest(t, http.MethodPost, br.Addr, "/api/reset", c.host, c.origin, "Bearer "+testPassword)
			if got := rawStatus(t, br.Addr, reset); got != wantReset {
				t.Errorf("POST /api/reset: %d, want %d", got, wantReset)
			}
		})
	}
	// A browser's GET of the page or /healthz has no Origin when it is
	// same-origin, as it is for a rebound page: Sec-Fetch-Site tells a
	// browser.
	for _, path := range []string{"/", "/healthz"} {
		for _, c := range []struct {
			host, fetchSite string
			want            int
		}{
			{at("evil.example"), "same-origin", http.StatusForbidden},
			{at("evil.example"), "", http.StatusOK}, // not a browser
			{br.Addr, "same-origin", http.StatusOK},
			{at("board.lan"), "none", http.StatusOK},
		} {
			req, err := http.NewRequest(http.MethodGet, "http://"+br.Addr+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = c.host
			if c.fetchSite != "" {
				req.Header.Set("Sec-Fetch-Site", c.fetchSite)
			}
			if got := rawStatus(t, br.Addr, req); got != c.want {
				t.Errorf("GET %s, Host %s, Sec-Fetch-Site %q: %d, want %d", path, c.host, c.fetchSite, got, c.want)
			}
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.resets != resets {
		t.Errorf("%d resets, want %d", rs.resets, resets)
	}
	if !contains(logs.String(), "request refused: host name not allowed", "WebSocket refused: origin not allowed", "reset refused: origin not allowed", "evil.example") {
		t.Errorf("the refusals are not logged:\n%s", logs.String())
	}
}

// TestResetAuthorization: an empty password is no password when the
// bridge has one; without one, a browser's request from another site
// (DNS rebinding or not) is refused whatever it sends.
func TestResetAuthorization(t *testing.T) {
	leakcheck.Check(t)
	for _, pw := range []string{testPassword, ""} {
		t.Run(map[bool]string{true: "password", false: "no password"}[pw != ""], func(t *testing.T) {
			rs, cfg := pipeBoard(t)
			s, err := bridge.New([]bridge.BoardConfig{cfg}, &bridge.Options{Password: pw, LoginDelay: time.Millisecond, Logger: newLogger(testWriter{t})})
			if err != nil {
				t.Fatal(err)
			}
			addr := serve(t, s)
			_, port, _ := net.SplitHostPort(addr)
			evil := net.JoinHostPort("evil.example", port)
			ok := func(cond bool) int {
				if cond {
					return http.StatusOK
				}
				return http.StatusUnauthorized
			}
			want := 0
			for _, tc := range []struct {
				name, host, origin, auth string
				want                     int
			}{
				{"empty bearer", addr, "", "Bearer ", ok(pw == "")},
				{"empty basic", addr, "", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:")), ok(pw == "")},
				{"no authorization", addr, "", "", http.StatusUnauthorized},
				{"the password", addr, "", "Bearer " + pw, http.StatusOK},
				{"no origin, a DNS name", evil, "", "Bearer " + pw, http.StatusOK},
				{"rebinding", evil, "http://" + evil, "Bearer " + pw, http.StatusForbidden},
				{"another site", addr, "http://" + evil, "Bearer " + pw, http.StatusForbidden},
				{"the bridge's own origin", addr, "http://" + addr, "Bearer " + pw, http.StatusOK},
			} {
				req := browserRequest(t, http.MethodPost, addr, "/api/reset", tc.host, tc.origin, tc.auth)
				if got := rawStatus(t, addr, req); got != tc.want {
					t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
				}
				if tc.want == http.StatusOK {
					want++
				}
			}
			rs.mu.Lock()
			defer rs.mu.Unlock()
			if rs.resets != want {
				t.Errorf("%d resets, want %d", rs.resets, want)
			}
		})
	}
}
