package mpboard

import "time"

// Pid is Node's process ID, for tests that check it is gone after Close;
// 0 while the board is unplugged.
func (b *Board) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == nil {
		return 0
	}
	return b.cur.p.cmd.Process.Pid
}

// FlashDir is the host directory holding the files Unplug saved, or "".
func (b *Board) FlashDir() string {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	return b.flash
}

// SetSaveTimeout shortens how long Unplug waits for a busy board's files.
func (b *Board) SetSaveTimeout(d time.Duration) {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.saveTimeout = d
}
