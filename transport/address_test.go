package transport

import (
	"strings"
	"testing"
)

var addressCases = []struct {
	in      string
	want    Address
	str     string // String(); "" if it is in
	wantErr string // substring of the error
}{
	{in: "192.168.4.1", want: Address{Scheme: "ws", Host: "192.168.4.1:8266", Path: "/"}, str: "ws://192.168.4.1:8266/"},
	{in: "192.168.4.1:8266", want: Address{Scheme: "ws", Host: "192.168.4.1:8266", Path: "/"}, str: "ws://192.168.4.1:8266/"},
	{in: "esp32.local:80/webrepl", want: Address{Scheme: "ws", Host: "esp32.local:80", Path: "/webrepl"}, str: "ws://esp32.local:80/webrepl"},
	{in: "ws://192.168.4.1:8266/", want: Address{Scheme: "ws", Host: "192.168.4.1:8266", Path: "/"}},
	{in: "ws://192.168.4.1", want: Address{Scheme: "ws", Host: "192.168.4.1:8266", Path: "/"}, str: "ws://192.168.4.1:8266/"},
	{in: "WS://Board:1234/a/b?x=1&y", want: Address{Scheme: "ws", Host: "Board:1234", Path: "/a/b?x=1&y"}, str: "ws://Board:1234/a/b?x=1&y"},
	{in: "ws://h/with%20space", want: Address{Scheme: "ws", Host: "h:8266", Path: "/with%20space"}, str: "ws://h:8266/with%20space"},
	{in: "wss://proxy.example.com/dev/1", want: Address{Scheme: "wss", Host: "proxy.example.com:443", Path: "/dev/1"}, str: "wss://proxy.example.com:443/dev/1"},
	{in: "ws://[::1]:8266/", want: Address{Scheme: "ws", Host: "[::1]:8266", Path: "/"}},
	{in: "ws://[::1]", want: Address{Scheme: "ws", Host: "[::1]:8266", Path: "/"}, str: "ws://[::1]:8266/"},
	{in: "[fe80::1]:9000", want: Address{Scheme: "ws", Host: "[fe80::1]:9000", Path: "/"}, str: "ws://[fe80::1]:9000/"},
	{in: "::1", want: Address{Scheme: "ws", Host: "[::1]:8266", Path: "/"}, str: "ws://[::1]:8266/"},
	{in: "fe80::1%eth0", want: Address{Scheme: "ws", Host: "[fe80::1%eth0]:8266", Path: "/"}, str: "ws://[fe80::1%25eth0]:8266/"},
	{in: "ws://[fe80::1%25eth0]:8266/", want: Address{Scheme: "ws", Host: "[fe80::1%eth0]:8266", Path: "/"}},
	{in: "ws://[0:0::1]/", want: Address{Scheme: "ws", Host: "[::1]:8266", Path: "/"}, str: "ws://[::1]:8266/"},
	{in: "serial:///dev/ttyACM0", want: Address{Scheme: "serial", Path: "/dev/ttyACM0"}},
	{in: "serial:///dev/ttyUSB0?baud=9600&framing=ws", want: Address{Scheme: "serial", Path: "/dev/ttyUSB0", Baud: 9600, Framing: "ws"}},
	{in: "serial:///dev/pts/7?framing=ws&baud=115200", want: Address{Scheme: "serial", Path: "/dev/pts/7", Baud: 115200, Framing: "ws"}, str: "serial:///dev/pts/7?baud=115200&framing=ws"},
	{in: "serial:///dev/ttyACM0?framing=raw", want: Address{Scheme: "serial", Path: "/dev/ttyACM0", Framing: "raw"}},
	{in: "serial://COM3?baud=115200", want: Address{Scheme: "serial", Path: "COM3", Baud: 115200}, str: "serial:COM3?baud=115200"},
	{in: "serial:COM3", want: Address{Scheme: "serial", Path: "COM3"}},
	{in: "serial:///dev/odd%3Fname", want: Address{Scheme: "serial", Path: "/dev/odd?name"}},
	{in: "", wantErr: "empty address"},
	{in: " 192.168.4.1", wantErr: "spaces"},
	{in: "ftp://host", wantErr: "unknown scheme"},
	{in: "ws://", wantErr: "missing host"},
	{in: "ws:host", wantErr: "missing //"},
	{in: "ws://host:0", wantErr: "bad port"},
	{in: "ws://host:99999", wantErr: "bad port"},
	{in: "ws://host:08266", wantErr: "bad port"},
	{in: "ws://host:", wantErr: "empty port"},
	{in: "host:abc", wantErr: "port"},
	{in: "192.168.4.1:8266:main.py", wantErr: "port"},
	{in: "ws://user:pw@host", wantErr: "user information"},
	{in: "ws://host/#frag", wantErr: "fragment"},
	{in: "ws://ho!st/", wantErr: "bad host name"},
	{in: "ws://[1.2.3.4]/", wantErr: "IP-literal"},
	{in: "ws://[::ffff:1.2.3.4%25x]/", want: Address{Scheme: "ws", Host: "[::ffff:1.2.3.4%x]:8266", Path: "/"}, str: "ws://[::ffff:1.2.3.4%25x]:8266/"},
	{in: "ws://[::1%25a/b]/", wantErr: "address"},
	{in: "serial://", wantErr: "missing device path"},
	{in: "serial:///dev/tty?baud=0", wantErr: "bad baud"},
	{in: "serial:///dev/tty?baud=fast", wantErr: "bad baud"},
	{in: "serial:///dev/tty?baud=1&baud=2", wantErr: "2 times"},
	{in: "serial:///dev/tty?framing=xmodem", wantErr: "unknown framing"},
	{in: "serial:///dev/tty?parity=even", wantErr: "unknown option"},
	{in: "serial://host:1/dev", wantErr: "bad device"},

	// Raw REPL forms: bare device paths and COM ports (mpremote's connect
	// forms; micropython.md §3.1), board selectors, TCP streams.
	{in: "/dev/ttyACM0", want: Address{Scheme: "serial", Path: "/dev/ttyACM0"}, str: "serial:///dev/ttyACM0"},
	{in: "/tmp/ttyV0", want: Address{Scheme: "serial", Path: "/tmp/ttyV0"}, str: "serial:///tmp/ttyV0"},
	{in: "/dev/ttyUSB0", want: Address{Scheme: "serial", Path: "/dev/ttyUSB0"}, str: "serial:///dev/ttyUSB0"},
	{in: "/dev/cu.usbmodem1101", want: Address{Scheme: "serial", Path: "/dev/cu.usbmodem1101"}, str: "serial:///dev/cu.usbmodem1101"},
	{in: "/dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_e6614c-if00", want: Address{Scheme: "serial", Path: "/dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_e6614c-if00"}, str: "serial:///dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_e6614c-if00"},
	{in: "/dev/odd?name", want: Address{Scheme: "serial", Path: "/dev/odd?name"}, str: "serial:///dev/odd%3Fname"},
	{in: "COM3", want: Address{Scheme: "serial", Path: "COM3"}, str: "serial:COM3"},
	{in: "com12", want: Address{Scheme: "serial", Path: "com12"}, str: "serial:com12"},
	{in: "COM3:8266", want: Address{Scheme: "ws", Host: "COM3:8266", Path: "/"}, str: "ws://COM3:8266/"},
	{in: "COMPUTER", want: Address{Scheme: "ws", Host: "COMPUTER:8266", Path: "/"}, str: "ws://COMPUTER:8266/"},
	{in: "serial:///dev/ttyACM0?baud=57600", want: Address{Scheme: "serial", Path: "/dev/ttyACM0", Baud: 57600}},
	{in: "auto", want: Address{Scheme: "auto"}},
	{in: "AUTO", want: Address{Scheme: "auto"}, str: "auto"},
	{in: "ws://auto", want: Address{Scheme: "ws", Host: "auto:8266", Path: "/"}, str: "ws://auto:8266/"},
	{in: "auto:8266", want: Address{Scheme: "ws", Host: "auto:8266", Path: "/"}, str: "ws://auto:8266/"},
	{in: "usb:2e8a:0005", want: Address{Scheme: "usb", VID: "2e8a", PID: "0005"}},
	{in: "USB:2E8A:5", want: Address{Scheme: "usb", VID: "2e8a", PID: "0005"}, str: "usb:2e8a:0005"},
	{in: "usb:f055:9800:206437A1", want: Address{Scheme: "usb", VID: "f055", PID: "9800", SerialNumber: "206437A1"}},
	{in: "usb:303a:1001:F4:12:FA:5C:1E:D8", want: Address{Scheme: "usb", VID: "303a", PID: "1001", SerialNumber: "F4:12:FA:5C:1E:D8"}},
	{in: "id:e6614c311b7e6f35", want: Address{Scheme: "id", SerialNumber: "e6614c311b7e6f35"}},
	{in: "ID:F4:12:FA:5C:1E:D8", want: Address{Scheme: "id", SerialNumber: "F4:12:FA:5C:1E:D8"}, str: "id:F4:12:FA:5C:1E:D8"},
	{in: "tcp://127.0.0.1:2217", want: Address{Scheme: "tcp", Host: "127.0.0.1:2217"}},
	{in: "tcp://[::1]:23", want: Address{Scheme: "tcp", Host: "[::1]:23"}},
	{in: "TCP://Board:4000/", want: Address{Scheme: "tcp", Host: "Board:4000"}, str: "tcp://Board:4000"},
	{in: "tcp://[fe80::1%25eth0]:23", want: Address{Scheme: "tcp", Host: "[fe80::1%eth0]:23"}},
	{in: "socket://esp32.local:4000", want: Address{Scheme: "tcp", Host: "esp32.local:4000"}, str: "tcp://esp32.local:4000"},
	{in: "/dev/", wantErr: "missing device name"},
	{in: "usb:zz:1", wantErr: "bad USB vendor ID"},
	{in: "usb:", wantErr: "bad USB vendor ID"},
	{in: "usb:2e8a", wantErr: "missing product ID"},
	{in: "usb:2e8a:", wantErr: "bad USB product ID"},
	{in: "usb:2e8a:12345", wantErr: "bad USB product ID"},
	{in: "usb:0x2e8a:5", wantErr: "bad USB vendor ID"},
	{in: "usb:2e8a:0005:", wantErr: "empty serial number"},
	{in: "id:", wantErr: "missing serial number"},
	{in: "tcp://host", wantErr: "missing port"},
	{in: "tcp://host:", wantErr: "missing port"},
	{in: "tcp://host:0", wantErr: "bad port"},
	{in: "tcp://:23", wantErr: "missing host"},
	{in: "tcp://host:23/x", wantErr: "no path"},
	{in: "tcp://host:23?nodelay=1", wantErr: "no options"},
	{in: "tcp://host:23#x", wantErr: "fragment"},
	{in: "tcp://u@host:23", wantErr: "user information"},
	{in: "tcp:host:23", wantErr: "missing //"},
	{in: "tcp://ho!st:23", wantErr: "bad host name"},
}

func TestIsWebREPL(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"192.168.4.1", true},
		{"ws://h/", true},
		{"wss://h/", true},
		{"serial:///dev/ttyACM0?framing=ws", true},
		{"serial:///dev/ttyACM0", false},
		{"serial:///dev/ttyACM0?framing=raw", false},
		{"/dev/ttyUSB0", false},
		{"COM3", false},
		{"tcp://h:23", false},
		{"auto", false},
		{"usb:2e8a:0005", false},
		{"id:123", false},
	}
	for _, tc := range cases {
		a, err := ParseAddress(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.IsWebREPL(); got != tc.want {
			t.Errorf("%s: IsWebREPL() = %v, want %v", tc.in, got, tc.want)
		}
	}
	if (Address{}).IsWebREPL() {
		t.Error("the zero Address is a WebREPL link")
	}
}

func TestParseAddress(t *testing.T) {
	for _, tc := range addressCases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAddress(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "webrepl: ") {
					t.Fatalf("got %+v, %v; want an error about %q", got, err, tc.wantErr)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			want := tc.str
			if want == "" {
				want = tc.in
			}
			if s := got.String(); s != want {
				t.Errorf("String() = %q, want %q", s, want)
			}
			again, err := ParseAddress(got.String())
			if err != nil || again != got {
				t.Errorf("ParseAddress(String()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

// FuzzParseAddress: no panics; whatever parses prints as a string that
// parses to the same address, and errors carry the prefix.
func FuzzParseAddress(f *testing.F) {
	for _, tc := range addressCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "webrepl: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		usb := a.VID != "" || a.PID != "" || a.SerialNumber != ""
		switch a.Scheme {
		case "ws", "wss":
			if a.Host == "" || !strings.HasPrefix(a.Path, "/") || a.Baud != 0 || a.Framing != "" || usb || !a.IsWebREPL() {
				t.Fatalf("%q: odd address %+v", s, a)
			}
		case "serial":
			if a.Path == "" || a.Host != "" || usb || a.IsWebREPL() != (a.Framing == "ws") {
				t.Fatalf("%q: odd address %+v", s, a)
			}
		case "tcp":
			if a.Host == "" || a.Path != "" || a.Baud != 0 || a.Framing != "" || usb || a.IsWebREPL() {
				t.Fatalf("%q: odd address %+v", s, a)
			}
		case "auto":
			if a != (Address{Scheme: "auto"}) {
				t.Fatalf("%q: odd address %+v", s, a)
			}
		case "usb", "id":
			_, okV := normalizeUSBID(a.VID)
			_, okP := normalizeUSBID(a.PID)
			ids := len(a.VID) == 4 && len(a.PID) == 4 && okV && okP && strings.ToLower(a.VID+a.PID) == a.VID+a.PID
			if a.Scheme == "usb" && !ids || a.Scheme == "id" && (a.VID != "" || a.PID != "" || a.SerialNumber == "") ||
				a.Host != "" || a.Path != "" || a.Baud != 0 || a.Framing != "" || a.IsWebREPL() {
				t.Fatalf("%q: odd address %+v", s, a)
			}
		default:
			t.Fatalf("%q: scheme %q", s, a.Scheme)
		}
		again, err := ParseAddress(a.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose String %q does not parse: %v", s, a, a.String(), err)
		}
		if again != a {
			t.Fatalf("%q parsed to %+v, String %q parses to %+v", s, a, a.String(), again)
		}
	})
}
