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

// Address is a parsed address: a WebREPL link (see IsWebREPL), opened
// with Dial, or a raw REPL byte stream, opened with OpenStream.
type Address struct {
	// Scheme is "ws", "wss", "serial" (a device path), "tcp" (a byte
	// stream over TCP), "auto" (the first MicroPython board found), "usb"
	// (a port chosen by USB vendor and product ID) or "id" (a port chosen
	// by USB serial number).
	Scheme string
	// Host is host:port for ws, wss and tcp (an IPv6 literal in brackets);
	// empty otherwise.
	Host string
	// Path is, for ws and wss, the request target as sent on the GET line:
	// the escaped URL path (default "/") and any query. For serial it is the
	// device path, e.g. /dev/ttyACM0 or COM3. Empty otherwise.
	Path string
	// Baud is the serial line speed; 0: the default. Serial only.
	Baud int
	// Framing is what travels on a serial line: "ws" (WebSocket frames
	// with no HTTP handshake) or "raw" (the raw REPL); "" if the address
	// does not say, which means the raw REPL. Serial only.
	Framing string
	// VID and PID are a USB vendor and product ID as 4 lower-case hex
	// digits. Scheme usb only.
	VID, PID string
	// SerialNumber is a USB serial number: always for scheme id, and for
	// usb when the address gives one. Matched ignoring case.
	SerialNumber string
}

// IsWebREPL reports whether a is a WebREPL link: ws, wss, or serial with
// framing=ws. Such addresses are opened with Dial; all others (serial
// without framing=ws, tcp, auto, usb, id) are raw REPL byte streams,
// opened with OpenStream.
func (a Address) IsWebREPL() bool {
	switch a.Scheme {
	case "ws", "wss":
		return true
	case "serial":
		return a.Framing == "ws"
	}
	return false
}

// Default ports: a bare host or ws:// without a port means the WebREPL port
// 8266 (what a device listens on); wss:// (always some proxy, devices have
// no TLS) means 443.
const (
	defaultWSPort  = "8266"
	defaultWSSPort = "443"
	maxBaud        = 1 << 30
)

// ParseAddress parses an address:
//
//	ws://host[:port][/path]         WebSocket; port 8266 if none
//	wss://host[:port][/path]        WebSocket over TLS; port 443 if none
//	host[:port][/path]              same as ws://
//	serial://PATH[?baud=N][&framing=ws|raw]
//	/dev/PATH                       serial://PATH, the raw REPL
//	COMn                            serial:COMn (any case), the raw REPL
//	tcp://host:port                 raw REPL over TCP (ser2net, socat);
//	                                socket://host:port (pyserial's, and
//	                                so mpremote's, name) is the same
//	auto                            the first MicroPython board (FindPort)
//	usb:VID:PID[:SERIAL]            a USB serial port by hex vendor and
//	                                product ID, and serial number
//	id:SERIAL                       a USB serial port by serial number
//
// Hosts may be names, IPv4 addresses or IPv6 literals ([::1]:8266, or a
// bare ::1). serial:///dev/ttyACM0 and serial://COM3 both work. A serial
// address without framing=ws is the raw REPL, as are tcp, auto, usb and
// id (see Address.IsWebREPL). tcp needs a port: ser2net and socat have no
// usual one. A serial number (after id: or the third colon of usb:) is
// taken verbatim to the end, colons included (ESP32 boards use their MAC
// address). So "auto", "usb:..." and "id:..." are never host names; write
// ws://auto for a host of that name. User information, fragments and
// unknown serial options are errors.
func ParseAddress(s string) (Address, error) {
	if s == "" {
		return Address{}, errors.New("webrepl: empty address")
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, "\x00\r\n\t") {
		return Address{}, fmt.Errorf("webrepl: address %q: contains spaces or control characters", s)
	}
	if a, ok, err := parseLocal(s); ok {
		if err != nil {
			return Address{}, fmt.Errorf("webrepl: address %q: %s", s, err)
		}
		return a, nil
	}
	lower := strings.ToLower(s)
	if !strings.Contains(s, "://") {
		for _, scheme := range []string{"ws:", "wss:", "tcp:", "socket:"} {
			if strings.HasPrefix(lower, scheme) {
				return Address{}, fmt.Errorf("webrepl: address %q: missing // after the scheme", s)
			}
		}
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
	case "tcp", "socket":
		a, err = parseTCP(u, s)
	default:
		err = fmt.Errorf("unknown scheme %q (want ws, wss, serial or tcp)", u.Scheme)
	}
	if err != nil {
		return Address{}, fmt.Errorf("webrepl: address %q: %s", s, err)
	}
	return a, nil
}

// parseLocal parses the forms that name a port on this machine without a
// URL scheme: auto, an absolute path (/dev/ttyACM0, or a link such as
// socat makes, /tmp/ttyV0), COMn, usb:... and id:.... ok is false if s is
// none of them.
func parseLocal(s string) (a Address, ok bool, err error) {
	lower := strings.ToLower(s)
	switch {
	case lower == "auto":
		return Address{Scheme: "auto"}, true, nil
	case strings.HasPrefix(s, "/dev/"):
		if len(s) == len("/dev/") {
			return Address{}, true, errors.New("missing device name after /dev/")
		}
		return Address{Scheme: "serial", Path: s}, true, nil
	case strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//"):
		return Address{Scheme: "serial", Path: s}, true, nil
	case isCOMPort(s):
		return Address{Scheme: "serial", Path: s}, true, nil
	case strings.HasPrefix(lower, "usb:"):
		a, err := parseUSB(s[len("usb:"):])
		return a, true, err
	case strings.HasPrefix(lower, "id:"):
		if len(s) == len("id:") {
			return Address{}, true, errors.New("missing serial number (write id:SERIAL; webrepl ports shows serial numbers)")
		}
		return Address{Scheme: "id", SerialNumber: s[len("id:"):]}, true, nil
	}
	return Address{}, false, nil
}

// isCOMPort reports whether s is a Windows port name: COM, in any case,
// followed by digits.
func isCOMPort(s string) bool {
	if len(s) <= 3 || !strings.EqualFold(s[:3], "COM") {
		return false
	}
	for i := 3; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseUSB parses VID:PID[:SERIAL], what follows usb:.
func parseUSB(s string) (Address, error) {
	parts := strings.SplitN(s, ":", 3)
	vid, err := usbID(parts[0], "vendor")
	if err != nil {
		return Address{}, err
	}
	if len(parts) < 2 {
		return Address{}, errors.New("missing product ID (write usb:VID:PID, e.g. usb:2e8a:0005)")
	}
	pid, err := usbID(parts[1], "product")
	if err != nil {
		return Address{}, err
	}
	a := Address{Scheme: "usb", VID: vid, PID: pid}
	if len(parts) == 3 {
		if parts[2] == "" {
			return Address{}, errors.New("empty serial number after usb:VID:PID:")
		}
		a.SerialNumber = parts[2]
	}
	return a, nil
}

// usbID checks a USB vendor or product ID of 1 to 4 hex digits and
// returns it as 4 lower-case digits.
func usbID(s, what string) (string, error) {
	id, ok := normalizeUSBID(s)
	if !ok {
		return "", fmt.Errorf("bad USB %s ID %q (want up to 4 hex digits, e.g. usb:2e8a:0005)", what, s)
	}
	return id, nil
}

// normalizeUSBID returns s, 1 to 4 hex digits in any case, as 4 lower-case
// digits.
func normalizeUSBID(s string) (string, bool) {
	if len(s) < 1 || len(s) > 4 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", false
		}
	}
	return strings.Repeat("0", 4-len(s)) + strings.ToLower(s), true
}

// parseTCP parses tcp://host:port; the port is required.
func parseTCP(u *url.URL, s string) (Address, error) {
	switch {
	case u.Opaque != "":
		return Address{}, errors.New("missing // after the scheme")
	case u.User != nil:
		return Address{}, errors.New("user information is not supported")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return Address{}, errors.New("a fragment (#...) is not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return Address{}, errors.New("a tcp address takes no options")
	case u.Path != "" && u.Path != "/":
		return Address{}, errors.New("a tcp address has no path")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return Address{}, errors.New("missing host")
	}
	host, err := checkHost(host, strings.HasPrefix(u.Host, "["))
	if err != nil {
		return Address{}, err
	}
	if port == "" {
		return Address{}, errors.New("missing port (write tcp://host:port)")
	}
	if err := checkPort(port); err != nil {
		return Address{}, err
	}
	return Address{Scheme: "tcp", Host: net.JoinHostPort(host, port)}, nil
}

// checkPort accepts a decimal port 1-65535 without leading zeros.
func checkPort(port string) error {
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
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
	if err := checkPort(port); err != nil {
		return Address{}, err
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
	case "auto":
		return "auto"
	case "usb":
		if a.SerialNumber != "" {
			return "usb:" + a.VID + ":" + a.PID + ":" + a.SerialNumber
		}
		return "usb:" + a.VID + ":" + a.PID
	case "id":
		return "id:" + a.SerialNumber
	case "tcp":
		return "tcp://" + strings.ReplaceAll(a.Host, "%", "%25")
	default:
		return a.Scheme + "://" + strings.ReplaceAll(a.Host, "%", "%25") + a.Path
	}
}

// escapeOpaque escapes a relative device path such as COM3 for the opaque
// form serial:COM3.
func escapeOpaque(p string) string {
	return strings.ReplaceAll(url.PathEscape(p), "%2F", "/")
}
