package reliable

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzChannel drives one channel with Send, Recv, Next, Poll and clock
// steps decoded from the input, and checks what must hold whatever the
// peer does (RFC 2661 §5.8):
//   - nothing panics;
//   - held messages never outnumber the receive window;
//   - new messages leave with consecutive Ns, modulo 2^16, and a
//     retransmission carries the Ns its message first had;
//   - every packet carries the current Nr;
//   - messages reach the caller in Ns order, each once, intact;
//   - in flight never exceeds the peer's window, CWND stays in 1..RWS;
//   - after Poll nothing is due before a future deadline;
//   - Failed, once true, stays true.
func FuzzChannel(f *testing.F) {
	f.Add([]byte{3, 3, 4, 0, 1, 0, 0, 1, 5, 20, 1})
	f.Add([]byte{1, 1, 1, 0, 0, 0, 1, 6, 1, 6, 1, 6, 1, 6, 1})
	f.Add([]byte{7, 2, 2, 2, 3, 0x10, 2, 2, 0x20, 2, 1, 0x30, 4, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 {
			return
		}
		cfg := testConfig()
		cfg.ReceiveWindow = 1 + uint16(in[0]%8)
		cfg.PeerWindow = 1 + uint16(in[1]%8)
		cfg.MaxRetransmits = 1 + int(in[2]%6)
		c := New(cfg)
		in = in[3:]
		byteAt := func(i int) byte {
			if i < len(in) {
				return in[i]
			}
			return 0
		}

		now := t0
		var out [][]byte
		var (
			queued    int    // messages given to Send
			newNs     uint16 // Ns the next new transmission must carry
			delivered uint16 // Ns the next message released to us must carry
			failed    bool
		)
		checkDelivered := func(p []byte) {
			ns := binary.BigEndian.Uint16(p[testOff:])
			if ns != delivered {
				t.Fatalf("delivered Ns %d, want %d", ns, delivered)
			}
			if len(p) != testMsgLen || binary.BigEndian.Uint16(p[8:]) != ns^0x5a5a {
				t.Fatalf("delivered message Ns %d damaged: % x", ns, p)
			}
			delivered++
		}
		peerMsg := func(ns, nr uint16) []byte {
			b := fakeMsg('P', ns, nr)
			binary.BigEndian.PutUint16(b[8:], ns^0x5a5a)
			return b
		}

		for i := 0; i < len(in); i++ {
			op, arg := in[i]%8, byteAt(i+1)
			switch op {
			case 0: // Send; the payload names the message by its send index
				b := fakeMsg('M', 0, 0)
				binary.BigEndian.PutUint16(b[8:], uint16(queued))
				c.Send(now, b)
				if !failed {
					queued++
				}
			case 1: // Poll
				out = c.Poll(now, out[:0])
				for _, p := range out {
					ns := binary.BigEndian.Uint16(p[testOff:])
					nr := binary.BigEndian.Uint16(p[testOff+2:])
					if nr != c.NextNr() {
						t.Fatalf("packet %s: Nr is not the current %d", describe(p), c.NextNr())
					}
					if len(p) == testZLBLen {
						if ns != newNs {
							t.Fatalf("ZLB Ns %d, want the next new Ns %d", ns, newNs)
						}
						continue
					}
					if id := binary.BigEndian.Uint16(p[8:]); id != ns {
						t.Fatalf("message %d left with Ns %d", id, ns)
					}
					switch {
					case ns == newNs:
						newNs++
					case !SeqLess(ns, newNs):
						t.Fatalf("Ns %d skips ahead of %d", ns, newNs)
					}
				}
				if d := c.Deadline(); !d.IsZero() && !d.After(now) {
					t.Fatalf("after Poll at %v the deadline is %v", now.Sub(t0), d.Sub(t0))
				}
			case 2: // a message at, just before or just after the expected Ns
				ns := c.NextNr() + uint16(arg%10) - 2
				nr := newNs - uint16(byteAt(i+2)%6)
				if r := c.Recv(now, ns, nr, false, peerMsg(ns, nr)); r == Deliver {
					checkDelivered(peerMsg(ns, nr))
				}
				i += 2
			case 3: // a ZLB with an Nr near what we sent
				c.Recv(now, uint16(arg)<<8, newNs-uint16(arg%8)+2, true, fakeZLB())
				i++
			case 4: // release held messages
				for {
					m, ok := c.Next(now)
					if !ok {
						break
					}
					checkDelivered(m)
				}
			case 5: // time passes
				now = now.Add(time.Duration(arg) * 20 * time.Millisecond)
				i++
			case 6: // to the deadline
				if d := c.Deadline(); d.After(now) {
					now = d
				}
			case 7: // anything at all
				ns := binary.BigEndian.Uint16([]byte{arg, byteAt(i + 2)})
				nr := binary.BigEndian.Uint16([]byte{byteAt(i + 3), byteAt(i + 4)})
				if r := c.Recv(now, ns, nr, false, peerMsg(ns, nr)); r == Deliver {
					checkDelivered(peerMsg(ns, nr))
				}
				i += 4
			}

			if failed && !c.Failed() {
				t.Fatal("Failed went back to false")
			}
			failed = c.Failed()
			if c.HeldLen() > int(cfg.ReceiveWindow) {
				t.Fatalf("%d held with a receive window of %d", c.HeldLen(), cfg.ReceiveWindow)
			}
			if c.InFlight() > int(cfg.PeerWindow) {
				t.Fatalf("%d in flight with a peer window of %d", c.InFlight(), cfg.PeerWindow)
			}
			if c.InFlight() > c.QueueLen() || c.QueueLen() > queued {
				t.Fatalf("in flight %d, queue %d, sent %d", c.InFlight(), c.QueueLen(), queued)
			}
			if st := c.Stats(); st.CWND < 1 || st.CWND > cfg.PeerWindow || st.SSThresh < 1 {
				t.Fatalf("CWND %d SSTHRESH %d with peer window %d", st.CWND, st.SSThresh, cfg.PeerWindow)
			}
			if c.NextNs() != c.una+uint16(c.QueueLen()) || newNs != c.una+uint16(c.InFlight()) {
				t.Fatalf("Ns state: next %d, new %d, una %d, queue %d, in flight %d",
					c.NextNs(), newNs, c.una, c.QueueLen(), c.InFlight())
			}
		}
	})
}
