package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"

	"webrepl/protocol"
	"webrepl/protocol/remote"
	"webrepl/transport"
)

// Board commands: each is a small function over remote.Board.

func noVerifyFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "no-verify", Usage: "skip the SHA-256 check of files written to the board"}
}

func jsonFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "json", Usage: "print JSON for machines"}
}

func boardCommands(a *app) []*ucli.Command {
	return []*ucli.Command{
		{
			Name: "ls", Usage: "list a directory on the board", ArgsUsage: "[:PATH]",
			Flags: []ucli.Flag{
				&ucli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "show sizes"},
				&ucli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "list subdirectories too"},
				jsonFlag(),
			},
			Action: a.ls,
		},
		{Name: "stat", Usage: "show a file's size and kind", ArgsUsage: ":PATH", Flags: []ucli.Flag{jsonFlag()}, Action: a.stat},
		{Name: "cat", Usage: "print files from the board", ArgsUsage: ":PATH...", Action: a.cat},
		{
			Name: "cp", Usage: "copy files between here and the board (':' marks the board's side)", ArgsUsage: "SRC... DST",
			Flags:  []ucli.Flag{&ucli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "copy directories"}, noVerifyFlag()},
			Action: a.cp,
		},
		{
			Name: "rm", Usage: "remove files on the board", ArgsUsage: ":PATH...",
			Flags:  []ucli.Flag{&ucli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "remove directories and their contents"}},
			Action: a.rm,
		},
		{
			Name: "mkdir", Usage: "make directories on the board", ArgsUsage: ":PATH...",
			Flags:  []ucli.Flag{&ucli.BoolFlag{Name: "parents", Aliases: []string{"p"}, Usage: "make parent directories as needed; no error if it exists"}},
			Action: a.mkdir,
		},
		{Name: "rmdir", Usage: "remove empty directories on the board", ArgsUsage: ":PATH...", Action: a.each("rmdir", func(ctx context.Context, b *remote.Board, p string) error { return b.Rmdir(ctx, p) })},
		{Name: "touch", Usage: "create empty files on the board (existing ones are kept)", ArgsUsage: ":PATH...", Action: a.each("touch", func(ctx context.Context, b *remote.Board, p string) error { return b.Touch(ctx, p) })},
		{Name: "mv", Usage: "rename a file or directory on the board", ArgsUsage: ":FROM :TO", Action: a.mv},
		{Name: "tree", Usage: "show a directory tree on the board", ArgsUsage: "[:PATH]", Flags: []ucli.Flag{jsonFlag()}, Action: a.tree},
		{Name: "sha256sum", Usage: "SHA-256 of files on the board (computed there)", ArgsUsage: ":PATH...", Flags: []ucli.Flag{jsonFlag()}, Action: a.sha256sum},
		{Name: "df", Usage: "size and free space of the board's filesystem", ArgsUsage: "[:PATH]", Flags: []ucli.Flag{jsonFlag()}, Action: a.df},
		{Name: "exec", Usage: "run Python code on the board", ArgsUsage: "CODE", Action: a.execCmd},
		{Name: "eval", Usage: "evaluate a Python expression on the board and print its repr", ArgsUsage: "EXPR", Action: a.evalCmd},
		{Name: "run", Usage: "run a local Python file on the board (from RAM)", ArgsUsage: "FILE", Action: a.run},
		{
			Name: "reset", Usage: "restart the board: soft (Ctrl-D) by default",
			Flags:  []ucli.Flag{&ucli.BoolFlag{Name: "hard", Usage: "reset the whole board: by DTR/RTS when the device is a webrepl bridge, otherwise machine.reset()"}},
			Action: a.reset,
		},
	}
}

// remoteArg strips the ':' that marks a board path; board-only commands
// accept paths with or without it.
func remoteArg(s string) string { return strings.TrimPrefix(s, ":") }

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.io.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) ls(c *ucli.Context) error {
	if c.Args().Len() > 1 {
		return &UsageError{Msg: "ls takes at most one path"}
	}
	p := optionalPath(c)
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		var es []remote.Entry
		var err error
		if c.Bool("recursive") {
			es, err = b.Tree(ctx, p)
		} else {
			es, err = b.List(ctx, p)
		}
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(append([]remote.Entry{}, es...)) // [] rather than null
		}
		for _, e := range es {
			name := e.Name
			if e.IsDir {
				name += "/"
			}
			if c.Bool("long") {
				if e.IsDir {
					fmt.Fprintf(a.io.Stdout, "%10s %s\n", "-", name)
				} else {
					fmt.Fprintf(a.io.Stdout, "%10d %s\n", e.Size, name)
				}
				continue
			}
			fmt.Fprintln(a.io.Stdout, name)
		}
		return nil
	})
}

func (a *app) stat(c *ucli.Context) error {
	if c.Args().Len() != 1 {
		return &UsageError{Msg: "stat takes one path"}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		e, err := b.Stat(ctx, remoteArg(c.Args().First()))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(e)
		}
		kind := "file"
		if e.IsDir {
			kind = "directory"
		}
		fmt.Fprintf(a.io.Stdout, "%s %s %d bytes\n", remoteArg(c.Args().First()), kind, e.Size)
		return nil
	})
}

func (a *app) cat(c *ucli.Context) error {
	if c.Args().Len() == 0 {
		return &UsageError{Msg: "cat takes one or more paths"}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		for _, p := range c.Args().Slice() {
			if err := b.Cat(ctx, remoteArg(p), a.io.Stdout); err != nil {
				return err
			}
		}
		return nil
	})
}

// each runs fn on every path argument.
func (a *app) each(name string, fn func(ctx context.Context, b *remote.Board, p string) error) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if c.Args().Len() == 0 {
			return &UsageError{Msg: name + " takes one or more paths"}
		}
		return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
			for _, p := range c.Args().Slice() {
				if err := fn(ctx, b, remoteArg(p)); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

func (a *app) rm(c *ucli.Context) error {
	r := c.Bool("recursive")
	return a.each("rm", func(ctx context.Context, b *remote.Board, p string) error { return b.Remove(ctx, p, r) })(c)
}

func (a *app) mkdir(c *ucli.Context) error {
	parents := c.Bool("parents")
	return a.each("mkdir", func(ctx context.Context, b *remote.Board, p string) error { return b.Mkdir(ctx, p, parents) })(c)
}

func (a *app) mv(c *ucli.Context) error {
	if c.Args().Len() != 2 {
		return &UsageError{Msg: "mv takes :FROM :TO"}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		return b.Rename(ctx, remoteArg(c.Args().Get(0)), remoteArg(c.Args().Get(1)))
	})
}

func (a *app) tree(c *ucli.Context) error {
	p := optionalPath(c)
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		es, err := b.Tree(ctx, p)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(append([]remote.Entry{}, es...)) // [] rather than null
		}
		fmt.Fprintln(a.io.Stdout, p)
		for _, e := range es {
			depth := strings.Count(e.Name, "/")
			name := path.Base(e.Name)
			if e.IsDir {
				fmt.Fprintf(a.io.Stdout, "%s%s/\n", strings.Repeat("  ", depth+1), name)
			} else {
				fmt.Fprintf(a.io.Stdout, "%s%s (%d)\n", strings.Repeat("  ", depth+1), name, e.Size)
			}
		}
		return nil
	})
}

func (a *app) sha256sum(c *ucli.Context) error {
	if c.Args().Len() == 0 {
		return &UsageError{Msg: "sha256sum takes one or more paths"}
	}
	type sum struct {
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
	}
	var sums []sum
	err := a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		for _, p := range c.Args().Slice() {
			s, err := b.Sha256(ctx, remoteArg(p))
			if err != nil {
				return err
			}
			sums = append(sums, sum{remoteArg(p), s})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return a.printJSON(sums)
	}
	for _, s := range sums {
		fmt.Fprintf(a.io.Stdout, "%s  %s\n", s.SHA256, s.Path)
	}
	return nil
}

// optionalPath is the board path argument of ls, tree and df: "/" when
// there is none.
func optionalPath(c *ucli.Context) string {
	if c.Args().Len() > 0 {
		return remoteArg(c.Args().First())
	}
	return "/"
}

func (a *app) df(c *ucli.Context) error {
	p := optionalPath(c)
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		u, err := b.Df(ctx, p)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(u)
		}
		used := u.Total - u.Free
		pct := int64(0)
		if u.Total > 0 {
			pct = used * 100 / u.Total
		}
		fmt.Fprintf(a.io.Stdout, "%-10s %12s %12s %12s %5s\n", "path", "size", "used", "free", "use%")
		fmt.Fprintf(a.io.Stdout, "%-10s %12d %12d %12d %4d%%\n", u.Path, u.Total, used, u.Free, pct)
		return nil
	})
}

func (a *app) execCmd(c *ucli.Context) error {
	if c.Args().Len() != 1 {
		return &UsageError{Msg: "exec takes the code as one argument (quote it)"}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		return b.Exec(ctx, c.Args().First(), a.io.Stdout)
	})
}

func (a *app) evalCmd(c *ucli.Context) error {
	if c.Args().Len() != 1 {
		return &UsageError{Msg: "eval takes the expression as one argument (quote it)"}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		v, err := b.Eval(ctx, c.Args().First())
		if err != nil {
			return err
		}
		fmt.Fprintln(a.io.Stdout, v)
		return nil
	})
}

func (a *app) run(c *ucli.Context) error {
	if c.Args().Len() != 1 {
		return &UsageError{Msg: "run takes one local file"}
	}
	code, err := os.ReadFile(c.Args().First())
	if err != nil {
		return fmt.Errorf("webrepl: run: %w", err)
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		return b.Exec(ctx, string(code), a.io.Stdout)
	})
}

func (a *app) reset(c *ucli.Context) error {
	if c.Bool("hard") {
		addr, _ := lookup(c, "device")
		if parsed, err := transport.ParseAddress(addr); err == nil && (parsed.Scheme == "ws" || parsed.Scheme == "wss") {
			return a.bridgeReset(c, parsed)
		}
	}
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		return b.Reset(ctx, c.Bool("hard"))
	})
}

// cp copies between the host and the board; ':' marks the board's side.
func (a *app) cp(c *ucli.Context) error {
	args := c.Args().Slice()
	if len(args) < 2 {
		return &UsageError{Msg: "cp takes SRC... DST, with ':' marking the board's side (e.g. cp main.py :)"}
	}
	srcs, dst := args[:len(args)-1], args[len(args)-1]
	_, dstRemote := remotePath(dst)
	for _, s := range srcs {
		if _, r := remotePath(s); r == dstRemote {
			return &UsageError{Msg: fmt.Sprintf("cp: %s and %s are on the same side; mark the board's side with ':'", s, dst)}
		}
	}
	recursive := c.Bool("recursive")
	return a.withBoard(c, func(ctx context.Context, b *remote.Board) error {
		for _, s := range srcs {
			var err error
			if dstRemote {
				err = a.upload(ctx, b, s, remoteArg(dst), len(srcs) > 1, recursive)
			} else {
				err = a.download(ctx, b, remoteArg(s), dst, recursive)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// upload copies the local src to the board's dst. A dst that is "", ends
// with "/", names a directory on the board or receives several sources
// keeps src's name.
func (a *app) upload(ctx context.Context, b *remote.Board, src, dst string, many, recursive bool) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("webrepl: cp: %w", err)
	}
	into := dst == "" || strings.HasSuffix(dst, "/") || many
	if !into {
		if into, err = b.IsDir(ctx, dst); err != nil {
			return err
		}
	}
	if into {
		dst = path.Join(dst, filepath.Base(src))
	}
	if !st.IsDir() {
		return a.putFile(ctx, b, src, dst, st.Size())
	}
	if !recursive {
		return fmt.Errorf("webrepl: cp: %s is a directory (use -r)", src)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := path.Join(dst, filepath.ToSlash(rel))
		if d.IsDir() {
			return b.Mkdir(ctx, target, true)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return a.putFile(ctx, b, p, target, info.Size())
	})
}

func (a *app) putFile(ctx context.Context, b *remote.Board, local, remotePath string, n int64) error {
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("webrepl: put: %w", err)
	}
	defer f.Close()
	progress, done := a.progress(filepath.Base(local), n)
	if err := b.Put(ctx, remotePath, f, n, progress); err != nil {
		return err
	}
	done()
	return nil
}

// download copies the board's src to the local dst. A dst that is an
// existing directory keeps src's name.
func (a *app) download(ctx context.Context, b *remote.Board, src, dst string, recursive bool) error {
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		dst = filepath.Join(dst, path.Base(src))
	}
	isDir, err := b.IsDir(ctx, src)
	if err != nil {
		return err
	}
	if !isDir {
		return a.getFile(ctx, b, src, dst)
	}
	if !recursive {
		return fmt.Errorf("webrepl: cp: :%s is a directory (use -r)", src)
	}
	es, err := b.Tree(ctx, src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("webrepl: cp: %w", err)
	}
	for _, e := range es {
		target := filepath.Join(dst, filepath.FromSlash(e.Name))
		if e.IsDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("webrepl: cp: %w", err)
			}
			continue
		}
		if err := a.getFile(ctx, b, path.Join(src, e.Name), target); err != nil {
			return err
		}
	}
	return nil
}

// getFile writes the board's file src to the local path dst ("-" is
// standard output) through a temporary file renamed at the end, so that a
// failed transfer never leaves a truncated file.
func (a *app) getFile(ctx context.Context, b *remote.Board, src, dst string) error {
	if dst == "-" {
		_, err := b.Get(ctx, src, a.io.Stdout)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return fmt.Errorf("webrepl: get: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = b.Get(ctx, src, tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("webrepl: get: %w", cerr)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("webrepl: get: %w", err)
	}
	return nil
}

// bridgeReset asks a bridge to hard-reset its board through DTR/RTS
// (POST /api/reset, with the TLS settings of the WebSocket dial). Only
// when the device cannot do that does it run machine.reset() instead (see
// resetAnswer); a refused password or origin, a TLS error or no answer is
// an error.
func (a *app) bridgeReset(c *ucli.Context, addr transport.Address) error {
	password, err := a.password(c)
	if err != nil {
		return err
	}
	tlsConf, err := tlsConfig(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	fallback, err := postReset(ctx, addr, password, tlsConf)
	if err != nil {
		return err
	}
	if fallback != "" {
		fmt.Fprintf(a.io.Stderr, "webrepl: reset: %s: running machine.reset() instead\n", fallback)
		return a.withBoard(c, func(ctx context.Context, b *remote.Board) error { return b.Reset(ctx, true) })
	}
	return nil
}

// postReset sends POST /api/reset for the board of addr. A non-empty
// fallback says why the device cannot reset the board that way.
func postReset(ctx context.Context, addr transport.Address, password string, tlsConf *tls.Config) (fallback string, err error) {
	scheme := "http"
	if addr.Scheme == "wss" {
		scheme = "https"
	}
	board, _, _ := strings.Cut(strings.TrimPrefix(addr.Path, "/"), "?")
	u := scheme + "://" + addr.Host + "/api/reset?board=" + url.QueryEscape(board)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", fmt.Errorf("webrepl: reset: %w", err)
	}
	// Basic keeps every byte of the password (a Bearer token loses
	// spaces at its end).
	req.SetBasicAuth("webrepl", password)
	tr := &http.Transport{TLSClientConfig: tlsConf}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		// WebREPL firmware may hang up on a request that is not a
		// WebSocket handshake. It never speaks TLS.
		if addr.Scheme == "ws" && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return "the device is not a bridge (it hung up)", nil
		}
		return "", fmt.Errorf("webrepl: reset: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resetAnswer(resp.StatusCode, strings.TrimSpace(string(body)))
}

// resetAnswer reads the answer to POST /api/reset. The bridge answers
// 200 "reset" when it has reset the board, 501 when the port has no
// DTR/RTS, 404 "no board named ..." for an unknown board. A device that is
// not a bridge has no such endpoint: an HTTP server answers 404 or 405, a
// WebREPL server 400 (it speaks WebSocket only), and WebREPL firmware its
// page (200) to any request that is not a WebSocket handshake. Those
// (fallback not empty) call for machine.reset(); any other answer is an
// error.
func resetAnswer(status int, msg string) (fallback string, err error) {
	switch status {
	case http.StatusOK:
		if msg == "reset" {
			return "", nil
		}
		return "the device is not a bridge", nil
	case http.StatusNotImplemented:
		return "the bridge cannot pulse DTR/RTS on this port (" + msg + ")", nil
	case http.StatusNotFound:
		if strings.HasPrefix(msg, "no board named") {
			return "", fmt.Errorf("webrepl: reset: the bridge says: %s", msg)
		}
		return "the device is not a bridge", nil
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return "the device is not a bridge", nil
	case http.StatusUnauthorized:
		return "", fmt.Errorf("webrepl: reset: the bridge refused the password: %w", protocol.ErrAccessDenied)
	}
	return "", fmt.Errorf("webrepl: reset: the bridge answered %d %s: %s", status, http.StatusText(status), msg)
}
