package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"webrepl/bridge"
	"webrepl/internal/term"
	"webrepl/protocol"
	"webrepl/protocol/remote"
	"webrepl/transport"
)

// connect opens the device named by the flags and logs in.
func (a *app) connect(c *ucli.Context) (*protocol.Client, error) {
	addr, _ := lookup(c, "device")
	if addr == "" {
		return nil, &UsageError{Msg: "no device: give -d ADDRESS or set WEBREPL_DEVICE (e.g. -d 192.168.4.1 or -d ws://host:8266)"}
	}
	password, err := a.password(c)
	if err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	for {
		link, err := transport.Dial(ctx, addr, &transport.DialOptions{TLSConfig: tlsConf})
		if err != nil {
			return nil, err
		}
		client, err := protocol.Login(ctx, link, password, nil)
		if err == nil {
			return client, nil
		}
		link.Close()
		switch {
		case errors.Is(err, protocol.ErrAccessDenied):
			return nil, fmt.Errorf("webrepl: %s: wrong password (access denied)", addr)
		case errors.Is(err, protocol.ErrBusy):
			// Firmware turns a client away while it still holds the
			// session of the previous one, often the previous command
			// of the same script: it frees it within moments.
			select {
			case <-time.After(busyRetry):
				continue
			case <-ctx.Done():
			}
		}
		return nil, err
	}
}

// tlsConfig returns the TLS settings for wss:// devices: nil (the
// system's roots) or, with --tls-fingerprint, a configuration that trusts
// exactly the certificate with that SHA-256 fingerprint, whatever signed
// it and whatever names it holds (a bridge's self-signed certificate).
func tlsConfig(c *ucli.Context) (*tls.Config, error) {
	given, _ := lookup(c, "tls-fingerprint")
	if given == "" {
		return nil, nil
	}
	want, err := parseFingerprint(given)
	if err != nil {
		return nil, &UsageError{Msg: fmt.Sprintf("--tls-fingerprint %q: %v", given, err)}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The pin below replaces the check of signatures and names.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("webrepl: the server sent no TLS certificate")
			}
			leaf := cs.PeerCertificates[0].Raw
			if sha256.Sum256(leaf) != want {
				return fmt.Errorf("webrepl: the server's TLS certificate has SHA-256 fingerprint %s, not the one given with --tls-fingerprint", bridge.Fingerprint(leaf))
			}
			return nil
		},
	}, nil
}

// parseFingerprint reads a SHA-256 fingerprint as hex, upper or lower
// case, with or without colons (or spaces) between the bytes.
func parseFingerprint(s string) ([sha256.Size]byte, error) {
	var fp [sha256.Size]byte
	h := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return fp, errors.New("want the 32 bytes of a SHA-256 fingerprint in hex, e.g. 3F:A0:...")
	}
	copy(fp[:], b)
	return fp, nil
}

// busyRetry is how long connect waits before asking a busy device again.
const busyRetry = 100 * time.Millisecond

// password takes the password from the flag or environment, or asks for it
// on the terminal without echo. It is never printed.
func (a *app) password(c *ucli.Context) (string, error) {
	if pw, ok := lookup(c, "password"); ok {
		return pw, nil
	}
	f, ok := a.stdinFile()
	if !ok || !term.IsTerminal(f) {
		return "", &UsageError{Msg: "no password: give -p PASSWORD or set WEBREPL_PASSWORD (standard input is not a terminal to ask on)"}
	}
	pw, err := term.ReadPassword(f, func() { fmt.Fprint(a.io.Stderr, "Password: ") })
	fmt.Fprintln(a.io.Stderr)
	return pw, err
}

// lookup finds a string flag given on the command line, before or after
// the command name, or in its environment variable. An environment variable
// set to the empty string counts as unset; "-p ”" on the command line is an
// empty password.
func lookup(c *ucli.Context, name string) (string, bool) {
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			if v := cc.String(name); v != "" {
				return v, true
			}
		}
	}
	for _, cc := range c.Lineage() {
		for _, f := range flagsOf(cc) {
			if !slices.Contains(f.Names(), name) {
				continue
			}
			if !cc.IsSet(name) {
				continue
			}
			if ef, ok := f.(ucli.DocGenerationFlag); ok {
				for _, env := range ef.GetEnvVars() {
					if _, set := os.LookupEnv(env); set {
						return "", false // set only by an empty variable
					}
				}
			}
			return "", true
		}
	}
	return "", false
}

func flagsOf(cc *ucli.Context) []ucli.Flag {
	if cc.Command != nil && cc.Command.Name != "" {
		return cc.Command.Flags
	}
	if cc.App != nil {
		return cc.App.Flags
	}
	return nil
}

// remotePath returns the device path of a ':'-marked argument.
func remotePath(arg string) (string, bool) {
	if !strings.HasPrefix(arg, ":") {
		return "", false
	}
	return arg[1:], true
}

func (a *app) put(c *ucli.Context) error {
	args := c.Args().Slice()
	if len(args) < 1 || len(args) > 2 {
		return &UsageError{Msg: "put takes LOCAL [:REMOTE] (see 'webrepl put --help')"}
	}
	local := args[0]
	rp := ""
	if len(args) == 2 {
		r, ok := remotePath(args[1])
		if !ok {
			return &UsageError{Msg: fmt.Sprintf("put: the remote file %q must start with ':' (e.g. :%s)", args[1], args[1])}
		}
		rp = r
	}
	if _, ok := remotePath(local); ok {
		return &UsageError{Msg: "put: the first argument is the local file; to copy from the device use 'webrepl get'"}
	}
	if local == "-" {
		if rp == "" || strings.HasSuffix(rp, "/") {
			return &UsageError{Msg: "put: reading standard input needs a remote file name (e.g. :main.py)"}
		}
		// The size must be known up front: standard input is read whole.
		data, err := io.ReadAll(a.io.Stdin)
		if err != nil {
			return fmt.Errorf("webrepl: put: read standard input: %w", err)
		}
		return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
			return b.Put(ctx, rp, bytes.NewReader(data), int64(len(data)), nil)
		})
	}
	st, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("webrepl: put: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("webrepl: put: %s is a directory (use cp -r)", local)
	}
	if rp == "" || strings.HasSuffix(rp, "/") {
		rp += filepath.Base(local)
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		if err := a.putFile(ctx, b, local, rp, st.Size()); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Stderr, "%s -> :%s (%d bytes)\n", local, rp, st.Size())
		return nil
	})
}

func (a *app) get(c *ucli.Context) error {
	args := c.Args().Slice()
	if len(args) < 1 || len(args) > 2 {
		return &UsageError{Msg: "get takes :REMOTE [LOCAL] (see 'webrepl get --help')"}
	}
	rp, ok := remotePath(args[0])
	if !ok || rp == "" {
		return &UsageError{Msg: fmt.Sprintf("get: the rp file %q must start with ':' (e.g. :%s)", args[0], args[0])}
	}
	local := "."
	if len(args) == 2 {
		local = args[1]
	}
	if local != "-" {
		if st, err := os.Stat(local); err == nil && st.IsDir() {
			local = filepath.Join(local, path.Base(rp))
		}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		if err := a.getFile(ctx, b, rp, local); err != nil {
			return err
		}
		if local != "-" {
			fmt.Fprintf(a.io.Stderr, ":%s -> %s\n", rp, local)
		}
		return nil
	})
}

func (a *app) version(c *ucli.Context) error {
	if c.Args().Len() > 0 {
		return &UsageError{Msg: "version takes no arguments"}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		v, err := b.Version(ctx)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(map[string]string{"micropython": v})
		}
		fmt.Fprintln(a.io.Stdout, v)
		return nil
	})
}

// exitKey is Ctrl-]: it ends the interactive session and is not sent.
const exitKey = 0x1d

// quietAfterInput is how long repl waits for the device to go quiet after
// standard input (not a terminal) has ended, so that the output of the last
// line is shown before it exits.
const quietAfterInput = 500 * time.Millisecond

func (a *app) repl(c *ucli.Context) error {
	if c.Args().Len() > 0 {
		return &UsageError{Msg: "repl takes no arguments"}
	}
	l, err := a.open(c)
	if err != nil {
		return err
	}
	defer l.Close()
	client := l.term

	interactive := false
	if f, ok := a.stdinFile(); ok && term.IsTerminal(f) {
		restore, err := term.MakeRaw(f)
		if err != nil {
			return err
		}
		defer restore()
		interactive = true
		fmt.Fprint(a.io.Stderr, "Connected; Ctrl-] exits.\r\n")
	}

	// Device output, until the link ends. activity carries a tick per
	// chunk so that the end of piped input can wait for quiet.
	activity := make(chan struct{}, 1)
	outDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if _, werr := a.io.Stdout.Write(buf[:n]); werr != nil {
					outDone <- werr
					return
				}
				select {
				case activity <- struct{}{}:
				default:
				}
			}
			if err != nil {
				outDone <- err
				return
			}
		}
	}()

	// Keyboard input. The goroutine ends at Ctrl-], at the end of input, or
	// at the first read after the session ends (a blocked read of the
	// process's standard input cannot be interrupted portably).
	inDone := make(chan error, 1)
	go func() { inDone <- copyInput(client, a.io.Stdin) }()

	select {
	case err := <-inDone:
		if err == nil && !interactive {
			waitQuiet(c.Context, activity)
		}
		l.Close()
		<-outDone
		if err != nil && !errors.Is(err, errQuit) {
			return err
		}
		return nil
	case err := <-outDone:
		if interactive {
			fmt.Fprint(a.io.Stderr, "\r\n")
		}
		if errors.Is(err, io.EOF) {
			return errors.New("webrepl: the device closed the session")
		}
		return err
	case <-c.Context.Done():
		l.Close()
		<-outDone
		return nil
	}
}

var errQuit = errors.New("quit")

// copyInput sends what the user types to the device, one text frame per
// read, until Ctrl-] (errQuit) or the end of input (nil).
func copyInput(w io.Writer, r io.Reader) error {
	buf := make([]byte, 1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			i := bytes.IndexByte(chunk, exitKey)
			if i >= 0 {
				chunk = chunk[:i]
			}
			if len(chunk) > 0 {
				if _, werr := w.Write(chunk); werr != nil {
					return werr
				}
			}
			if i >= 0 {
				return errQuit
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func waitQuiet(ctx context.Context, activity <-chan struct{}) {
	t := time.NewTimer(quietAfterInput)
	defer t.Stop()
	for {
		select {
		case <-activity:
			t.Reset(quietAfterInput)
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
