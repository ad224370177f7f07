package mpboard

// Pid is Node's process ID, for tests that check it is gone after Close.
func (b *Board) Pid() int { return b.p.cmd.Process.Pid }
