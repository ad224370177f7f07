package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"webrepl/internal/emulator"
	"webrepl/internal/emulator/emutest"
	"webrepl/internal/leakcheck"
	"webrepl/protocol"
)

const testPassword = "s3cret-pw"

// startDevice serves a fresh directory as a WebREPL device on loopback and
// returns its address and directory. It is extended, for passwords over 9
// bytes.
func startDevice(t *testing.T, opts emulator.Options) (addr, dir string) {
	t.Helper()
	opts.Extended = true
	if opts.Password == "" {
		opts.Password = testPassword
	}
	d := emutest.StartTCP(t, opts)
	return d.Addr, d.Dir
}

type result struct {
	err            error
	stdout, stderr string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Run(ctx, append([]string{"webrepl"}, args...), IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
	return result{err: err, stdout: out.String(), stderr: errOut.String()}
}

func TestPutGetVersion(t *testing.T) {
	leakcheck.Check(t)
	addr, dir := startDevice(t, emulator.Options{Version: protocol.Version{Major: 1, Minor: 27, Micro: 0}})
	local := t.TempDir()
	src := filepath.Join(local, "main.py")
	content := []byte("print('hello')\n")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}

	// Flags after the arguments, as users type them.
	r := run(t, "", "put", src, ":main.py", "-d", addr, "-p", testPassword)
	if r.err != nil {
		t.Fatalf("put: %v (stderr %q)", r.err, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "main.py")); !bytes.Equal(got, content) {
		t.Fatalf("device file holds %q, want %q", got, content)
	}

	// A remote directory keeps the local name; flags before the command.
	r = run(t, "", "-d", addr, "-p", testPassword, "put", src, ":/")
	if r.err != nil {
		t.Fatalf("put to a directory: %v", r.err)
	}

	// The device and password from the environment; a local directory
	// keeps the remote name.
	t.Setenv("WEBREPL_DEVICE", "ws://"+addr)
	t.Setenv("WEBREPL_PASSWORD", testPassword)
	into := t.TempDir()
	r = run(t, "", "get", ":main.py", into)
	if r.err != nil {
		t.Fatalf("get: %v", r.err)
	}
	if got, _ := os.ReadFile(filepath.Join(into, "main.py")); !bytes.Equal(got, content) {
		t.Fatalf("got %q, want %q", got, content)
	}
	entries, _ := os.ReadDir(into)
	if len(entries) != 1 {
		t.Errorf("get left %d entries in the target directory, want 1", len(entries))
	}

	r = run(t, "", "get", ":main.py", "-")
	if r.err != nil || r.stdout != string(content) {
		t.Fatalf("get to stdout: %v, stdout %q", r.err, r.stdout)
	}

	r = run(t, "", "version")
	if r.err != nil || r.stdout != "1.27.0\n" {
		t.Fatalf("version: %v, stdout %q", r.err, r.stdout)
	}

	// A bare host:port means ws://host:port.
	t.Setenv("WEBREPL_DEVICE", addr)
	if r = run(t, "", "version"); r.err != nil {
		t.Fatalf("version with a bare address: %v", r.err)
	}
}

func TestGetMissingFileKeepsLocalFile(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startDevice(t, emulator.Options{})
	local := filepath.Join(t.TempDir(), "keep.txt")
	os.WriteFile(local, []byte("precious"), 0o644)
	r := run(t, "", "get", ":missing.txt", local, "-d", addr, "-p", testPassword)
	if r.err == nil {
		t.Fatal("get of a missing file succeeded")
	}
	if ExitCode(r.err) != 1 {
		t.Errorf("exit code %d, want 1", ExitCode(r.err))
	}
	if got, _ := os.ReadFile(local); string(got) != "precious" {
		t.Errorf("a failed get changed the local file to %q", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(local))
	if len(entries) != 1 {
		t.Errorf("a failed get left %d files behind, want only the original", len(entries))
	}
}

func TestWrongPasswordIsOneLineAndNeverShown(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startDevice(t, emulator.Options{})
	const wrong = "not-the-pw-42"
	r := run(t, "", "version", "-d", addr, "-p", wrong)
	if r.err == nil {
		t.Fatal("wrong password accepted")
	}
	msg := r.err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "password") {
		t.Errorf("error %q: want one line that names the password as the problem", msg)
	}
	for _, s := range []string{msg, r.stdout, r.stderr} {
		if strings.Contains(s, wrong) || strings.Contains(s, testPassword) {
			t.Errorf("a password appears in the output: %q", s)
		}
	}
	if ExitCode(r.err) != 1 {
		t.Errorf("exit code %d, want 1", ExitCode(r.err))
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("WEBREPL_DEVICE", "")
	t.Setenv("WEBREPL_PASSWORD", "")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"put without arguments", []string{"put"}},
		{"get without colon", []string{"get", "main.py", "-d", "127.0.0.1:1", "-p", "x"}},
		{"put to a remote without colon", []string{"put", "a.py", "b.py", "-d", "127.0.0.1:1", "-p", "x"}},
		{"no device", []string{"version", "-p", "x"}},
		{"no password and no terminal", []string{"version", "-d", "127.0.0.1:1"}},
		{"unknown flag", []string{"version", "--frobnicate"}},
		{"emulate with a bad version", []string{"emulate", "--version", "1.x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", tc.args...)
			if ExitCode(r.err) != 2 {
				t.Fatalf("exit code %d (err %v), want 2", ExitCode(r.err), r.err)
			}
			if strings.Contains(r.err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", r.err)
			}
		})
	}
}

func TestConnectionRefusedIsClear(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := run(t, "", "version", "-d", addr, "-p", "x")
	if ExitCode(r.err) != 1 || !strings.Contains(r.err.Error(), addr) {
		t.Fatalf("err %v: want exit 1 and the address in the message", r.err)
	}
}

func TestReorderArgs(t *testing.T) {
	ua := (&app{}).build()
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"flags after arguments", []string{"w", "put", "a", ":b", "-p", "pw", "-d", "h"}, []string{"w", "put", "-p", "pw", "-d", "h", "a", ":b"}},
		{"flags between arguments", []string{"w", "get", ":a", "--device=h", "b"}, []string{"w", "get", "--device=h", ":a", "b"}},
		{"global flags stay first", []string{"w", "-d", "h", "version", "-p", "x"}, []string{"w", "-d", "h", "version", "-p", "x"}},
		{"double dash keeps dashes positional", []string{"w", "get", ":a", "--", "-x"}, []string{"w", "get", "--", ":a", "-x"}},
		{"bool flag takes no value", []string{"w", "emulate", "--extended", "--dir", "d"}, []string{"w", "emulate", "--extended", "--dir", "d"}},
		{"stdin dash is an argument", []string{"w", "put", "-", ":x", "-p", "y"}, []string{"w", "put", "-p", "y", "-", ":x"}},
		{"unknown command untouched", []string{"w", "frob", "-x", "a"}, []string{"w", "frob", "-x", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := reorderArgs(ua, tc.in); !slices.Equal(got, tc.want) {
				t.Fatalf("reorderArgs(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestPipedRepl(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startDevice(t, emulator.Options{Shell: []string{"cat"}})
	r := run(t, "echo-me-please\r", "repl", "-d", addr, "-p", testPassword)
	if r.err != nil {
		t.Fatalf("repl: %v", r.err)
	}
	if !strings.Contains(r.stdout, "echo-me-please") {
		t.Fatalf("repl output %q does not show the typed line", r.stdout)
	}
}
