package protocol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenStep is one line of a transcript (see testdata/README.md).
type goldenStep struct {
	line     int
	fromDev  bool // S>; otherwise C>
	close    bool
	binary   bool
	payload  []byte
	describe string
}

func readGolden(t testing.TB, name string) []goldenStep {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []goldenStep
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		dir, rest, _ := strings.Cut(line, " ")
		st := goldenStep{line: n, describe: line}
		switch dir {
		case "S>":
			st.fromDev = true
		case "C>":
		default:
			t.Fatalf("%s:%d: bad direction %q", name, n, dir)
		}
		kind, data, _ := strings.Cut(strings.TrimSpace(rest), " ")
		switch kind {
		case "close":
			st.close = true
		case "text", "bin":
			st.binary = kind == "bin"
			if st.payload, err = parseHex(data); err != nil {
				t.Fatalf("%s:%d: %v", name, n, err)
			}
		default:
			t.Fatalf("%s:%d: bad kind %q", name, n, kind)
		}
		steps = append(steps, st)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return steps
}

// expectStep reads one message from l and compares it with st.
func expectStep(t *testing.T, name string, l Link, st goldenStep) {
	t.Helper()
	binary, p, err := l.ReadMessage(testCtx(t))
	if st.close {
		if !errors.Is(err, io.EOF) {
			t.Fatalf("%s:%d: want the link closed, got %s, %v", name, st.line, describe(binary, p), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s:%d: want %q, got error %v", name, st.line, st.describe, err)
	}
	if binary != st.binary || !bytes.Equal(p, st.payload) {
		t.Fatalf("%s:%d: want %s\n got %s", name, st.line, describe(st.binary, st.payload), describe(binary, p))
	}
}

// TestGoldenDevice replays reference clients' messages into a Device.
func TestGoldenDevice(t *testing.T) {
	tests := []struct {
		file     string
		wantErr  error // from Serve; nil means nil
		wantFile string
	}{
		{file: "device_cli_get.golden"},
		{file: "device_cli_put.golden", wantFile: "ABCDEFGHIJ"},
		{file: "device_browser_put.golden", wantFile: "ABCDEFGHIJ"},
		{file: "device_login_denied.golden", wantErr: ErrAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			steps := readGolden(t, tt.file)
			mfs := newMemFS(nil)
			if tt.wantFile == "" {
				mfs = newMemFS(map[string]string{"/test.txt": "0123456789"})
			}
			cl, dev := startDevice(t, &DeviceOptions{Password: "secret", FS: mfs, Version: Version{1, 19, 1}}, nil)
			for _, st := range steps {
				switch {
				case st.fromDev:
					expectStep(t, tt.file, cl, st)
				case st.close:
					cl.Close()
				default:
					send(t, cl, st.binary, st.payload)
				}
			}
			err := dev.wait(t)
			if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
				t.Errorf("Serve = %v, want %v", err, tt.wantErr)
			}
			if tt.wantFile != "" {
				if got, _ := mfs.file("/test.txt"); string(got) != tt.wantFile {
					t.Errorf("/test.txt = %q, want %q", got, tt.wantFile)
				}
			}
		})
	}
}

// TestGoldenClient plays a device's messages to a Client and checks what
// the client sends.
func TestGoldenClient(t *testing.T) {
	tests := []struct {
		file string
		opts *ClientOptions
		run  func(ctx context.Context, link Link) error
	}{
		{"client_login_version.golden", nil, func(ctx context.Context, link Link) error {
			c, err := Login(ctx, link, "secret", nil)
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.Version(ctx)
			if err != nil {
				return err
			}
			if v.String() != "1.19.1" {
				return errors.New("version " + v.String())
			}
			buf := make([]byte, 4)
			for n := 0; n < len(buf); {
				m, err := c.ReadContext(ctx, buf[n:])
				if err != nil {
					return err
				}
				n += m
			}
			if string(buf) != ">>> " {
				return errors.New("terminal " + string(buf))
			}
			return nil
		}},
		{"client_login_denied.golden", nil, func(ctx context.Context, link Link) error {
			_, err := Login(ctx, link, "secret", nil)
			if !errors.Is(err, ErrAccessDenied) {
				return errors.New("want ErrAccessDenied, got " + errString(err))
			}
			return nil
		}},
		{"client_get_window1.golden", nil, getTest(1)},
		{"client_get_window3.golden", nil, getTest(0)},
		{"client_put.golden", nil, func(ctx context.Context, link Link) error {
			c, err := Login(ctx, link, "secret", nil)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Put(ctx, "/test.txt", strings.NewReader("ABCDEFGHIJ"), 10, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			steps := readGolden(t, tt.file)
			cl, dl := memPair()
			defer dl.Close()
			done := make(chan error, 1)
			go func() { done <- tt.run(testCtx(t), cl) }()
			for _, st := range steps {
				switch {
				case !st.fromDev:
					expectStep(t, tt.file, dl, st)
				case st.close:
					dl.Close()
				default:
					send(t, dl, st.binary, st.payload)
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("client: %v", err)
			}
			// The client closed its link and sent nothing more.
			if binary, p, err := dl.ReadMessage(testCtx(t)); err == nil {
				t.Errorf("extra message from the client: %s", describe(binary, p))
			}
		})
	}
}

func getTest(window int) func(ctx context.Context, link Link) error {
	return func(ctx context.Context, link Link) error {
		c, err := Login(ctx, link, "secret", &ClientOptions{GetWindow: window})
		if err != nil {
			return err
		}
		defer c.Close()
		var out bytes.Buffer
		n, err := c.Get(ctx, "/test.txt", &out, nil)
		if err != nil {
			return err
		}
		if n != 10 || out.String() != "0123456789" {
			return errors.New("got " + out.String())
		}
		return nil
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
