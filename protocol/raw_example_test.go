package protocol_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"time"

	"webrepl/protocol"
)

// Run code on a board whose REPL is reachable over TCP (a serial port
// adapter, or a WebREPL session's *Client, works the same way).
func ExampleEnterRaw() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := net.Dial("tcp", "192.168.4.1:2323")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	r, err := protocol.EnterRaw(ctx, conn, &protocol.RawOptions{SoftReset: true})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Exit(ctx)

	if err := r.Exec(ctx, []byte("import os\nprint(os.listdir('/'))\n"), os.Stdout); err != nil {
		log.Fatal(err)
	}
	v, err := r.Eval(ctx, "1+2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("1+2 = %s\n", v)

	_, err = r.ExecCapture(ctx, []byte("open('/missing')"))
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Println("no such file:", err)
	}
}

func ExampleExecError() {
	// What Raw.Exec returns for "OSError: [Errno 2] ENOENT".
	err := error(&protocol.ExecError{Type: "OSError", Message: "[Errno 2] ENOENT", Errno: 2})
	var ee *protocol.ExecError
	fmt.Println(err)
	fmt.Println(errors.Is(err, fs.ErrNotExist), errors.As(err, &ee) && ee.Type == "OSError")
	// Output:
	// webrepl: board: OSError: [Errno 2] ENOENT
	// true true
}
