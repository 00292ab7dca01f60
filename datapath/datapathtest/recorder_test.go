package datapathtest

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/datapath"
)

// The recorder keeps copies: the datapath reuses its buffers after the
// call returns.
func TestRecorderCopies(t *testing.T) {
	r := &Recorder{FrameCh: make(chan Frame, 1)}
	buf := []byte{0xff, 0x03, 0xc0, 0x21, 1}
	k := datapath.SessionKey{Version: 2, Tunnel: 1, Session: 2}
	r.Frame(k, buf)
	from := netip.MustParseAddrPort("192.0.2.2:1701")
	r.Control(nil, buf, from, netip.MustParseAddr("192.0.2.1"))
	buf[4] = 9
	if f := <-r.FrameCh; f.Key != k || !bytes.Equal(f.Frame, []byte{0xff, 0x03, 0xc0, 0x21, 1}) {
		t.Fatalf("channel got %+v", f)
	}
	if fs := r.Frames(); len(fs) != 1 || fs[0].Frame[4] != 1 {
		t.Fatalf("frames %+v", fs)
	}
	if cs := r.Controls(); len(cs) != 1 || cs[0].Pkt[4] != 1 || cs[0].From != from {
		t.Fatalf("controls %+v", cs)
	}
}
