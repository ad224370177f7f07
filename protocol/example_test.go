package protocol_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"webrepl/protocol"
)

// The GET request for /test.txt, as in reference/webrepl.md §6.3 G1.
func ExampleAppendRequest() {
	b, err := protocol.AppendRequest(nil, protocol.Request{Op: protocol.OpGet, Name: "/test.txt"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% x\n", b[:27])
	fmt.Println(len(b), "bytes")
	// Output:
	// 57 41 02 00 00 00 00 00 00 00 00 00 00 00 00 00 09 00 2f 74 65 73 74 2e 74 78 74
	// 82 bytes
}

// Names are never cut to fit.
func ExampleAppendRequest_nameTooLong() {
	name := "/" + strings.Repeat("x", 63)
	_, err := protocol.AppendRequest(nil, protocol.Request{Op: protocol.OpPut, Name: name})
	fmt.Println(err)
	fmt.Println(errors.Is(err, protocol.ErrNameTooLong))
	// Output:
	// webrepl: file name too long: 64 bytes, at most 63 fit in a request
	// true
}

func ExampleDecodeRequest() {
	b, _ := protocol.Request{Op: protocol.OpPut, Size: 10, Name: "/test.txt"}.MarshalBinary()
	req, err := protocol.DecodeRequest(b)
	fmt.Printf("%v %q %d %v\n", req.Op, req.Name, req.Size, err)
	// Output:
	// put "/test.txt" 10 <nil>
}

func ExampleDecodeReply() {
	status, err := protocol.DecodeReply([]byte{'W', 'B', 0, 0})
	fmt.Println(status, err)
	_, err = protocol.DecodeReply([]byte{'X', 'Y', 0, 0})
	fmt.Println(err)
	// Output:
	// 0 <nil>
	// webrepl: protocol error: status reply starts with "XY", want "WB"
}

func ExampleDecodeVersion() {
	v, err := protocol.DecodeVersion([]byte{0x01, 0x13, 0x01})
	fmt.Println(v, err)
	// Output:
	// 1.19.1 <nil>
}

func ExampleAppendChunk() {
	b, _ := protocol.AppendChunk(nil, []byte("0123456789"))
	fmt.Printf("% x\n", b)
	n, _ := protocol.DecodeChunkHeader(b[:protocol.ChunkHeaderSize])
	fmt.Println(n)
	// Output:
	// 0a 00 30 31 32 33 34 35 36 37 38 39
	// 10
}

func ExampleStatusError() {
	var err error = &protocol.StatusError{Op: protocol.OpGet, Name: "/x.py", Code: protocol.ENOENT}
	fmt.Println(err)
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	fmt.Println(protocol.ErrorStatus(fs.ErrPermission))
	// Output:
	// webrepl: get /x.py: device status 2 (ENOENT: no such file or directory)
	// true
	// 13
}

// A client session. The link comes from package transport.
func ExampleLogin() {
	var link protocol.Link // for example a dialled WebSocket
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := protocol.Login(ctx, link, "secret", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	f, err := os.Create("main.py")
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := c.Get(ctx, "/main.py", f, nil); err != nil {
		fmt.Println(err)
	}
}

// A device emulator serving a directory.
func ExampleNewDevice() {
	var link protocol.Link // for example an accepted WebSocket
	dir, err := protocol.DirFS("board")
	if err != nil {
		return
	}
	defer dir.Close()
	d, err := protocol.NewDevice(link, &protocol.DeviceOptions{Password: "secret", FS: dir, Extended: true})
	if err != nil {
		return
	}
	fmt.Println(d.Serve(context.Background()))
}
