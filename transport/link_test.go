package transport_test

import (
	"webrepl/protocol"
	"webrepl/transport"
)

// *transport.Conn is what the protocol layer runs on.
var _ protocol.Link = (*transport.Conn)(nil)
