package mpboard

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrUnplugged is returned by Unplug when the board is unplugged already.
var ErrUnplugged = errors.New("mpboard: board is unplugged")

// ErrPlugged is returned by Replug when the board is plugged in already.
var ErrPlugged = errors.New("mpboard: board is plugged in")

// saveTimeout bounds how long Unplug waits for the board to hand over its
// files (Board.saveTimeout, which tests may shorten).
const saveTimeout = 30 * time.Second

// Unplug simulates pulling the board's USB cable: the board loses power
// and its serial device goes away. In this order, it
//
//   - saves the board's files (every regular file and directory under /,
//     with modification times) to a private host directory, through the
//     file channel (harness/board.mjs, op SAVE). Like an FS call, that
//     waits while a program computes without printing, at most 30 s;
//   - removes Options.Link, so that opening Path fails with an error
//     matching fs.ErrNotExist (ENOENT), as for a vanished /dev/ttyACM0;
//   - kills Node, which ends the Python state, and closes the
//     pseudo-terminal. The kernel then hangs up the slave side and removes
//     its /dev/pts node: a host that has it open gets end of file from its
//     next Read (read(2) returns 0 at once, a read in progress too, and the
//     output the host had not read yet is lost) and EIO from Write.
//     transport.Serial reports that Read as an error matching net.ErrClosed
//     ("device disconnected (unplugged?)"); an *os.File returns io.EOF.
//
// It returns once all of that is done. The board stays unplugged until
// Replug; meanwhile Device returns "" and FS's calls fail with
// ErrChannelClosed. If the files cannot be saved (the board stayed busy,
// Node died), the board is unplugged all the same, Replug powers it on
// with no files, and Unplug's error says so.
//
// Unplug on an unplugged board returns ErrUnplugged, and on a closed board
// (or when Close interrupts it) an error matching os.ErrClosed.
func (b *Board) Unplug() error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if b.closed || b.ctx.Err() != nil {
		return fmt.Errorf("mpboard: unplug: %w", os.ErrClosed)
	}
	b.mu.Lock()
	pl := b.cur
	b.mu.Unlock()
	if pl == nil {
		return ErrUnplugged
	}
	dir, saveErr := b.save(pl)
	b.mu.Lock()
	b.cur = nil
	b.mu.Unlock()
	b.removeLink(pl.pty.Name)
	closeErr := pl.close()
	b.flash = dir
	if saveErr != nil {
		return fmt.Errorf("mpboard: unplug: the board's files are lost: %w", saveErr)
	}
	if closeErr != nil {
		return fmt.Errorf("mpboard: unplug: %w", closeErr)
	}
	return nil
}

// save copies the files of the board pl into a new host directory and
// returns it. Close, or a board that stays busy for b.saveTimeout, ends the
// wait (by closing the file channel). Call it with opMu held.
func (b *Board) save(pl *plug) (string, error) {
	dir, err := os.MkdirTemp("", "mpboard-flash-")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.saveTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, pl.p.files.close)
	defer stop()
	err = pl.p.files.save(dir)
	if err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	switch {
	case b.ctx.Err() != nil:
		err = fmt.Errorf("board closed while saving: %w", os.ErrClosed)
	case ctx.Err() != nil:
		err = fmt.Errorf("board busy for %v: %w", b.saveTimeout, err)
	}
	return "", err
}

// Replug simulates plugging the board back in after Unplug: a power-on. It
// starts a new Node whose file system holds the files Unplug saved,
// restored before anything runs (so /boot.py is there, and runs as at
// every power-on), with the Options given to Start (boot noise, banner,
// Baud), on a new pseudo-terminal. Then it points Options.Link at the new
// pseudo-terminal atomically (a symbolic link under a temporary name beside
// Link, renamed over it; Replug fails if something other than a symbolic
// link has appeared at Link), and returns once the board is ready, as Start
// does. Python state starts afresh.
//
// Path does not change; Device returns the new pseudo-terminal, and FS a
// new FS for the files the board came back with. A failed Replug leaves the
// board unplugged with its files, and may be tried again. Replug on a
// plugged-in board returns ErrPlugged, and on a closed board (or when Close
// interrupts it) an error matching os.ErrClosed.
func (b *Board) Replug() error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if b.closed || b.ctx.Err() != nil {
		return fmt.Errorf("mpboard: replug: %w", os.ErrClosed)
	}
	b.mu.Lock()
	plugged := b.cur != nil
	b.mu.Unlock()
	if plugged {
		return ErrPlugged
	}
	pl, err := startPlug(b.ctx, &b.opts, b.flash)
	if err != nil {
		return err
	}
	if b.opts.Link != "" {
		if err := placeLink(b.opts.Link, pl.pty.Name); err != nil {
			pl.close()
			return err
		}
	}
	b.mu.Lock()
	b.cur = pl
	b.files = pl.p.files
	b.mu.Unlock()
	b.dropFlash()
	return nil
}

// dropFlash deletes the files saved by Unplug. Call it with opMu held.
func (b *Board) dropFlash() {
	if b.flash != "" {
		os.RemoveAll(b.flash)
		b.flash = ""
	}
}

// removeLink removes Options.Link if it points to target, the board's
// pseudo-terminal; a link that somebody re-pointed stays.
func (b *Board) removeLink(target string) {
	if b.opts.Link == "" {
		return
	}
	if got, err := os.Readlink(b.opts.Link); err == nil && got == target {
		os.Remove(b.opts.Link)
	}
}

// placeLink makes link a symbolic link to target, atomically: it makes the
// link under a temporary name in the same directory and renames it over
// link. A symbolic link at link is replaced; anything else there is an
// error matching fs.ErrExist.
func placeLink(link, target string) error {
	fi, err := os.Lstat(link)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("mpboard: link %s: %w and is not a symbolic link", link, fs.ErrExist)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("mpboard: link: %w", err)
	}
	dir, base := filepath.Split(link)
	tmp := filepath.Join(dir, "."+base+".mpboard-"+rand.Text())
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("mpboard: link: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mpboard: link: %w", err)
	}
	return nil
}
