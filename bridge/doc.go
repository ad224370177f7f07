// Package bridge exposes boards that are only wired (USB CDC, a UART
// adapter, any byte stream) as WebREPL endpoints, so that every WebREPL
// client (webrepl.html, webrepl_cli.py, Thonny, mpfshell, this project's
// own client) can use them: the terminal and the binary file protocol.
//
// A Server holds one or more boards, each at its own path on one HTTP
// port ("/" is the first board, "/NAME" each board by name). To its
// clients each board is a WebREPL device (protocol.Device in extended
// mode): the same password prompt, banners and frame kinds as firmware,
// but passwords of any length compared in constant time, failed logins
// slowed down per remote address, and a non-zero "WB" status instead of a
// dropped connection when a file operation fails.
//
// The board side:
//
//   - Nothing is sent to a board until a client asks for something: a
//     starting bridge and a connecting client do not disturb a running
//     program.
//   - Terminal input from the controlling client goes to the board paced
//     (Options.PasteChunk bytes, then Options.PasteDelay while more is
//     waiting), so a paste does not overrun a board's small input buffer;
//     typing is never delayed.
//   - Board output goes to every logged-in client. Text frames carry valid
//     UTF-8 only: a character split across reads is held back until it is
//     complete, and bytes that are not UTF-8 are shown as U+FFFD (the
//     transport's server-side text frames do this).
//   - A file operation (PUT, GET, and GET_VER the first time) takes the
//     board for itself: it interrupts a running program (Ctrl-C, as
//     mpremote does), enters the raw REPL, does the work there (PUT:
//     temporary file, rename, SHA-256 check; GET: chunked base64 reads),
//     and leaves the raw REPL. Its traffic is hidden from the terminal
//     clients, who then get a fresh prompt. The interrupted program is
//     not restarted.
//   - When the board's stream fails (unplugged, re-enumerated), the
//     sessions stay open with a notice; the bridge reopens the board by
//     its address (and, for a serial path that vanished, by the USB
//     identity it had) and says when it is back. A soft reset is just
//     output to the bridge: sessions survive it.
//
// Clients: the first client to log in controls the board; later ones are
// read-only observers (or are refused, or take over: Options.SecondController)
// who see the same output and whose keystrokes are dropped with a one-time
// notice. A client that asks for "?observe" in its URL is always an
// observer. Each client has a bounded output queue: one that cannot keep
// up is disconnected, and never stalls the board or the others.
//
// The HTTP side on the same port: WebSocket upgrades with an Origin check
// (requests without Origin and same-origin pages are allowed, other
// origins only when listed), "/healthz", a plain page at "/", and
// "POST /api/reset" which hard-resets a board through DTR/RTS for a client
// that presents the password.
package bridge
