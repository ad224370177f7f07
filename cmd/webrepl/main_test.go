package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets the test binary act as the webrepl command when asked, so
// that the tests below can run the real main as a process.
func TestMain(m *testing.M) {
	if os.Getenv("WEBREPL_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "WEBREPL_TEST_RUN_MAIN=1", "WEBREPL_DEVICE=", "WEBREPL_PASSWORD=")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestErrorsAreOneLineWithExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"usage", []string{"get"}, 2},
		{"unknown flag", []string{"version", "--nope"}, 2},
		{"nothing listening", []string{"version", "-d", "127.0.0.1:1", "-p", "pw"}, 1},
		{"bad address", []string{"version", "-d", "ws://[::1", "-p", "pw"}, 2},
		{"missing local file", []string{"put", "/nonexistent/file.py", ":x.py", "-d", "127.0.0.1:1", "-p", "pw"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runMain(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "webrepl: ") {
				t.Errorf("stderr %q: want one line starting with 'webrepl: '", stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stderr shows a Go crash: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestHelpWorks(t *testing.T) {
	stdout, _, code := runMain(t, "--help")
	if code != 0 || !strings.Contains(stdout, "put") || !strings.Contains(stdout, "emulate") {
		t.Fatalf("--help: exit %d, output %q", code, stdout)
	}
}
