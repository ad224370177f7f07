// Package browsertest runs pages in a real headless Chromium from Go tests
// and returns what the pages report.
//
// Start with Run: the test gives the page's markup and script, the kit
// serves it from an origin of its own (http://127.0.0.1:PORT, an
// httptest server), opens it in a fresh Chromium and returns the values
// the page passed to report(), in order, once the page calls done():
//
//	res := browsertest.Run(t, browsertest.Page{
//		Script: `report(navigator.userAgent); done();`,
//	})
//	// res.Reports[0] is the user agent.
//
// When the test must know the page's origin before Chromium starts (to
// put it on a server's allow-list, say), use Serve, then Site.Run. To
// check a page that another server renders, DumpDOM returns its DOM after
// load. Page.Handler serves other paths on the kit's origin, for
// same-origin requests and WebSockets.
//
// Pages see two functions, defined before any of the page's own script:
//
//   - report(value) sends value to the test: a string as is, anything
//     else as JSON. Reports arrive in the order they were made.
//   - done() ends the run once the reports before it have arrived;
//     done(value) reports value first.
//
// An uncaught exception or unhandled promise rejection in the page fails
// the test with its message, as do Chromium exiting and the timeout
// (Page.Timeout, DefaultTimeout when zero); failures quote the end of
// Chromium's log.
//
// Chromium: each run gets its own profile under tb.TempDir(), and
// Chromium, with every process it started, is killed before Run or DumpDOM
// returns (see package browser). When no Chromium is found (see
// browser.Find), the test is skipped with a message saying where the kit
// looked, except when the environment variable CI is non-empty: there the
// test fails, because CI (.ci/run) installs Chromium and a skip would hide
// that the browser tests did not run.
package browsertest
