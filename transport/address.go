package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Address is a parsed WebREPL address.
type Address struct {
	// Scheme is "ws", "wss" or "serial".
	Scheme string
	// Host is host:port for ws and wss (an IPv6 literal in brackets); empty
	// for serial.
	Host string
	// Path is, for ws and wss, the request target as sent on the GET line:
	// the escaped URL path (default "/") and any query. For serial it is the
	// device path, e.g. /dev/ttyACM0 or COM3.
	Path string
	// Baud is the serial line speed; 0: the default. Serial only.
	Baud int
	// Framing is what travels on a serial line: "ws" (WebSocket frames
	// with no HTTP handshake) or "raw" (the raw REPL); "" if the address
	// does not say. Serial only.
	Framing string
}

// Default ports: a bare host or ws:// without a port means the WebREPL port
// 8266 (what a device listens on); wss:// (always some proxy, devices have
// no TLS) means 443.
const (
	defaultWSPort  = "8266"
	defaultWSSPort = "443"
	maxBaud        = 1 << 30
)

// ParseAddress parses a WebREPL address:
//
//	ws://host[:port][/path]         WebSocket; port 8266 if none
//	wss://host[:port][/path]        WebSocket over TLS; port 443 if none
//	host[:port][/path]              same as ws://
//	serial://PATH[?baud=N][&framing=ws|raw]
//
// Hosts may be names, IPv4 addresses or IPv6 literals ([::1]:8266, or a
// bare ::1). serial:///dev/ttyACM0 and serial://COM3 both work. User
// information, fragments and unknown serial options are errors.
func ParseAddress(s string) (Address, error) {
	if s == "" {
		return Address{}, errors.New("webrepl: empty address")
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, "\x00\r\n\t") {
		return Address{}, fmt.Errorf("webrepl: address %q: contains spaces or control characters", s)
	}
	lower := strings.ToLower(s)
	if !strings.Contains(s, "://") && (strings.HasPrefix(lower, "ws:") || strings.HasPrefix(lower, "wss:")) {
		return Address{}, fmt.Errorf("webrepl: address %q: missing // after the scheme", s)
	}
	if !strings.Contains(s, "://") && !strings.HasPrefix(lower, "serial:") {
		// A bare address: host[:port][/path], or a bare IPv6 literal.
		t := s
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is6() {
			t = "[" + strings.ReplaceAll(ip.String(), "%", "%25") + "]"
		}
		a, err := parseWS("ws://" + t)
		if err != nil {
			return Address{}, fmt.Errorf("webrepl: address %q: %s", s, err)
		}
		return a, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return Address{}, fmt.Errorf("webrepl: address %q: %s", s, trimURLError(err))
	}
	var a Address
	switch u.Scheme {
	case "ws", "wss":
		a, err = parseWS(s)
	case "serial":
		a, err = parseSerial(u)
	default:
		err = fmt.Errorf("unknown scheme %q (want ws, wss or serial)", u.Scheme)
	}
	if err != nil {
		return Address{}, fmt.Errorf("webrepl: address %q: %s", s, err)
	}
	return a, nil
}

// trimURLError drops the repetition of the input from a *url.Error.
func trimURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func parseWS(s string) (Address, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Address{}, errors.New(trimURLError(err))
	}
	if u.Opaque != "" {
		return Address{}, errors.New("missing // after the scheme")
	}
	if u.User != nil {
		return Address{}, errors.New("user information is not supported")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return Address{}, errors.New("a fragment (#...) is not allowed in a WebSocket address")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return Address{}, errors.New("missing host")
	}
	host, err = checkHost(host, strings.HasPrefix(u.Host, "["))
	if err != nil {
		return Address{}, err
	}
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return Address{}, errors.New("empty port")
		}
		port = defaultWSPort
		if u.Scheme == "wss" {
			port = defaultWSSPort
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return Address{}, fmt.Errorf("bad port %q", port)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return Address{}, fmt.Errorf("bad path %q", path)
	}
	if u.RawQuery != "" || u.ForceQuery {
		path += "?" + u.RawQuery
	}
	return Address{Scheme: u.Scheme, Host: net.JoinHostPort(host, port), Path: path}, nil
}

// checkHost accepts DNS-style names and IPv4 addresses, or (bracketed) an
// IPv6 address with an optional zone. It returns the host in one spelling,
// so that equal addresses compare equal.
func checkHost(host string, bracketed bool) (string, error) {
	if bracketed {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || !isName(ip.Zone()) {
			return "", fmt.Errorf("bad IPv6 address %q", host)
		}
		return ip.String(), nil
	}
	if !isName(host) {
		return "", fmt.Errorf("bad host name %q", host)
	}
	return host, nil
}

// isName reports whether s consists of letters, digits, '-', '.' and '_'.
func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func parseSerial(u *url.URL) (Address, error) {
	if u.User != nil {
		return Address{}, errors.New("user information is not supported")
	}
	if u.Fragment != "" {
		return Address{}, errors.New("a fragment (#...) is not allowed")
	}
	var path string
	if u.Opaque != "" {
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return Address{}, fmt.Errorf("bad device path: %v", err)
		}
		path = p
	} else {
		if u.Port() != "" || strings.ContainsAny(u.Host, "[]:") {
			return Address{}, fmt.Errorf("bad device %q (write serial:///dev/ttyACM0 or serial://COM3)", u.Host)
		}
		path = u.Host + u.Path
	}
	if path == "" {
		return Address{}, errors.New("missing device path (write serial:///dev/ttyACM0 or serial://COM3)")
	}
	a := Address{Scheme: "serial", Path: path}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Address{}, fmt.Errorf("bad options %q", u.RawQuery)
	}
	for k, v := range q {
		if len(v) != 1 {
			return Address{}, fmt.Errorf("option %q given %d times", k, len(v))
		}
		switch k {
		case "baud":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > maxBaud || v[0][0] == '0' || v[0][0] == '+' {
				return Address{}, fmt.Errorf("bad baud rate %q", v[0])
			}
			a.Baud = n
		case "framing":
			switch v[0] {
			case "ws", "raw":
				a.Framing = v[0]
			default:
				return Address{}, fmt.Errorf("unknown framing %q (want ws or raw)", v[0])
			}
		default:
			return Address{}, fmt.Errorf("unknown option %q (want baud or framing)", k)
		}
	}
	return a, nil
}

// String returns the address in the form ParseAddress reads.
func (a Address) String() string {
	switch a.Scheme {
	case "serial":
		var b strings.Builder
		b.WriteString("serial:")
		if strings.HasPrefix(a.Path, "/") {
			b.WriteString("//")
			b.WriteString((&url.URL{Path: a.Path}).EscapedPath())
		} else {
			b.WriteString(escapeOpaque(a.Path))
		}
		q := url.Values{}
		if a.Baud != 0 {
			q.Set("baud", strconv.Itoa(a.Baud))
		}
		if a.Framing != "" {
			q.Set("framing", a.Framing)
		}
		if len(q) > 0 {
			b.WriteString("?")
			b.WriteString(q.Encode())
		}
		return b.String()
	default:
		return a.Scheme + "://" + strings.ReplaceAll(a.Host, "%", "%25") + a.Path
	}
}

// escapeOpaque escapes a relative device path such as COM3 for the opaque
// form serial:COM3.
func escapeOpaque(p string) string {
	return strings.ReplaceAll(url.PathEscape(p), "%2F", "/")
}
