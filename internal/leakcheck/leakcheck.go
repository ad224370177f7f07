// Package leakcheck fails a test that leaves goroutines behind.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check records the goroutines running now and, when the test ends, fails
// it if more are still running after a grace period in which they may
// finish their exit. Call it first in a test, before any Cleanup that closes
// what the test opened (cleanups run last-registered first).
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines left behind (had %d at start):\n%s", n-before, before, strings.TrimSpace(string(buf)))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
