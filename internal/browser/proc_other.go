//go:build !linux

package browser

// start starts p.cmd and the goroutine that waits for it. Only the main
// process is tracked: on these systems, helpers it started are not
// killed by Close.
func (p *Process) start() error {
	if err := p.cmd.Start(); err != nil {
		return err
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
		p.err = err
		close(p.done)
	}()
	return nil
}

// kill kills the main process unless it has been reaped.
func (p *Process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		p.cmd.Process.Kill()
	}
}
