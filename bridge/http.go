package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"webrepl/transport"
)

// originCheck decides which browser requests the bridge serves.
// Requests from other clients (no Origin and no Sec-Fetch-Site header) are
// always served. A browser's request must be addressed to a host name the
// bridge knows to be its own (see ownHost: this defeats DNS rebinding,
// where a page makes its own name resolve to the bridge's address, so that
// its origin and the Host header match), and one with an Origin must come
// from the bridge's own origin or a listed one.
type originCheck struct {
	any     bool
	origins map[string]bool // lower-cased origins
	hosts   map[string]bool // lower-cased host names, without port
}

// newOriginCheck allows the origins listed, and the Host names listed in
// hosts, those of the listed origins and those of this machine's name
// (hostname: its full form, its first label, and that label with
// ".local").
func newOriginCheck(origins, hosts []string, hostname string) originCheck {
	o := originCheck{origins: make(map[string]bool), hosts: make(map[string]bool)}
	for _, s := range origins {
		s = strings.TrimRight(strings.TrimSpace(s), "/")
		if s == "*" {
			o.any = true
		}
		o.origins[strings.ToLower(s)] = true
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			o.addHost(u.Host)
		}
	}
	for _, h := range hosts {
		o.addHost(strings.TrimSpace(h))
	}
	if hostname != "" {
		short, _, _ := strings.Cut(hostname, ".")
		o.addHost(hostname)
		o.addHost(short)
		o.addHost(short + ".local")
	}
	return o
}

func (o originCheck) addHost(h string) {
	if name := hostName(h); name != "" {
		o.hosts[name] = true
	}
}

// hostName returns the host name of a Host header or listed name
// ("Name:8266", "[::1]:8266", "name."), lower-cased, without port,
// brackets or final dot.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// ownHost reports whether a Host header names this bridge: an IP address,
// localhost or a name under .localhost, or a name it was given.
func (o originCheck) ownHost(hostport string) bool {
	h := hostName(hostport)
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || o.hosts[h]
}

// fromBrowser reports whether r comes from a browser: browsers send
// Origin with every WebSocket handshake and POST, and Sec-Fetch-Site with
// every request (a same-origin GET, such as a rebound page fetching
// /healthz, has no Origin).
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
}

// hostRefusal says why a browser's request r is refused for its Host
// header ("" when it is allowed, or r is not a browser's).
func (o originCheck) hostRefusal(r *http.Request) string {
	if fromBrowser(r) && !o.ownHost(r.Host) {
		return "host name not allowed (--allow-host lists more)"
	}
	return ""
}

// refusal says why r, whose Host has passed hostRefusal (Handler checks
// it on every route), is refused for its Origin ("" when it is allowed).
func (o originCheck) refusal(r *http.Request) string {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	if o.any || o.origins[strings.ToLower(origin)] {
		return ""
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return ""
	}
	return "origin not allowed" // "null" and other opaque origins need listing
}

func (o originCheck) ok(r *http.Request) bool { return o.refusal(r) == "" }

// Handler returns the Server's HTTP handler: WebSocket sessions at "/"
// and "/NAME", "/healthz", "POST /api/reset" and the plain page at "/".
// Serve uses it; tests and embedders may mount it elsewhere (it needs
// connections that can be hijacked).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("POST /api/reset", s.reset)
	mux.HandleFunc("/", s.root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A browser's request to a host name that is not the bridge's
		// own is refused on every route: a rebound page could otherwise
		// read the page and /healthz.
		if why := s.origin.hostRefusal(r); why != "" {
			s.log.Warn("request refused: "+why, "remote", r.RemoteAddr, "path", r.URL.Path, "host", r.Host)
			http.Error(w, "forbidden: "+why, http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
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
			s.log.Warn("WebSocket refused: "+s.origin.refusal(r), "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "host", r.Host)
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
// logins. A browser's request (it carries Origin) must pass the origin
// check first: without a password, that check is all that keeps a web
// page from resetting the board.
func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	if why := s.origin.refusal(r); why != "" {
		s.log.Warn("reset refused: "+why, "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
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

// bearer returns the password of r's Authorization header: Basic
// authentication's, or the token of "Bearer TOKEN". HTTP drops the space
// after a bare "Bearer" (and any at the end of a token), so "Bearer"
// alone is an empty password; Basic keeps every byte.
func bearer(r *http.Request) (string, bool) {
	if _, p, ok := r.BasicAuth(); ok {
		return p, true
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") {
		return token, true
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
