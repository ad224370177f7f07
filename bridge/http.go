package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"

	"webrepl/transport"
)

// originCheck allows WebSocket requests without Origin (non-browser
// clients), from the bridge's own origin (the Host the request was sent
// to), and from listed origins.
type originCheck struct {
	any     bool
	allowed map[string]bool // lower-cased origins
}

func newOriginCheck(list []string) originCheck {
	o := originCheck{allowed: make(map[string]bool)}
	for _, s := range list {
		s = strings.TrimRight(strings.TrimSpace(s), "/")
		if s == "*" {
			o.any = true
		}
		o.allowed[strings.ToLower(s)] = true
	}
	return o
}

func (o originCheck) ok(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || o.any || o.allowed[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // "null" and other opaque origins need listing
	}
	return strings.EqualFold(u.Host, r.Host)
}

// Handler returns the Server's HTTP handler: WebSocket sessions at "/"
// and "/NAME", "/healthz", "POST /api/reset" and the plain page at "/".
// Serve uses it; tests and embedders may mount it elsewhere (it needs
// connections that can be hijacked).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("POST /api/reset", s.reset)
	mux.HandleFunc("/", s.root)
	return mux
}

func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	l := s.byName[name]
	if name == "" {
		l = s.lines[0]
	}
	if !transport.IsUpgrade(r) {
		if name == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			s.page(w, r)
			return
		}
		if l != nil {
			http.Error(w, "WebREPL endpoint: connect with a WebREPL client (WebSocket)", http.StatusBadRequest)
			return
		}
		http.NotFound(w, r)
		return
	}
	if l == nil {
		http.Error(w, "no board named "+name, http.StatusNotFound)
		return
	}
	conn, err := transport.Upgrade(w, r, &transport.UpgradeOptions{
		CheckOrigin: s.origin.ok,
		MaxMessage:  64 << 10,
	})
	if err != nil {
		if he, ok := errors.AsType[*transport.HandshakeError](err); ok && he.Status == http.StatusForbidden {
			s.log.Warn("WebSocket refused: origin not allowed", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		} else {
			s.log.Debug("WebSocket handshake failed", "remote", r.RemoteAddr, "err", err)
		}
		return
	}
	_, observe := r.URL.Query()["observe"]
	ran := s.goTracked(func() { l.serve(s.ctx, conn, r.RemoteAddr, observe) })
	if !ran {
		conn.Close()
	}
}

// boardStatus is one board in /healthz.
type boardStatus struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
	Clients   int    `json:"clients"`
	Observers int    `json:"observers"`
}

func (s *Server) status() (all []boardStatus, healthy bool) {
	healthy = true
	for _, l := range s.lines {
		l.smu.Lock()
		up, lost := l.rw != nil, l.lostErr
		l.smu.Unlock()
		_, members, controlled := l.hub.count()
		st := boardStatus{Name: l.name, Path: "/" + l.name, Connected: up, Clients: members}
		st.Observers = members
		if controlled {
			st.Observers--
		}
		if lost != nil {
			st.Error = shortErr(lost)
		}
		healthy = healthy && up
		all = append(all, st)
	}
	return all, healthy
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	boards, healthy := s.status()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	code, status := http.StatusOK, "ok"
	if !healthy {
		code, status = http.StatusServiceUnavailable, "board missing"
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(struct {
		Status string        `json:"status"`
		Boards []boardStatus `json:"boards"`
	}{status, boards})
}

// reset hard-resets a board (?board=NAME, default the first) through
// DTR/RTS. The password goes in "Authorization: Bearer PASSWORD" (or as
// the password of Basic authentication); failures are throttled like
// logins.
func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("board")
	l := s.byName[name]
	if name == "" {
		l = s.lines[0]
	}
	if l == nil {
		http.Error(w, "no board named "+name, http.StatusNotFound)
		return
	}
	given, found := bearer(r)
	if !s.auth.check(r.Context(), hostOf(r.RemoteAddr), func() bool { return found && passwordOK([]byte(given), s.opts.Password) }, s.log) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="webrepl bridge"`)
		http.Error(w, "wrong or missing password", http.StatusUnauthorized)
		return
	}
	if err := l.hardReset(r.Context()); err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, errors.ErrUnsupported) {
			code = http.StatusNotImplemented
		}
		http.Error(w, "reset failed: "+shortErr(err), code)
		return
	}
	fmt.Fprintln(w, "reset")
}

func bearer(r *http.Request) (string, bool) {
	if _, p, ok := r.BasicAuth(); ok {
		return p, true
	}
	h := r.Header.Get("Authorization")
	if p, ok := strings.CutPrefix(h, "Bearer "); ok {
		return p, true
	}
	return "", false
}

// page is the plain page at "/": what the bridge serves and how to reach it.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	boards, _ := s.status()
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>webrepl bridge</title></head><body>\n")
	b.WriteString("<h1>webrepl bridge</h1>\n<p>This server makes wired MicroPython boards reachable as WebREPL devices. Connect a WebREPL client (webrepl.html, webrepl_cli.py, Thonny, mpfshell, or <code>webrepl repl URL</code>) to one of these addresses:</p>\n<ul>\n")
	for _, st := range boards {
		u := scheme + "://" + r.Host + st.Path
		state := "connected"
		if !st.Connected {
			state = "not connected"
		}
		label := st.Name
		if label == "" {
			label = "(default board)"
		}
		fmt.Fprintf(&b, "<li class=\"board\"><code>%s</code>: %s, %s, %d client(s)</li>\n", html.EscapeString(u), html.EscapeString(label), state, st.Clients)
	}
	b.WriteString("</ul>\n<p>Health: <a href=\"/healthz\">/healthz</a>.</p>\n</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	if r.Method == http.MethodHead {
		return
	}
	io.WriteString(w, b.String())
}
