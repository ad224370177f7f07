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
		switch a.Scheme {
		case "ws", "wss":
			if a.Host == "" || !strings.HasPrefix(a.Path, "/") || a.Baud != 0 || a.Framing != "" {
				t.Fatalf("%q: odd address %+v", s, a)
			}
		case "serial":
			if a.Path == "" || a.Host != "" {
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
