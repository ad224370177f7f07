// Package browser finds and runs a headless Chromium for tests, with the
// standard library only (no DevTools protocol client).
//
// Start with Find, which locates the executable, and Start, which runs it
// headless on a profile of its own and kills it, with everything it
// started, on Close. Tests normally use the subpackage browsertest, which
// serves a page, collects what the page reports and handles a missing
// Chromium (skip locally, fail when $CI is set).
//
// Where Chromium comes from: Debian's package chromium (/usr/bin/chromium).
// .ci/run installs it when it is missing; on a workstation run
// `apt-get install chromium`, or point $WEBREPL_CHROMIUM at any Chromium
// or Chrome executable.
package browser
