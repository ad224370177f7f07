package bridge

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// tracer writes a line for every chunk crossing a board's stream:
//
//	2026-11-25T17:20:01.123456Z BOARD < 12 "hello\r\n>>> "
//
// the time (UTC, microseconds), the board's name ("-" for an unnamed
// board), '<' for bytes from the board or '>' for bytes to it, the count,
// and the bytes as a Go-quoted string. A nil *tracer records nothing.
type tracer struct {
	w   io.Writer
	log *slog.Logger

	mu     sync.Mutex
	buf    []byte
	failed bool
}

func (t *tracer) record(board string, dir byte, p []byte) {
	if t == nil {
		return
	}
	now := time.Now().UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed {
		return
	}
	if board == "" {
		board = "-"
	}
	b := now.AppendFormat(t.buf[:0], "2006-01-02T15:04:05.000000Z")
	b = append(b, ' ')
	b = append(b, board...)
	b = append(b, ' ', dir, ' ')
	b = strconv.AppendInt(b, int64(len(p)), 10)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, string(p))
	b = append(b, '\n')
	t.buf = b
	if _, err := t.w.Write(b); err != nil {
		t.failed = true
		t.log.Error("trace stopped", "err", err)
	}
}
