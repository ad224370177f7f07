// board.mjs: a MicroPython board on a serial line, for tests.
//
// It runs the WebAssembly port of MicroPython (npm package
// @micropython/micropython-webassembly-pyscript) and connects its REPL to
// this process's standard input and output, byte for byte, as a board's REPL
// is connected to its UART or USB-CDC port. Put a pseudo-terminal in front of
// it (internal/mpboard does) and a host opens it like /dev/ttyACM0.
//
// Where the WebAssembly port differs from firmware on a microcontroller, the
// harness makes it behave like the firmware:
//
//   - Soft reset. Ctrl-D on an empty line (friendly or raw REPL), or
//     sys.exit(), only makes the port return PYEXEC_FORCED_EXIT. The harness
//     then prints "MPY: soft reboot\r\n", starts a fresh interpreter (fresh
//     Python state) with the files of the old one copied over (files
//     survive, as on flash), runs /boot.py if there is one, and prints the
//     raw REPL banner when the board was in raw mode (MCU ports stay in raw
//     mode across a soft reset) or the friendly banner otherwise.
//   - Raw-paste. The port answers "\x05A\x01" with R\x01 and then reads
//     zeros from a stdin it does not have, forever. The harness makes the
//     board behave like firmware without raw-paste support: the Ctrl-A of
//     that request is handled as a plain Ctrl-A (the device re-prints
//     "raw REPL; CTRL-B to exit\r\n>"), so a host reads "ra" and falls back
//     to plain raw mode.
//
// Input bytes are fed to the REPL one at a time, strictly in order. Output is
// written to fd 1 as it is produced, unchanged (no line buffering).
//
// Flags:
//
//   --boot-noise  print bytes of noise (a ROM bootloader line with bytes that
//                 are not UTF-8) before the first banner, as boards do on
//                 power-up
//   --no-banner   print nothing at start, as a board that booted long before
//                 the host opened its port
//
// When the board is ready it writes "mpboard: ready N\n" to stderr, N being
// the number of bytes written to stdout so far. Other stderr lines are
// diagnostics. The process exits with status 0 when stdin ends (after the
// input read so far has been handled), and non-zero if the interpreter
// fails.
//
// Limits of the port (see shared/reference/micropython-wasm.md): no machine,
// network, _webrepl or websocket module; a running program cannot be
// interrupted with Ctrl-C (it holds the event loop); input() has no stdin.

import fs from "node:fs";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";

const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n";
const PYEXEC_FORCED_EXIT = 0x100;
const CTRL_A = 0x01;
const CTRL_B = 0x02;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const CTRL_E = 0x05;

const flags = new Set(process.argv.slice(2));
for (const f of flags) {
  if (f !== "--boot-noise" && f !== "--no-banner") {
    process.stderr.write(`mpboard: unknown flag ${f}\n`);
    process.exit(2);
  }
}

// ---- Output: fd 1, written synchronously so bytes leave promptly. ----

const encoder = new TextEncoder();
let outBuf = Buffer.alloc(4096);
let outLen = 0;
let outTotal = 0; // bytes written to fd 1
let lastFlush = Date.now();
let muted = false; // drop interpreter output (while re-entering raw mode)
let recent = ""; // output of the byte being processed, as latin1 (bounded)

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if (err.code === "EAGAIN") {
        Atomics.wait(sleepCell, 0, 0, 1); // non-blocking pipe: wait, retry
        continue;
      }
      if (err.code === "EPIPE") {
        process.exit(0); // nobody reads the board any more
      }
      throw err;
    }
  }
}

function flush() {
  if (outLen > 0) {
    writeAll(1, outBuf.subarray(0, outLen));
    outTotal += outLen;
    outLen = 0;
  }
  lastFlush = Date.now();
}

function emitBytes(bytes) {
  if (recent.length < 256) {
    recent += Buffer.from(bytes).toString("latin1");
  }
  if (outLen + bytes.length > outBuf.length) {
    flush();
    if (bytes.length > outBuf.length) {
      writeAll(1, bytes);
      outTotal += bytes.length;
      return;
    }
  }
  outBuf.set(bytes, outLen);
  outLen += bytes.length;
  // A long-running program's output must not wait for it to finish.
  if (Date.now() - lastFlush >= 10) {
    flush();
  }
}

// emit writes board output: a string (as UTF-8) or bytes.
function emit(data) {
  emitBytes(typeof data === "string" ? encoder.encode(data) : data);
}

// The interpreter's stdout: a string or a Uint8Array, depending on the path.
function boardStdout(data) {
  if (!muted) {
    emit(data);
  }
}

// The port's stderr carries C-level diagnostics, not the REPL: log them.
function boardStderr(data) {
  const text = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
  process.stderr.write(`mpboard: wasm stderr: ${JSON.stringify(text)}\n`);
}

// ---- The interpreter and the REPL state the harness tracks. ----

let mp = null;
let raw = false; // the REPL is in raw mode
// The raw line buffer, as far as raw-paste detection needs it: its length and
// first two bytes. Valid while raw is true.
let rawLen = 0;
let raw0 = -1;
let raw1 = -1;

async function load() {
  return loadMicroPython({ stdout: boardStdout, stderr: boardStderr, linebuffer: false });
}

async function processChar(c) {
  return mp.replProcessCharWithAsyncify(c);
}

// copyTree copies the files and directories under dir from one Emscripten FS
// to another, keeping modification times. /dev and /proc are the runtime's.
function copyTree(from, to, dir) {
  for (const name of from.readdir(dir)) {
    if (name === "." || name === "..") {
      continue;
    }
    const path = dir === "/" ? "/" + name : dir + "/" + name;
    if (path === "/dev" || path === "/proc") {
      continue;
    }
    const st = from.stat(path);
    if (from.isDir(st.mode)) {
      if (!to.analyzePath(path).exists) {
        to.mkdir(path);
      }
      copyTree(from, to, path);
    } else if (from.isFile(st.mode)) {
      to.writeFile(path, from.readFile(path));
    } else {
      continue;
    }
    to.utime(path, st.atime.getTime(), st.mtime.getTime());
  }
}

// runBoot runs /boot.py, if present, in the fresh interpreter's __main__, as
// firmware does after a reset. An exception is printed as a traceback.
function runBoot() {
  if (!mp.FS.analyzePath("/boot.py").exists) {
    return;
  }
  const src = new TextDecoder().decode(mp.FS.readFile("/boot.py"));
  try {
    mp.runPython(src);
  } catch (err) {
    if (err.name !== "PythonError") {
      throw err;
    }
    if (err.type !== "SystemExit") {
      emit(String(err.message).replace(/\r?\n/g, "\r\n"));
    }
  }
}

async function softReset() {
  flush();
  emit("MPY: soft reboot\r\n");
  const old = mp;
  mp = await load();
  copyTree(old.FS, mp.FS, "/");
  runBoot();
  if (raw) {
    // Enter raw mode without the friendly banner, then print what an MCU
    // port prints when it stays in raw mode across the reset.
    muted = true;
    mp.replInit();
    await processChar(CTRL_A);
    muted = false;
    emit(RAW_BANNER + ">");
    rawLen = 0;
  } else {
    mp.replInit();
  }
  flush();
}

async function feed(c) {
  if (raw && c === CTRL_A && rawLen === 2 && raw0 === CTRL_E && raw1 === 0x41) {
    // A raw-paste request ("\x05A\x01"). Clear the line (raw-mode Ctrl-C
    // prints nothing) so the Ctrl-A below is the plain one of firmware
    // without raw-paste.
    await processChar(CTRL_C);
  }
  recent = "";
  const ret = await processChar(c);
  if (ret & PYEXEC_FORCED_EXIT) {
    await softReset();
    return;
  }
  if (raw) {
    switch (c) {
      case CTRL_A:
      case CTRL_C:
      case CTRL_D:
        rawLen = 0;
        break;
      case CTRL_B:
        raw = false;
        break;
      default:
        if (rawLen === 0) {
          raw0 = c;
        } else if (rawLen === 1) {
          raw1 = c;
        }
        rawLen++;
    }
  } else if (c === CTRL_A && recent.includes(RAW_BANNER)) {
    // Ctrl-A on an empty friendly line (on a non-empty one it moves the
    // cursor, and in paste mode it is text).
    raw = true;
    rawLen = 0;
  }
}

// ---- Start. ----

if (flags.has("--boot-noise")) {
  // What an ESP32 prints at 115200 baud while its ROM talks at 74880, then
  // its boot lines: noise, bytes that are not UTF-8, bare line feeds.
  emit(Buffer.from([0xff, 0x00, 0xf8, 0x80, 0x0a, 0xe0, 0xfe, 0x1c, 0x0a]));
  emit("ets Jul 29 2019 12:21:46\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n");
  emit(Buffer.from([0xc0, 0x0a, 0x0a]));
  emit("entry 0x400805e4\n");
  flush();
}
mp = await load();
muted = flags.has("--no-banner");
mp.replInit();
muted = false;
flush();
process.stderr.write(`mpboard: ready ${outTotal}\n`);

// ---- Input: one byte at a time, in order. ----

const queue = [];
let queued = 0;
let ended = false;
let wake = null;
const HIGH_WATER = 1 << 16;

process.stdin.on("data", (chunk) => {
  queue.push(chunk);
  queued += chunk.length;
  if (queued > HIGH_WATER) {
    process.stdin.pause(); // flow control, as a UART's FIFO gives
  }
  if (wake) {
    wake();
  }
});
process.stdin.on("end", () => {
  ended = true;
  if (wake) {
    wake();
  }
});
process.stdin.on("error", (err) => {
  process.stderr.write(`mpboard: stdin: ${err.message}\n`);
  ended = true;
  if (wake) {
    wake();
  }
});

try {
  for (;;) {
    while (queue.length > 0) {
      const chunk = queue.shift();
      for (const c of chunk) {
        await feed(c);
        flush();
      }
      queued -= chunk.length;
      if (queued <= HIGH_WATER && process.stdin.isPaused()) {
        process.stdin.resume();
      }
    }
    if (ended) {
      break;
    }
    await new Promise((resolve) => {
      wake = resolve;
    });
    wake = null;
  }
} catch (err) {
  flush();
  process.stderr.write(`mpboard: interpreter failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(70);
}
flush();
process.exit(0);
