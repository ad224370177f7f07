package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/pty"
	"webrepl/protocol"
	"webrepl/transport"
)

// bridgeAddr matches the addresses the bridge command prints.
var bridgeAddr = regexp.MustCompile(`wss?://\S+`)

// startBridgeCmd runs `webrepl bridge args...` until the test ends and
// returns the first ws:// or wss:// address it printed.
func startBridgeCmd(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	lines := startBridgeOutput(t, env, bridgeAddr, args...)
	return bridgeAddr.FindString(lines[len(lines)-1])
}

// startBridgeOutput runs `webrepl bridge args...` until the test ends and
// returns the lines it printed up to the first that matches until.
func startBridgeOutput(t *testing.T, env map[string]string, until *regexp.Regexp, args ...string) []string {
	t.Helper()
	return startOutput(t, env, until, append([]string{"webrepl", "bridge"}, args...))
}

// startOutput runs the command line argv (from "webrepl") until the test
// ends and returns the lines it printed up to the first that matches until.
func startOutput(t *testing.T, env map[string]string, until *regexp.Regexp, argv []string) []string {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, argv, IO{Stdin: strings.NewReader(""), Stdout: pw, Stderr: io.Discard})
		pw.CloseWithError(errors.New("the bridge ended"))
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		pr.Close()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	})
	var lines []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if until.MatchString(sc.Text()) {
			go io.Copy(io.Discard, pr)
			return lines
		}
	}
	t.Fatalf("the bridge printed no line matching %s: %v; printed %q", until, sc.Err(), lines)
	return nil
}

func TestBridgeCommand(t *testing.T) {
	leakcheck.Check(t)
	p, err := pty.Open()
	if err != nil {
		t.Skip(err)
	}
	defer p.Close()
	go io.Copy(p, p) // an echo device
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from a file, longer than nine\n"), 0o600)
	trace := filepath.Join(t.TempDir(), "trace.log")
	url := startBridgeCmd(t, nil, "--port", p.Name, "--listen", "127.0.0.1:0", "--password-file", pwFile, "--trace", trace)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.Login(ctx, conn, "from a file, longer than nine", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("echo me"))
	var got []byte
	buf := make([]byte, 100)
	for !strings.Contains(string(got), "echo me") {
		n, err := c.ReadContext(ctx, buf)
		if err != nil {
			t.Fatalf("%v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	// The trace has both directions of the serial line, and nothing of
	// the password; only its owner may read it.
	st, err := os.Stat(trace)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the trace file has mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(trace)
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z - ([<>]) (\d+) (".*")$`)
	dirs := map[string]string{} // direction: the bytes, joined
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("a trace line %q is not TIME NAME DIRECTION COUNT QUOTED", l)
		}
		s, err := strconv.Unquote(m[3])
		if err != nil || strconv.Itoa(len(s)) != m[2] {
			t.Fatalf("a trace line %q: %q (%v) is not %s bytes", l, s, err, m[2])
		}
		dirs[m[1]] += s
	}
	if dirs[">"] != "echo me" || dirs["<"] != "echo me" || strings.Contains(string(b), "longer than nine") {
		t.Fatalf("the trace:\n%s", b)
	}
}

// echoPort is a pseudo-terminal that echoes what the bridge writes, as
// the bridge's board for the test; it skips the test without one.
func echoPort(t *testing.T) string {
	t.Helper()
	p, err := pty.Open()
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { p.Close() })
	go io.Copy(p, p)
	return p.Name
}

// TestBridgePasswordPrecedence: --password and --password-file on the
// command line win over WEBREPL_PASSWORD.
func TestBridgePasswordPrecedence(t *testing.T) {
	leakcheck.Check(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from the file\n"), 0o600)
	for _, tc := range []struct {
		name   string
		env    string
		args   []string
		want   string
		before []string // flags before the command name
	}{
		{"the environment and a file: the file", "from the environment", []string{"--password-file", pwFile}, "from the file", nil},
		{"the environment alone", "from the environment", nil, "from the environment", nil},
		{"the environment and the flag: the flag", "from the environment", []string{"--password", "from the flag"}, "from the flag", nil},
		{"-p and the environment: -p", "from the environment", []string{"-p", "from the flag"}, "from the flag", nil},
		{"a file alone", "", []string{"--password-file", pwFile}, "from the file", nil},
		{"-p before the command name", "from the environment", nil, "from the flag", []string{"-p", "from the flag"}},
		{"--password before the command name", "", nil, "from the flag", []string{"--password", "from the flag"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := append(append(append([]string{"webrepl"}, tc.before...), "bridge", "--port", echoPort(t), "--listen", "127.0.0.1:0"), tc.args...)
			lines := startOutput(t, map[string]string{"WEBREPL_PASSWORD": tc.env}, bridgeAddr, argv)
			url := bridgeAddr.FindString(lines[len(lines)-1])
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := transport.Dial(ctx, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := protocol.Login(ctx, conn, tc.want, nil)
			if err != nil {
				t.Fatalf("logging in with %q: %v", tc.want, err)
			}
			c.Close()
		})
	}
}

func TestBridgeDefaultsToASimulatedBoard(t *testing.T) {
	leakcheck.Check(t)
	if err := mpboard.Available(); errors.Is(err, mpboard.ErrNoNode) {
		t.Skip(err)
	}
	url := startBridgeCmd(t, nil, "--listen", "127.0.0.1:0", "--password", "simulated")
	r := run(t, "", "-d", url, "-p", "simulated", "eval", "1+2")
	if r.err != nil || strings.TrimSpace(r.stdout) != "3" {
		t.Fatalf("eval through the bridge on the simulated board: %q %v %s", r.stdout, r.err, r.stderr)
	}
}

func TestBridgeRefusals(t *testing.T) {
	t.Setenv("WEBREPL_PASSWORD", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"open network without a password", []string{"--port", "/dev/null", "--listen", "0.0.0.0:0"}, "without a password"},
		{"bad board", []string{"--board", "noequals"}, "NAME=PORT"},
		{"bad policy", []string{"--port", "/dev/null", "--second-controller", "maybe"}, "policy"},
		{"half TLS", []string{"--port", "/dev/null", "--tls-cert", "c.pem"}, "go together"},
		{"two passwords", []string{"--port", "/dev/null", "--password", "x", "--password-file", "pw.txt"}, "not both"},
		{"argument", []string{"extra"}, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", append([]string{"bridge"}, tc.args...)...)
			var ue *UsageError
			if !errors.As(r.err, &ue) || !strings.Contains(ue.Msg, tc.want) {
				t.Fatalf("got %v, want a usage error about %q", r.err, tc.want)
			}
		})
	}
}
