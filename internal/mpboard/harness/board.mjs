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
//   - errno. The port raises OSError with Emscripten's errno values (44 for
//     a missing file); the harness makes open() and the os file functions
//     raise firmware's values instead (2, ENOENT), in every interpreter.
//   - Raw-paste. The port answers "\x05A\x01" with R\x01 and then reads
//     zeros from a stdin it does not have, forever. The harness makes the
//     board behave like firmware without raw-paste support: the Ctrl-A of
//     that request is handled as a plain Ctrl-A (the device re-prints
//     "raw REPL; CTRL-B to exit\r\n>"), so a host reads "ra" and falls back
//     to plain raw mode.
//
// Input bytes are fed to the REPL one at a time, strictly in order. Output is
// written to fd 1 as it is produced, unchanged (no line buffering). By
// default no input is lost: the harness stops reading stdin while much waits
// (flow control). With --input-buffer it loses input as a board does; see
// "Input buffer" below.
//
// Flags:
//
//   --boot-noise  print bytes of noise (a ROM bootloader line with bytes that
//                 are not UTF-8) before the first banner, as boards do on
//                 power-up
//   --no-banner   print nothing at start, as a board that booted long before
//                 the host opened its port
//   --fs-channel  serve the file channel on fds 3 (requests in) and 4
//                 (replies out); see "File channel" below
//   --fs-capacity=N
//                 a flash of N bytes: the board's files (their sizes summed,
//                 /dev and /proc aside) may take at most N bytes. A write
//                 that would take them past N writes nothing and fails, as
//                 on firmware whose flash is full: in Python with
//                 OSError(28) (ENOSPC), on the file channel with status 28.
//                 Only writes count: a file that shrinks or goes frees its
//                 bytes, and os.statvfs does not report the limit.
//   --input-buffer=N
//                 the board's input buffer is a ring of N bytes (N >= 2),
//                 and input that arrives while it is full is lost; see
//                 "Input buffer" below
//   --input-rate=R
//                 with --input-buffer: the REPL takes at most R bytes per
//                 second from the buffer (default 32000)
//   --restore=DIR power on with the files of a board that was unplugged:
//                 copy the tree under the host directory DIR (written by the
//                 file channel's SAVE op) into the board's file system
//                 before anything else runs. Regular files and directories
//                 are copied with their modification times; anything else
//                 is skipped. A failure to read DIR ends the process with
//                 status 70 before the board is ready.
//
// At power-on, as after a soft reset, the board runs /boot.py if there is
// one (only a restored board has files at power-on) before it prints its
// banner; with --no-banner its output is dropped too.
//
// When the board is ready it writes "mpboard: ready N\n" to stderr, N being
// the number of bytes written to stdout so far. Other stderr lines are
// diagnostics. The process exits with status 0 when stdin ends (after the
// input read so far has been handled), and non-zero if the interpreter
// fails.
//
// Input buffer. With --input-buffer=N, bytes from stdin go into a ring of N
// bytes that holds at most N-1 of them, as MicroPython's ringbuf_t
// (py/ringbuf.h), which the ports fill from their UART and WebREPL receive
// handlers; a byte that arrives while the ring is full is dropped, as there
// (ringbuf_put fails, and the handler goes on). The REPL takes bytes from the
// ring one at a time, at most R per second (--input-rate), standing for a
// microcontroller that echoes and compiles each byte: each byte takes 1/R s
// of the board's time, or longer if the interpreter takes longer (the
// compile and run at the end of a line or a paste), and an idle REPL saves
// no time for later. Bytes land in the ring when they arrive (the harness
// lets the event loop turn at least every millisecond while it feeds the
// REPL), except while the REPL runs code that holds the event loop: input
// that comes meanwhile lands all at once when the code is done, and is lost
// if it does not fit, as on a board whose REPL is busy. The harness makes up
// for stalls of its own (Node not getting the CPU), which a board does not
// have: see InputBuffer. Each loss is logged on stderr. This is the "pasted
// input is cut at about 255 bytes" of WebREPL (micropython#2497): a host
// that writes a paste at once loses all but about the first N-1 bytes, while
// one that waits between chunks small enough to fit loses nothing.
//
// File channel. With --fs-channel the host reaches the board's files (the
// Emscripten MEMFS its Python sees, of the interpreter running at the time:
// the one after a soft reset too) without going through the REPL, as
// firmware's WebREPL file protocol does: nothing is printed, and nothing
// typed at the REPL is disturbed. Requests are served one at a time, in
// order, whenever JavaScript runs: while the REPL waits for input, between
// two input bytes, and while a program prints (the port writes its output
// through a callback; the harness serves requests before it writes the
// output). A program that computes without printing holds the event loop,
// and requests wait until it prints or ends, as firmware serves WebREPL
// file operations only when its REPL polls. Names are UTF-8; a
// leading "/" is the root, and other names are relative to "/" (the board's
// current directory at boot), whatever the REPL's current directory is.
//
// Every integer is little-endian. A request is
//
//   u32 n, then n bytes: u8 op, then the op's arguments
//
// and its reply is
//
//   u32 n, then n bytes: u16 status, then the result (empty unless status is 0)
//
// Status 0 is success; anything else is the errno (MicroPython's and
// Linux's numbering: ENOENT 2, EIO 5, EBADF 9, EACCES 13, EEXIST 17,
// ENOTDIR 20, EISDIR 21, EINVAL 22, ENOSPC 28, ...). The ops:
//
//   1 STAT   name            -> u8 kind (1 file, 2 directory, 3 other),
//                               u64 size, i64 mtime (ms since the epoch)
//   2 OPEN   name            -> u32 handle, u64 size   (regular files only:
//                               a directory is EISDIR, others EINVAL)
//   3 READ   u32 handle, u32 max -> the next bytes, at most max (and 1 MiB);
//                               none at the end of the file
//   4 CLOSE  u32 handle      -> nothing
//   5 CREATE name            -> u32 handle: an empty temporary file
//                               ".NAME.webrepl-tmp-RANDOM" beside name (the
//                               directory must exist; a directory name is
//                               EISDIR)
//   6 WRITE  u32 handle, data -> nothing; appends data to the temporary file
//   7 COMMIT u32 handle      -> nothing; renames the temporary file over name
//   8 ABORT  u32 handle      -> nothing; removes the temporary file
//   9 SAVE   dir             -> nothing; copies every regular file and
//                               directory of the board (not /dev, /proc)
//                               into the host directory dir (UTF-8; it must
//                               exist, and should be empty), with their
//                               modification times: the board's flash, kept
//                               across a power cycle. --restore=dir brings
//                               them back in a new process. A host error
//                               (e.g. ENOSPC) is its errno; the host may
//                               find a partial copy in dir.
//
// Unplug and replug (internal/mpboard's Board.Unplug and Board.Replug): the
// host sends SAVE to a fresh host directory, kills the process, and later
// starts a new one with --restore=DIR. The board's files survive the
// simulated USB power cycle, as on flash; its Python state, open files and
// file channel handles do not. SAVE waits, as every request does, while a
// program computes without printing.
//
// A request longer than 1 MiB + 64 bytes, or an unknown op code, ends the
// channel (the board goes on without it), as does the host closing fd 3 or
// 4. An open file reads what it held when it was opened (or later writes
// to it), even if it is replaced or removed meanwhile.
//
// Limits of the port (see shared/reference/micropython-wasm.md): no machine,
// network, _webrepl or websocket module; a running program cannot be
// interrupted with Ctrl-C (it holds the event loop); input() has no stdin.

import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";

const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n";
const PYEXEC_FORCED_EXIT = 0x100;
const CTRL_A = 0x01;
const CTRL_B = 0x02;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const CTRL_E = 0x05;

const flags = new Set();
let restoreDir = null; // --restore=DIR
let fsCapacity = null; // --fs-capacity=N: bytes, or null for no limit
let inputBuffer = null; // --input-buffer=N: bytes, or null for no loss
let inputRate = 32000; // --input-rate=R: bytes per second
for (const f of process.argv.slice(2)) {
  if (f === "--boot-noise" || f === "--no-banner" || f === "--fs-channel") {
    flags.add(f);
  } else if (f.startsWith("--restore=") && f.length > "--restore=".length) {
    restoreDir = f.slice("--restore=".length);
  } else if (/^--fs-capacity=\d+$/.test(f)) {
    fsCapacity = Number(f.slice("--fs-capacity=".length));
  } else if (/^--input-buffer=\d+$/.test(f) && Number(f.slice("--input-buffer=".length)) >= 2) {
    inputBuffer = Number(f.slice("--input-buffer=".length));
  } else if (/^--input-rate=[1-9]\d*$/.test(f)) {
    inputRate = Number(f.slice("--input-rate=".length));
  } else {
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
  // A running program prints: serve the file channel, before the output
  // goes out, so that a request sent once the host has read the last
  // output of a program that then computes is not served (as firmware
  // that stopped polling).
  pollFilesSoon();
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

// hostTree presents the host directory root with the part of the Emscripten
// FS interface copyTree uses, so that copyTree saves a board's files to the
// host (SAVE) and restores them (--restore). Names below root are the
// board's absolute paths. Host symbolic links are not followed (lstat): they
// are neither files nor directories to copyTree.
function hostTree(root) {
  const at = (path) => (path === "/" ? root : root + path);
  const kind = (mode) => mode & fs.constants.S_IFMT;
  return {
    readdir: (dir) => fs.readdirSync(at(dir)),
    stat: (path) => fs.lstatSync(at(path)),
    isDir: (mode) => kind(mode) === fs.constants.S_IFDIR,
    isFile: (mode) => kind(mode) === fs.constants.S_IFREG,
    // A copy in a plain Uint8Array: MEMFS may keep a view of what it is
    // given, and a Buffer may share a pool.
    readFile: (path) => new Uint8Array(fs.readFileSync(at(path))),
    analyzePath: (path) => ({ exists: fs.existsSync(at(path)) }),
    mkdir: (path) => fs.mkdirSync(at(path)),
    writeFile: (path, data) => fs.writeFileSync(at(path), data),
    utime: (path, atime, mtime) => fs.utimesSync(at(path), atime / 1000, mtime / 1000),
  };
}

// The WebAssembly port raises OSError with Emscripten's errno values (a
// missing file is 44), while its errno module, and firmware, use
// MicroPython's (Linux's) numbering (ENOENT is 2). fixErrno wraps open() and
// the os functions that touch files so that their OSErrors carry the
// firmware's numbers, as code written for a board expects. It runs in every
// fresh interpreter, before /boot.py, and leaves no names behind.
const FIX_ERRNO = `
def _webrepl_fix_errno():
    import builtins, os
    m = {63: 1, 44: 2, 29: 5, 8: 9, 6: 11, 48: 12, 2: 13, 10: 16, 20: 17, 75: 18,
         43: 19, 54: 20, 31: 21, 28: 22, 33: 24, 22: 27, 51: 28, 69: 30, 37: 36, 55: 39}
    def wrap(f):
        def call(*a, **k):
            try:
                return f(*a, **k)
            except OSError as e:
                n = e.args[0] if e.args else None
                if type(n) is int and n in m:
                    raise OSError(m[n])
                raise
        return call
    builtins.open = wrap(builtins.open)
    for n in ("stat", "remove", "rename", "mkdir", "rmdir", "listdir", "ilistdir", "chdir", "statvfs"):
        if hasattr(os, n):
            setattr(os, n, wrap(getattr(os, n)))
_webrepl_fix_errno()
del _webrepl_fix_errno
`;

function fixErrno() {
  mp.runPython(FIX_ERRNO);
}

// ---- A full flash (--fs-capacity=N). ----

// FULL is the errno a write past the capacity fails with. Python sees the
// number an Emscripten ErrnoError carries unchanged when a file's write
// fails (fixErrno does not wrap file objects), so the error carries 28,
// ENOSPC in MicroPython's numbering, as on firmware, and not Emscripten's
// own ENOSPC (51). 28 is Emscripten's EINVAL: boardErrno tells errnoOf
// which errno the file channel must answer.
const FULL = 28;

function fullError() {
  const err = new mp.FS.ErrnoError(FULL);
  err.boardErrno = FULL;
  return err;
}

// limitFiles makes the current interpreter's file system refuse writes
// past fsCapacity. It patches the write operation that every MEMFS file
// shares, which it reaches through a file it creates and removes. It runs
// in every fresh interpreter, after the files of the old one are copied
// in.
function limitFiles() {
  if (fsCapacity === null) {
    return;
  }
  const FS = mp.FS;
  const probe = "/.mpboard-capacity-probe";
  FS.writeFile(probe, new Uint8Array(0));
  const s = FS.open(probe, "r");
  const ops = s.stream_ops;
  FS.close(s);
  FS.unlink(probe);
  const write = ops.write;
  ops.write = function (stream, buffer, offset, length, position, canOwn) {
    const grow = position + length - stream.node.usedBytes;
    if (grow > 0 && filesSize(FS, "/") + grow > fsCapacity) {
      throw fullError();
    }
    return write.call(this, stream, buffer, offset, length, position, canOwn);
  };
}

// filesSize sums the sizes of the regular files under dir; /dev and /proc
// are the runtime's. Symbolic links are not followed.
function filesSize(FS, dir) {
  let n = 0;
  for (const name of FS.readdir(dir)) {
    if (name === "." || name === "..") {
      continue;
    }
    const path = dir === "/" ? "/" + name : dir + "/" + name;
    if (path === "/dev" || path === "/proc") {
      continue;
    }
    const st = FS.lstat(path);
    if (FS.isDir(st.mode)) {
      n += filesSize(FS, path);
    } else if (FS.isFile(st.mode)) {
      n += st.size;
    }
  }
  return n;
}

// runBoot runs /boot.py, if present, in the fresh interpreter's __main__, as
// firmware does after a reset and at power-on. An exception is printed as a
// traceback (unless output is muted).
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
    if (err.type !== "SystemExit" && !muted) {
      emit(String(err.message).replace(/\r?\n/g, "\r\n"));
    }
  }
}

// ---- The file channel (--fs-channel): see the header. ----

const FS_IN = 3; // requests from the host
const FS_OUT = 4; // replies to the host
const OP_STAT = 1;
const OP_OPEN = 2;
const OP_READ = 3;
const OP_CLOSE = 4;
const OP_CREATE = 5;
const OP_WRITE = 6;
const OP_COMMIT = 7;
const OP_ABORT = 8;
const OP_SAVE = 9;
const MAX_READ = 1 << 20;
const MAX_REQUEST = MAX_READ + 64;
const MAX_HANDLES = 256;
const POLL_MS = 2; // how often a busy board looks for requests
const TEMP_INFIX = ".webrepl-tmp-";
// Emscripten's open flags (musl's values); its mode strings lack "wx".
const O_WRONLY = 0o1;
const O_CREAT = 0o100;
const O_EXCL = 0o200;

// Errno values on the wire: MicroPython's (and Linux's) numbers. Emscripten
// numbers its own differently (WASI's), so map by name.
const ERRNO = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13,
  EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, EMFILE: 24, EFBIG: 27, ENOSPC: 28, EROFS: 30, ENAMETOOLONG: 36,
  ENOTEMPTY: 39, ELOOP: 40,
};

class FileError extends Error {
  constructor(code) {
    super(code);
    this.errno = ERRNO[code];
  }
}

let files = null; // the request socket (fd 3), null when there is no channel
let filesBuf = Buffer.alloc(0); // request bytes not handled yet
let serving = false; // pollFiles is running
let lastPoll = 0;
const pollBuf = Buffer.alloc(1 << 16);
const handles = new Map(); // handle -> {read: true, fs, stream} or {tmp, name, size}
let nextHandle = 1;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function startFiles() {
  files = new net.Socket({ fd: FS_IN, readable: true, writable: false });
  // libuv has made fd 3 non-blocking, so pollFiles can also read it
  // synchronously while the event loop is held.
  files.on("readable", pollFiles);
  files.on("end", () => stopFiles("the host closed the request pipe"));
  files.on("error", (err) => stopFiles(`requests: ${err.message}`));
}

function stopFiles(why) {
  if (files === null) {
    return;
  }
  process.stderr.write(`mpboard: file channel closed: ${why}\n`);
  const f = files;
  files = null; // before destroy: fd 3 may be reused once closed
  f.destroy();
  try {
    fs.closeSync(FS_OUT);
  } catch {
    // already gone
  }
  for (const h of handles.values()) {
    if (h.read) {
      closeQuietly(h.fs, h.stream);
    } else {
      unlinkQuietly(h.tmp);
    }
  }
  handles.clear();
}

// pollFilesSoon serves the file channel unless it was served a moment ago:
// cheap enough to call for every byte.
function pollFilesSoon() {
  if (files !== null && Date.now() - lastPoll >= POLL_MS) {
    pollFiles();
  }
}

// pollFiles takes the request bytes there are (those the socket has
// buffered first, then those still in the pipe, to keep their order) and
// serves the complete requests. It never blocks for a request.
function pollFiles() {
  if (files === null || serving) {
    return;
  }
  serving = true;
  try {
    const chunks = [filesBuf];
    let chunk;
    while ((chunk = files.read()) !== null) {
      chunks.push(chunk);
    }
    for (;;) {
      let n;
      try {
        n = fs.readSync(FS_IN, pollBuf, 0, pollBuf.length, null);
      } catch (err) {
        if (err.code === "EAGAIN") {
          break;
        }
        throw err;
      }
      if (n === 0) {
        break; // the end: the socket reports it
      }
      chunks.push(Buffer.from(pollBuf.subarray(0, n)));
    }
    filesBuf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    while (files !== null && filesBuf.length >= 4) {
      const n = filesBuf.readUInt32LE(0);
      if (n < 1 || n > MAX_REQUEST) {
        stopFiles(`bad request length ${n}`);
        break;
      }
      if (filesBuf.length < 4 + n) {
        break;
      }
      const req = filesBuf.subarray(4, 4 + n);
      filesBuf = filesBuf.subarray(4 + n);
      const reply = serveRequest(req[0], req.subarray(1));
      if (reply === null) {
        stopFiles(`unknown op ${req[0]}`);
        break;
      }
      writeReply(reply);
    }
    if (filesBuf.length === 0) {
      filesBuf = Buffer.alloc(0); // drop the big buffer a slice kept
    }
  } catch (err) {
    stopFiles(err && err.stack ? err.stack : String(err));
  } finally {
    serving = false;
    lastPoll = Date.now();
  }
}

function writeReply(buf) {
  let off = 0;
  while (off < buf.length && files !== null) {
    try {
      off += fs.writeSync(FS_OUT, buf, off, buf.length - off);
    } catch (err) {
      if (err.code === "EAGAIN") {
        Atomics.wait(sleepCell, 0, 0, 1);
        continue;
      }
      stopFiles(`replies: ${err.message}`);
    }
  }
}

function reply(status, result) {
  const buf = Buffer.alloc(6 + result.length);
  buf.writeUInt32LE(2 + result.length, 0);
  buf.writeUInt16LE(status, 4);
  buf.set(result, 6);
  return buf;
}

// serveRequest returns the reply to one request, or null for an unknown op.
function serveRequest(op, args) {
  let result;
  try {
    switch (op) {
      case OP_STAT:
        result = fileStat(boardPath(args));
        break;
      case OP_OPEN:
        result = fileOpen(boardPath(args));
        break;
      case OP_READ:
        result = fileRead(handleArg(args, true), args.length >= 8 ? args.readUInt32LE(4) : 0);
        break;
      case OP_CLOSE: {
        const h = handleArg(args, true);
        handles.delete(args.readUInt32LE(0));
        h.fs.close(h.stream);
        result = Buffer.alloc(0);
        break;
      }
      case OP_CREATE:
        result = fileCreate(boardPath(args));
        break;
      case OP_WRITE: {
        const h = handleArg(args, false);
        // A copy in a plain Uint8Array: MEMFS may keep what it is given.
        const data = new Uint8Array(args.subarray(4));
        const s = mp.FS.open(h.tmp, "r+"); // the current interpreter's
        try {
          mp.FS.write(s, data, 0, data.length, h.size);
        } finally {
          mp.FS.close(s);
        }
        h.size += data.length;
        result = Buffer.alloc(0);
        break;
      }
      case OP_COMMIT: {
        const h = handleArg(args, false);
        handles.delete(args.readUInt32LE(0));
        try {
          mp.FS.rename(h.tmp, h.name);
        } catch (err) {
          unlinkQuietly(h.tmp);
          throw err;
        }
        result = Buffer.alloc(0);
        break;
      }
      case OP_ABORT: {
        const h = handleArg(args, false);
        handles.delete(args.readUInt32LE(0));
        unlinkQuietly(h.tmp);
        result = Buffer.alloc(0);
        break;
      }
      case OP_SAVE:
        copyTree(mp.FS, hostTree(hostDir(args)), "/");
        result = Buffer.alloc(0);
        break;
      default:
        return null;
    }
  } catch (err) {
    return reply(errnoOf(err), Buffer.alloc(0));
  }
  return reply(0, result);
}

function errnoOf(err) {
  if (err instanceof FileError) {
    return err.errno;
  }
  if (err && typeof err.boardErrno === "number") {
    return err.boardErrno; // a full flash (limitFiles)
  }
  if (err && err.name === "ErrnoError" && ERRNO[err.code] !== undefined) {
    return ERRNO[err.code];
  }
  if (err && typeof err.syscall === "string" && ERRNO[err.code] !== undefined) {
    // Node's own file system (SAVE writes to the host): its errno by name.
    process.stderr.write(`mpboard: file channel: ${err.message}\n`);
    return ERRNO[err.code];
  }
  if (err instanceof RangeError) {
    return ERRNO.ENOSPC; // out of memory, as a full flash
  }
  process.stderr.write(`mpboard: file channel: ${err && err.stack ? err.stack : err}\n`);
  return ERRNO.EIO;
}

// boardPath turns a name from the host into an absolute MEMFS path.
function boardPath(bytes) {
  let name;
  try {
    name = utf8.decode(bytes);
  } catch {
    throw new FileError("EINVAL");
  }
  if (name === "") {
    throw new FileError("ENOENT");
  }
  if (name.includes("\0")) {
    throw new FileError("EINVAL");
  }
  return name.startsWith("/") ? name : "/" + name;
}

// hostDir decodes SAVE's argument: a host directory.
function hostDir(bytes) {
  let dir;
  try {
    dir = utf8.decode(bytes);
  } catch {
    throw new FileError("EINVAL");
  }
  if (dir === "" || dir.includes("\0")) {
    throw new FileError("EINVAL");
  }
  return dir;
}

function handleArg(args, read) {
  if (args.length < 4) {
    throw new FileError("EINVAL");
  }
  const h = handles.get(args.readUInt32LE(0));
  if (h === undefined || h.read !== read) {
    throw new FileError("EBADF");
  }
  return h;
}

function newHandle(h) {
  if (handles.size >= MAX_HANDLES) {
    throw new FileError("EMFILE");
  }
  while (handles.has(nextHandle) || nextHandle === 0) {
    nextHandle = (nextHandle + 1) >>> 0;
  }
  const id = nextHandle;
  nextHandle = (nextHandle + 1) >>> 0;
  handles.set(id, h);
  return id;
}

function fileStat(path) {
  const st = mp.FS.stat(path);
  const out = Buffer.alloc(17);
  out.writeUInt8(mp.FS.isFile(st.mode) ? 1 : mp.FS.isDir(st.mode) ? 2 : 3, 0);
  out.writeBigUInt64LE(BigInt(st.size), 1);
  out.writeBigInt64LE(BigInt(st.mtime.getTime()), 9);
  return out;
}

function fileOpen(path) {
  const FS = mp.FS;
  const st = FS.stat(path);
  if (FS.isDir(st.mode)) {
    throw new FileError("EISDIR");
  }
  if (!FS.isFile(st.mode)) {
    throw new FileError("EINVAL");
  }
  const stream = FS.open(path, "r");
  let id;
  try {
    id = newHandle({ read: true, fs: FS, stream });
  } catch (err) {
    FS.close(stream);
    throw err;
  }
  const out = Buffer.alloc(12);
  out.writeUInt32LE(id, 0);
  out.writeBigUInt64LE(BigInt(st.size), 4);
  return out;
}

function fileRead(h, max) {
  const buf = Buffer.alloc(Math.min(max, MAX_READ));
  const n = h.fs.read(h.stream, buf, 0, buf.length);
  return buf.subarray(0, n);
}

function fileCreate(path) {
  const FS = mp.FS;
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash);
  const base = path.slice(slash + 1);
  if (base === "" || base === "." || base === "..") {
    throw new FileError("EISDIR");
  }
  let st = null;
  try {
    st = FS.stat(path);
  } catch (err) {
    if (err.name !== "ErrnoError" || err.code !== "ENOENT") {
      throw err;
    }
  }
  if (st !== null && FS.isDir(st.mode)) {
    throw new FileError("EISDIR");
  }
  const tmp = `${dir}/.${base}${TEMP_INFIX}${crypto.randomBytes(6).toString("hex")}`;
  FS.close(FS.open(tmp, O_WRONLY | O_CREAT | O_EXCL));
  try {
    const id = newHandle({ read: false, tmp, name: path, size: 0 });
    const out = Buffer.alloc(4);
    out.writeUInt32LE(id, 0);
    return out;
  } catch (err) {
    unlinkQuietly(tmp);
    throw err;
  }
}

function closeQuietly(FS, stream) {
  try {
    FS.close(stream);
  } catch {
    // closed already
  }
}

function unlinkQuietly(path) {
  try {
    mp.FS.unlink(path);
  } catch {
    // gone already
  }
}

async function softReset() {
  flush();
  emit("MPY: soft reboot\r\n");
  const old = mp;
  mp = await load();
  copyTree(old.FS, mp.FS, "/");
  fixErrno();
  limitFiles();
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
if (restoreDir !== null) {
  try {
    copyTree(hostTree(restoreDir), mp.FS, "/");
  } catch (err) {
    process.stderr.write(`mpboard: restore from ${restoreDir}: ${err && err.stack ? err.stack : err}\n`);
    process.exit(70);
  }
}
if (flags.has("--fs-channel")) {
  startFiles();
}
muted = flags.has("--no-banner");
fixErrno();
limitFiles();
runBoot();
mp.replInit();
muted = false;
flush();
process.stderr.write(`mpboard: ready ${outTotal}\n`);

// ---- Input: one byte at a time, in order. ----

let ended = false; // stdin has ended (or failed)
let wake = null; // resolves waitInput's promise

function wakeUp() {
  if (wake) {
    wake();
  }
}

// waitInput returns once stdin has delivered bytes or ended.
async function waitInput() {
  await new Promise((resolve) => {
    wake = resolve;
  });
  wake = null;
}

process.stdin.on("end", () => {
  ended = true;
  wakeUp();
});
process.stdin.on("error", (err) => {
  process.stderr.write(`mpboard: stdin: ${err.message}\n`);
  ended = true;
  wakeUp();
});

// feedQueued feeds every byte from stdin to the REPL, losing none: while
// much waits, it stops reading stdin (flow control, as a UART's FIFO
// gives).
async function feedQueued() {
  const queue = [];
  let queued = 0;
  const HIGH_WATER = 1 << 16;
  process.stdin.on("data", (chunk) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued > HIGH_WATER) {
      process.stdin.pause();
    }
    wakeUp();
  });
  for (;;) {
    while (queue.length > 0) {
      const chunk = queue.shift();
      for (const c of chunk) {
        await feed(c);
        flush();
        pollFilesSoon();
      }
      queued -= chunk.length;
      if (queued <= HIGH_WATER && process.stdin.isPaused()) {
        process.stdin.resume();
      }
    }
    if (ended) {
      return;
    }
    await waitInput();
  }
}

// HEARTBEAT_MS is how often the harness notes that it runs when it has
// an input buffer, and STALL_SLACK_MS how late a timer may fire without that
// being a stall of the host (see InputBuffer).
const HEARTBEAT_MS = 4;
const STALL_SLACK_MS = 2;

// CATCH_UP_MS is the most of the board's time that InputBuffer counts as
// spent taking bytes the harness has not fed yet: enough for a host that
// writes 128 bytes every 10 ms to get through a stall of Node of 70 ms or
// so, little enough that a write of a few kB at once is cut whenever it
// comes.
const CATCH_UP_MS = 32;

// InputBuffer is a board's input buffer (--input-buffer): size bytes that
// hold at most size-1, as MicroPython's ringbuf_t (py/ringbuf.h), which the
// REPL takes from at most rate bytes per second.
//
// Whether a byte fits is decided when it arrives, on the board's clock: the
// bytes the REPL would have taken by then (the feeding loop may lag a
// little behind, e.g. a timer that fires late) count as taken already. And
// a board runs all the time, while the harness does not when the host
// starves Node of the CPU: input that came meanwhile arrives all at once.
// So when the harness finds it has not run for a while (a heartbeat fires
// late) and input arrives just then at an idle REPL, the board is taken to
// have started on it when the stall began; and a byte that took the
// interpreter long counts as the board's time only as far as it used the
// CPU (or slept: the event loop turned meanwhile), a stall in the middle of
// it being the host's. Either way the board's time made up for is at most
// CATCH_UP_MS: a write of a few kB at once is cut all the same, stall or
// not.
class InputBuffer {
  constructor(size, rate) {
    this.size = size;
    this.perByte = 1000 / rate; // ms of the board's time per byte
    this.buf = new Uint8Array(Math.max(size, 4096)); // grows past size only for bytes counted as taken
    this.head = 0;
    this.len = 0;
    this.next = 0; // when (performance.now()) the REPL may take the next byte
    this.seen = performance.now(); // when the harness last noted it ran
    this.stall = 0; // ms of the last stall of the host
    this.stallEnd = -Infinity; // when it ended
    this.feeding = false; // the REPL is handling a byte (e.g. running code that sleeps)
  }

  // ran notes that the harness runs at now, and a stall if it had not run
  // for longer than the heartbeat allows.
  ran(now) {
    const stall = now - this.seen - HEARTBEAT_MS - STALL_SLACK_MS;
    this.seen = now;
    if (stall > 0) {
      this.stall = stall;
      this.stallEnd = now;
    }
  }

  // fed notes that the REPL handled a byte from start to done, using cpu ms
  // of the CPU, and returns how much of the board's time that took: all of
  // it if the event loop turned meanwhile (the code slept), otherwise only
  // the CPU time, the rest being a stall of the host, which ran notes next.
  fed(start, done, cpu) {
    const work = this.seen > start ? done - start : Math.min(done - start, cpu);
    this.seen = Math.max(this.seen, start + work);
    return work;
  }

  // arrive stores the bytes of chunk that fit and returns how many did not.
  arrive(chunk, now) {
    this.ran(now);
    if (this.len === 0 && !this.feeding) {
      // An idle REPL starts on these bytes now, or when a stall that ended
      // just now began.
      const stall = now - this.stallEnd <= HEARTBEAT_MS + STALL_SLACK_MS ? this.stall : 0;
      this.next = Math.max(this.next, now - Math.min(stall, CATCH_UP_MS));
    }
    this.stall = 0;
    // A REPL that is running code takes nothing meanwhile.
    const behind = Math.min(now - this.next, CATCH_UP_MS);
    const taken = this.feeding ? 0 : Math.max(0, Math.floor(behind / this.perByte));
    let lost = 0;
    for (const c of chunk) {
      if (this.len - Math.min(taken, this.len) >= this.size - 1) {
        lost++;
        continue;
      }
      if (this.len === this.buf.length) {
        this.grow();
      }
      this.buf[(this.head + this.len) % this.buf.length] = c;
      this.len++;
    }
    return lost;
  }

  grow() {
    const bigger = new Uint8Array(this.buf.length * 2);
    for (let k = 0; k < this.len; k++) {
      bigger[k] = this.buf[(this.head + k) % this.buf.length];
    }
    this.buf = bigger;
    this.head = 0;
  }

  // take removes and returns the oldest byte; the buffer must not be empty.
  take() {
    const c = this.buf[this.head];
    this.head = (this.head + 1) % this.buf.length;
    this.len--;
    return c;
  }
}

// feedBuffered feeds stdin to the REPL through an input buffer of size
// bytes, at most rate bytes per second, losing what does not fit: see
// "Input buffer" in the header and InputBuffer.
async function feedBuffered(size, rate) {
  const input = new InputBuffer(size, rate);
  process.stdin.on("data", (chunk) => {
    const lost = input.arrive(chunk, performance.now());
    if (lost > 0) {
      process.stderr.write(`mpboard: input buffer full: dropped ${lost} of ${chunk.length} bytes\n`);
    }
    wakeUp();
  });
  const heartbeat = setInterval(() => input.ran(performance.now()), HEARTBEAT_MS);
  let turned = performance.now(); // when the event loop last turned
  let turnedCpu = process.cpuUsage(); // the CPU time used by then
  try {
    for (;;) {
      if (input.len === 0) {
        flush();
        if (ended) {
          return;
        }
        await waitInput();
        turned = performance.now();
        turnedCpu = process.cpuUsage();
        continue;
      }
      const now = performance.now();
      if (input.next > now || now - turned >= 1) {
        // Let the event loop turn, so that bytes arrive when they come, at
        // least every millisecond, and wait until the board is ready for
        // the next byte.
        flush();
        const wait = input.next - now;
        await new Promise((resolve) => (wait > 0 ? setTimeout(resolve, wait) : setImmediate(resolve)));
        turned = performance.now();
        turnedCpu = process.cpuUsage();
        continue;
      }
      // The byte's turn came at input.next, perhaps before now: the board
      // catches up on what it would have taken meanwhile.
      input.ran(now);
      input.feeding = true;
      try {
        await feed(input.take());
      } finally {
        input.feeding = false;
      }
      pollFilesSoon();
      const done = performance.now();
      // Only a long feed may hide a stall; its CPU time is bounded by the
      // CPU time since the event loop turned (asking is not cheap).
      let cpu = done - now;
      if (cpu >= 1) {
        const used = process.cpuUsage(turnedCpu);
        cpu = (used.user + used.system) / 1000;
      }
      input.next += Math.max(input.perByte, input.fed(now, done, cpu));
    }
  } finally {
    clearInterval(heartbeat);
  }
}

try {
  if (inputBuffer === null) {
    await feedQueued();
  } else {
    await feedBuffered(inputBuffer, inputRate);
  }
} catch (err) {
  flush();
  process.stderr.write(`mpboard: interpreter failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(70);
}
flush();
process.exit(0);
