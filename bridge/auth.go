package bridge

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net"
	"sync"
	"time"
)

// maxLoginDelay caps the pause between failed attempts from one address.
const maxLoginDelay = 30 * time.Second

// maxWaiting is how many login attempts from one address may wait their
// turn; more are refused at once (a guesser cannot fill the board's
// session slots with waiting attempts).
const maxWaiting = 4

// throttle slows down password guessing: attempts from one address are
// taken one at a time, and after a failure the next one waits, twice as
// long after each further failure. A success clears the address's record.
type throttle struct {
	base time.Duration

	mu    sync.Mutex
	addrs map[string]*attempts
}

type attempts struct {
	mu    sync.Mutex // one attempt at a time from an address
	fails int
	next  time.Time // no attempt before
	users int       // attempts waiting or running; guarded by throttle.mu
}

func newThrottle(base time.Duration) *throttle {
	return &throttle{base: base, addrs: make(map[string]*attempts)}
}

// delay is the pause after n failures.
func (t *throttle) delay(n int) time.Duration {
	d := t.base
	for i := 1; i < n && d < maxLoginDelay; i++ {
		d *= 2
	}
	return min(d, maxLoginDelay)
}

// check waits for addr's turn, then runs ok and records the outcome. A
// failure is logged with the address, never with what was typed.
func (t *throttle) check(ctx context.Context, addr string, ok func() bool, log *slog.Logger) bool {
	t.mu.Lock()
	a := t.addrs[addr]
	if a == nil {
		a = &attempts{}
		t.addrs[addr] = a
	}
	a.users++
	crowded := a.users > maxWaiting
	log.Debug("login attempt", "remote", addr, "attempts", a.users)
	t.mu.Unlock()
	defer t.release(addr, a)
	if crowded {
		log.Warn("login refused: too many attempts waiting from this address", "remote", addr)
		return false
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if wait := time.Until(a.next); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false
		}
	}
	if ok() {
		a.fails, a.next = 0, time.Time{}
		return true
	}
	a.fails++
	d := t.delay(a.fails)
	a.next = time.Now().Add(d)
	log.Warn("login failed", "remote", addr, "failures", a.fails, "next attempt after", d)
	return false
}

// release forgets an address with no attempts under way whose delay is
// over, so the map does not grow without bound.
func (t *throttle) release(addr string, a *attempts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a.users--
	if a.users == 0 && (a.fails == 0 || time.Now().After(a.next.Add(maxLoginDelay))) {
		delete(t.addrs, addr)
	}
	// Sweep addresses whose last failure is long past.
	if len(t.addrs) > 1024 {
		now := time.Now()
		for k, v := range t.addrs {
			if v.users == 0 && now.After(v.next.Add(maxLoginDelay)) {
				delete(t.addrs, k)
			}
		}
	}
}

// passwordOK compares in constant time (for entries of the password's
// length; the length itself is not secret enough to hide).
func passwordOK(entry []byte, password string) bool {
	return subtle.ConstantTimeCompare(entry, []byte(password)) == 1
}

// hostOf returns the host part of a remote address.
func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
