package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	ucli "github.com/urfave/cli/v2"

	"webrepl/internal/term"
	"webrepl/protocol/remote"
	"webrepl/transport"
)

// link is what connect opens: a board for file and code operations, and
// the byte stream of its terminal for repl.
type link struct {
	board *remote.Board
	term  io.ReadWriter
}

func (l *link) Close() error { return l.board.Close() }

// open connects to the device named by the flags: over WebREPL it logs in;
// over a serial port or TCP it opens the byte stream (and sends nothing
// yet, so a running program is not interrupted until a command needs the
// raw REPL).
func (a *app) open(c *ucli.Context) (*link, error) {
	addr, _ := lookup(c, "device")
	if addr == "" {
		return nil, &UsageError{Msg: "no device: give -d ADDRESS or set WEBREPL_DEVICE (e.g. -d /dev/ttyACM0, -d auto, -d 192.168.4.1)"}
	}
	parsed, err := transport.ParseAddress(addr)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	opts := &remote.Options{NoVerify: c.Bool("no-verify")}
	if parsed.IsWebREPL() {
		client, err := a.connect(c)
		if err != nil {
			return nil, err
		}
		return &link{board: remote.NewWebREPL(client, opts), term: client}, nil
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	stream, err := transport.OpenStream(ctx, addr, &transport.StreamOptions{Baud: c.Int("baud")})
	if err != nil {
		return nil, err
	}
	return &link{board: remote.NewRaw(stream, opts), term: stream}, nil
}

// withBoard opens the device, runs fn and closes it.
func (a *app) withBoard(c *ucli.Context, fn func(ctx context.Context, b *remote.Board) error) error {
	l, err := a.open(c)
	if err != nil {
		return err
	}
	err = fn(c.Context, l.board)
	if cerr := l.Close(); err == nil && cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	return err
}

// progress returns a callback that draws a one-line progress bar on
// standard error when it is a terminal, and nil otherwise.
func (a *app) progress(label string, total int64) (func(done int64), func()) {
	f, ok := a.io.Stderr.(*os.File)
	if !ok || !term.IsTerminal(f) || total <= 0 {
		return nil, func() {}
	}
	start := time.Now()
	last := time.Time{}
	draw := func(done int64, final bool) {
		if !final && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 30
		filled := int(done * width / total)
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < filled {
				bar[i] = '#'
			}
		}
		rate := float64(done) / max(time.Since(start).Seconds(), 1e-3)
		fmt.Fprintf(f, "\r%s [%s] %3d%% %s %s/s ", label, bar, done*100/total, size(done), size(int64(rate)))
	}
	return func(done int64) { draw(done, false) }, func() { draw(total, true); fmt.Fprintln(f) }
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%dB", n)
	}
}
