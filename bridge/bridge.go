package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"webrepl/protocol"
)

// Policy says what happens when a client that wants control logs in while
// another client controls the board.
type Policy uint8

const (
	// Observe makes the newcomer a read-only observer (the default).
	Observe Policy = iota
	// Refuse tells the newcomer the board is taken and closes its session.
	Refuse
	// TakeOver gives the newcomer control; the old controller becomes an
	// observer.
	TakeOver
)

// ParsePolicy parses "observe", "refuse" or "take-over".
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(s) {
	case "observe", "":
		return Observe, nil
	case "refuse":
		return Refuse, nil
	case "take-over", "takeover":
		return TakeOver, nil
	}
	return 0, fmt.Errorf("bridge: unknown policy %q (want observe, refuse or take-over)", s)
}

func (p Policy) String() string {
	switch p {
	case Observe:
		return "observe"
	case Refuse:
		return "refuse"
	case TakeOver:
		return "take-over"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Options configures a Server. The zero value of each field is its
// default; a nil *Options means all defaults.
type Options struct {
	// Password is what clients must type, of any length up to
	// protocol.MaxExtendedPassword bytes, without CR or LF. Empty means an
	// empty line logs in; the caller decides whether that is acceptable
	// (the CLI refuses it beyond loopback).
	Password string

	// AllowOrigins lists the browser origins, besides the bridge's own,
	// whose pages may open WebSockets ("https://example.com", "null" for
	// file:// pages, "*" for any). Requests without an Origin header
	// (non-browser clients) are always allowed. The host names of these
	// origins count as the bridge's own (see AllowHosts).
	AllowOrigins []string

	// AllowHosts lists host names (a port, if given, is ignored) under
	// which browsers may reach the bridge, besides IP addresses,
	// localhost, names under .localhost and this machine's name (its
	// full and short form, and the short form with ".local"). A request
	// with an Origin header sent to any other Host is refused: otherwise
	// a page whose name is made to resolve to the bridge's address (DNS
	// rebinding) would count as the bridge's own origin. Requests without
	// Origin may use any Host.
	AllowHosts []string

	// MaxClients bounds the logged-in sessions of one board; one more gets
	// a notice after its login and is closed. (Sessions still waiting for
	// their login are bounded apart: 16 per remote address, 64 in all.)
	// Zero means 8.
	MaxClients int

	// SecondController is the policy for a client that wants control
	// while another one has it. Zero is Observe.
	SecondController Policy

	// ControlWait is how long such a client first waits for the
	// controller to leave (so that a command run right after another one
	// finds the board free). Zero means 1 s.
	ControlWait time.Duration

	// ClientBuffer is how much of the board's output may wait for one
	// client (each chunk counted with chunkOverhead bytes more, for its
	// bookkeeping). A client that falls further behind is disconnected:
	// the bridge never stops reading the board for a client, so a slow or
	// stalled client cannot slow the board or the others. The chunks are
	// shared between the clients' queues, so the output held for all of
	// them together is at most about one buffer. Zero means 4 MiB.
	ClientBuffer int

	// PasteChunk is the most terminal input written to a board at once;
	// PasteDelay the pause after a chunk when more input is waiting. Zero
	// means 128 bytes and 10 ms (12.8 kB/s, above what a 115200-baud line
	// carries, so it costs nothing there); a negative PasteDelay means no
	// pause.
	PasteChunk int
	PasteDelay time.Duration

	// HandshakeTimeout bounds reading an HTTP request's header (and so a
	// WebSocket handshake). Zero means 10 s.
	HandshakeTimeout time.Duration

	// OpTimeout bounds one file operation on a board. Zero means 5 min.
	OpTimeout time.Duration

	// MaxFileSize bounds a file sent or fetched through the file
	// protocol (the bridge holds it in memory). Zero means 16 MiB.
	MaxFileSize int

	// LoginTimeout is how long a session may stay without logging in
	// before it is closed. Zero means 1 min.
	LoginTimeout time.Duration

	// LoginDelay is the pause before the next login attempt from an
	// address after its first failure; it doubles with each further
	// failure, up to 30 s. Zero means 500 ms.
	LoginDelay time.Duration

	// ReconnectInterval is how often a lost board is looked for. Zero
	// means 250 ms.
	ReconnectInterval time.Duration

	// Raw configures the raw REPL of file operations. Nil: its defaults.
	Raw *protocol.RawOptions

	// TLS, if not nil, makes Serve speak TLS (wss:// and https://).
	TLS *tls.Config

	// Trace, if not nil, receives a line for every read from and write to
	// a board's stream (see the trace format in docs/bridge.md).
	Trace io.Writer

	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
}

// BoardConfig is one board of a Server.
type BoardConfig struct {
	// Name is the board's path segment: clients reach it at "/Name". The
	// first board is also at "/". Empty is allowed for the first board
	// only. Letters, digits, '.', '_' and '-'; not "api" or "healthz".
	Name string

	// Port is the board's address for transport.OpenStream: a serial
	// device path, COMn, auto, usb:VID:PID[:SERIAL], id:SERIAL or
	// tcp://host:port.
	Port string

	// Baud is the serial line speed. Zero means 115200.
	Baud int

	// Open, if not nil, opens the board's stream instead of Port (tests,
	// simulated boards). It is called again to reopen a lost board.
	Open func(ctx context.Context) (io.ReadWriteCloser, error)
}

// Server is a bridge: boards shared between WebREPL clients over HTTP.
type Server struct {
	opts   Options
	log    *slog.Logger
	lines  []*line
	byName map[string]*line
	auth   *throttle
	trace  *tracer
	origin originCheck

	ctx    context.Context // ends when the Server closes
	cancel context.CancelFunc

	mu       sync.Mutex
	started  bool
	closed   bool
	servers  []*http.Server
	wg       sync.WaitGroup // line goroutines and client sessions
	closeErr error
}

// orDefault sets a zero or negative option to its default.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// New checks the configuration and returns a Server. Nothing is opened
// until Start (or Serve).
func New(boards []BoardConfig, opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if len(boards) == 0 {
		return nil, errors.New("bridge: no boards")
	}
	if strings.ContainsAny(o.Password, "\r\n") {
		return nil, errors.New("bridge: the password contains CR or LF, which end a typed password")
	}
	if len(o.Password) > protocol.MaxExtendedPassword {
		return nil, fmt.Errorf("bridge: the password is %d bytes; at most %d are allowed", len(o.Password), protocol.MaxExtendedPassword)
	}
	orDefault(&o.MaxClients, 8)
	orDefault(&o.ClientBuffer, 4<<20)
	orDefault(&o.ControlWait, time.Second)
	orDefault(&o.PasteChunk, 128)
	if o.PasteDelay == 0 { // negative: no pause
		o.PasteDelay = 10 * time.Millisecond
	}
	orDefault(&o.HandshakeTimeout, 10*time.Second)
	orDefault(&o.OpTimeout, 5*time.Minute)
	orDefault(&o.MaxFileSize, 16<<20)
	orDefault(&o.LoginTimeout, time.Minute)
	orDefault(&o.LoginDelay, 500*time.Millisecond)
	orDefault(&o.ReconnectInterval, 250*time.Millisecond)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hostname, _ := os.Hostname() // none: only the listed names
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:   o,
		log:    log,
		byName: make(map[string]*line),
		auth:   newThrottle(o.LoginDelay),
		origin: newOriginCheck(o.AllowOrigins, o.AllowHosts, hostname),
		ctx:    ctx,
		cancel: cancel,
	}
	if o.Trace != nil {
		s.trace = &tracer{w: o.Trace, log: log}
	}
	for i, b := range boards {
		switch {
		case b.Name == "" && i > 0:
			cancel()
			return nil, fmt.Errorf("bridge: board %d has no name (only the first may go without)", i+1)
		case b.Name != "" && !nameRE.MatchString(b.Name):
			cancel()
			return nil, fmt.Errorf("bridge: board name %q: use letters, digits, '.', '_' and '-'", b.Name)
		case b.Name == "api" || b.Name == "healthz":
			cancel()
			return nil, fmt.Errorf("bridge: board name %q is reserved", b.Name)
		case b.Port == "" && b.Open == nil:
			cancel()
			return nil, fmt.Errorf("bridge: board %q has no port", b.Name)
		}
		if _, dup := s.byName[b.Name]; dup {
			cancel()
			return nil, fmt.Errorf("bridge: two boards are named %q", b.Name)
		}
		l := newLine(s, b)
		s.lines = append(s.lines, l)
		s.byName[b.Name] = l
	}
	return s, nil
}

// Start opens every board and starts reading its output. It fails if a
// board cannot be opened (then nothing stays open). It sends nothing to the
// boards. Calling it again does nothing.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.started {
		return nil
	}
	for i, l := range s.lines {
		if err := l.start(ctx); err != nil {
			for _, o := range s.lines[:i] {
				o.close()
			}
			return err
		}
	}
	s.started = true
	return nil
}

// Serve starts the boards if needed and answers HTTP and WebSocket
// requests on ln (with TLS when Options.TLS is set) until ctx is done or
// Close is called; then it closes the Server and returns nil. Serve may be
// called for several listeners at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.HandshakeTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	s.Close()
	return err
}

// Close stops serving, ends every session (clients see their connection
// close), closes the boards' streams and waits for the Server's
// goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return s.closeErr
	}
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	s.cancel()
	for _, hs := range servers {
		hs.Close()
	}
	for _, l := range s.lines {
		l.close()
	}
	s.wg.Wait()
	return s.closeErr
}

// Boards returns the boards' names, in order.
func (s *Server) Boards() []string {
	names := make([]string, len(s.lines))
	for i, l := range s.lines {
		names[i] = l.name
	}
	return names
}

// goTracked runs f on a goroutine the Server waits for in Close. It
// returns false, and does not run f, once the Server is closing.
func (s *Server) goTracked(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}
