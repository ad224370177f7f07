package cli

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"webrepl/bridge"
	"webrepl/internal/mpboard"
)

func bridgeCommand(a *app) *ucli.Command {
	return &ucli.Command{
		Name:  "bridge",
		Usage: "serve wired boards (USB, UART) as WebREPL endpoints: terminal and file transfer for every WebREPL client",
		UsageText: "webrepl bridge [--port PORT | --board NAME=PORT ...] [--listen ADDR] [--password PW]\n" +
			"   webrepl bridge        (no port: a simulated MicroPython board, for a try without hardware)",
		Description: "PORT is /dev/ttyACM0, COM3, auto, usb:VID:PID[:SERIAL], id:SERIAL or tcp://host:port.\n" +
			"The first board is at ws://ADDR/, each named board also at ws://ADDR/NAME.\n" +
			"Nothing is sent to a board until a client asks for something; file operations interrupt a running program.\n" +
			"Listening beyond loopback needs a password (--password, --password-file or WEBREPL_PASSWORD).",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "port", Usage: "the board's serial port (or tcp://host:port)"},
			&ucli.StringSliceFlag{Name: "board", Usage: "`NAME=PORT`: a board served at /NAME (repeatable)"},
			&ucli.IntFlag{Name: "baud", Value: 115200, Usage: "serial line speed"},
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8266", Usage: "TCP address for clients"},
			// No EnvVars: urfave/cli would count a set WEBREPL_PASSWORD as
			// a given --password (see bridgePassword).
			&ucli.StringFlag{Name: "password", Aliases: []string{"p"}, Usage: "password clients must type (any length; default: $" + passwordEnv + ")"},
			&ucli.StringFlag{Name: "password-file", Usage: "read the password from the first line of this file (wins over $" + passwordEnv + ")"},
			&ucli.StringSliceFlag{Name: "allow-origin", Usage: "also let web pages from this `ORIGIN` connect (e.g. https://example.com, null, *)"},
			&ucli.StringSliceFlag{Name: "allow-host", Usage: "a host `NAME` browsers may use to reach the bridge, besides IP addresses, localhost and this machine's name (repeatable)"},
			&ucli.IntFlag{Name: "max-clients", Value: 8, Usage: "sessions per board"},
			&ucli.StringFlag{Name: "second-controller", Value: "observe", Usage: "when a second client wants control: observe, refuse or take-over"},
			&ucli.StringFlag{Name: "tls-cert", Usage: "TLS certificate (PEM) for wss:// and https://"},
			&ucli.StringFlag{Name: "tls-key", Usage: "TLS private key (PEM)"},
			&ucli.BoolFlag{Name: "tls-self-signed", Usage: "make a self-signed TLS certificate and print its fingerprint"},
			&ucli.IntFlag{Name: "threads", Value: 1, Usage: "threads running Go code (GOMAXPROCS; 0: one per core, or $GOMAXPROCS); one is cheapest and fastest for a few boards"},
			&ucli.StringFlag{Name: "trace", Usage: "append a timestamped capture of all serial traffic to this `FILE`"},
			&ucli.BoolFlag{Name: "json-log", Usage: "log as JSON lines"},
			&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "debug logs"},
		},
		Action: a.bridge,
	}
}

func (a *app) bridge(c *ucli.Context) error {
	if c.Args().Len() > 0 {
		return &UsageError{Msg: "bridge takes no arguments, only flags (the port goes in --port)"}
	}
	boards, err := bridgeBoards(c)
	if err != nil {
		return err
	}
	password, err := bridgePassword(c)
	if err != nil {
		return err
	}
	listen := c.String("listen")
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return &UsageError{Msg: fmt.Sprintf("--listen %q: want HOST:PORT, e.g. 127.0.0.1:8266", listen)}
	}
	if password == "" && !isLoopback(host) {
		return &UsageError{Msg: fmt.Sprintf("refusing to listen on %s without a password: anyone who can reach it could use the board. "+
			"Set --password, --password-file or WEBREPL_PASSWORD, or listen on 127.0.0.1", listen)}
	}
	policy, err := bridge.ParsePolicy(c.String("second-controller"))
	if err != nil {
		return &UsageError{Msg: err.Error()}
	}
	// The bridge's goroutines hand each chunk of output and each keystroke
	// to one another: on one thread that costs no cross-thread wake-ups,
	// which makes both the CPU per byte and a keystroke's echo smaller
	// (docs/benchmarks.md). The board's and the clients' reads wait in the
	// runtime's poller, so they hold no thread.
	threads := c.Int("threads")
	switch {
	case threads < 0:
		return &UsageError{Msg: "--threads must be 0 (one per core) or more"}
	case threads > 0 && (c.IsSet("threads") || os.Getenv("GOMAXPROCS") == ""):
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
	}

	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	var handler slog.Handler = slog.NewTextHandler(a.io.Stderr, &slog.HandlerOptions{Level: level})
	if c.Bool("json-log") {
		handler = slog.NewJSONHandler(a.io.Stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)

	opts := &bridge.Options{
		Password:         password,
		AllowOrigins:     c.StringSlice("allow-origin"),
		AllowHosts:       append(c.StringSlice("allow-host"), host), // a name in --listen is the bridge's own
		MaxClients:       c.Int("max-clients"),
		SecondController: policy,
		Logger:           log,
	}
	tlsConf, fingerprint, err := bridgeTLS(c, host)
	if err != nil {
		return err
	}
	opts.TLS = tlsConf
	if path := c.String("trace"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("webrepl: bridge: trace: %w", err)
		}
		defer f.Close()
		opts.Trace = f
	}

	if len(boards) == 0 {
		b, err := mpboard.Start(&mpboard.Options{Logf: func(f string, args ...any) { log.Debug(fmt.Sprintf(f, args...)) }})
		if err != nil {
			return fmt.Errorf("webrepl: bridge: no --port given, and the simulated board (MicroPython on Node.js) cannot start: %w", err)
		}
		defer b.Close()
		fmt.Fprintf(a.io.Stdout, "no --port given: bridging a simulated MicroPython board on %s\n", b.Path)
		boards = []bridge.BoardConfig{{Port: b.Path}}
	}
	for i := range boards {
		boards[i].Baud = c.Int("baud")
	}
	srv, err := bridge.New(boards, opts)
	if err != nil {
		return &UsageError{Msg: err.Error()}
	}
	if err := srv.Start(c.Context); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("webrepl: bridge: %w", err)
	}
	scheme, shown := "ws", ln.Addr().String()
	if tlsConf != nil {
		scheme = "wss"
	}
	if h, p, err := net.SplitHostPort(shown); err == nil && (h == "0.0.0.0" || h == "::") {
		shown = net.JoinHostPort("localhost", p)
	}
	for i, b := range boards {
		label := b.Name
		if label == "" {
			label = "board"
		}
		url := scheme + "://" + shown + "/" + b.Name
		if i == 0 && b.Name != "" {
			url += " (also " + scheme + "://" + shown + "/)"
		}
		fmt.Fprintf(a.io.Stdout, "%s %s: %s\n", label, b.Port, url)
	}
	if fingerprint != "" {
		fmt.Fprintf(a.io.Stdout, "TLS certificate (self-signed) SHA-256 fingerprint: %s\n", fingerprint)
	}
	if password == "" {
		fmt.Fprintln(a.io.Stdout, "no password: an empty line logs in (loopback only)")
	}
	err = srv.Serve(c.Context, ln)
	srv.Close()
	return err
}

// bridgeBoards reads --port and --board.
func bridgeBoards(c *ucli.Context) ([]bridge.BoardConfig, error) {
	var boards []bridge.BoardConfig
	if p := c.String("port"); p != "" {
		boards = append(boards, bridge.BoardConfig{Port: p})
	}
	for _, spec := range c.StringSlice("board") {
		name, port, ok := strings.Cut(spec, "=")
		if !ok || name == "" || port == "" {
			return nil, &UsageError{Msg: fmt.Sprintf("--board %q: want NAME=PORT, e.g. esp=/dev/ttyUSB0", spec)}
		}
		boards = append(boards, bridge.BoardConfig{Name: name, Port: port})
	}
	return boards, nil
}

// passwordEnv is the environment variable a password comes from when the
// command line gives none.
const passwordEnv = "WEBREPL_PASSWORD"

// bridgePassword reads --password or --password-file (not both), and
// without them WEBREPL_PASSWORD: what the command line says wins over the
// environment.
func bridgePassword(c *ucli.Context) (string, error) {
	path := c.String("password-file")
	pw, given := passwordFlag(c)
	switch {
	case given && path != "":
		return "", &UsageError{Msg: "give --password or --password-file, not both"}
	case given:
		return pw, nil
	case path == "":
		return os.Getenv(passwordEnv), nil
	}
	return readPasswordFile(path)
}

// passwordFlag returns the password given with --password or -p, after the
// command name or before it ("webrepl -p PW bridge", the app's flag). The
// app's flag also takes WEBREPL_PASSWORD, which urfave/cli does not tell
// apart from the command line: a value equal to the variable's counts as
// the variable's.
func passwordFlag(c *ucli.Context) (string, bool) {
	if c.IsSet("password") {
		return c.String("password"), true
	}
	for _, p := range c.Lineage()[1:] {
		if p.IsSet("password") && p.String("password") != os.Getenv(passwordEnv) {
			return p.String("password"), true
		}
	}
	return "", false
}

// readPasswordFile returns the first line of the file at path, which must
// not be empty.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("webrepl: bridge: password file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("webrepl: bridge: password file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", &UsageError{Msg: fmt.Sprintf("password file %s: the first line is empty", path)}
	}
	return pw, nil
}

// bridgeTLS builds the TLS configuration from the flags.
func bridgeTLS(c *ucli.Context, host string) (*tls.Config, string, error) {
	cert, key, self := c.String("tls-cert"), c.String("tls-key"), c.Bool("tls-self-signed")
	switch {
	case self && (cert != "" || key != ""):
		return nil, "", &UsageError{Msg: "--tls-self-signed makes its own certificate: leave out --tls-cert and --tls-key"}
	case (cert == "") != (key == ""):
		return nil, "", &UsageError{Msg: "--tls-cert and --tls-key go together"}
	case self:
		hosts := []string{host}
		if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
		crt, fp, err := bridge.SelfSignedCert(hosts)
		if err != nil {
			return nil, "", err
		}
		return &tls.Config{Certificates: []tls.Certificate{crt}, MinVersion: tls.VersionTLS12}, fp, nil
	case cert != "":
		crt, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, "", fmt.Errorf("webrepl: bridge: TLS: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{crt}, MinVersion: tls.VersionTLS12}, "", nil
	}
	return nil, "", nil
}

// isLoopback reports whether a listen host reaches this machine only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
