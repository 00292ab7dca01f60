package reliable

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"
)

// Two channels talk over a simulated link that loses, delays and reorders
// packets. Every message must arrive exactly once and in order at the
// other end, and both ends must end idle (RFC 2661 §5.8: delivered "in
// order and without duplication to the upper level").

const simMsgLen = 16 // name, pad, Ns, Nr, 32-bit index, pad

type simPacket struct {
	at  time.Time
	buf []byte
}

type simEnd struct {
	c        *Channel
	toSend   int
	sent     int
	received uint32 // next index expected from the other end
	inbox    []simPacket
	out      [][]byte
}

func simMsg(i int) []byte {
	b := make([]byte, simMsgLen)
	b[0] = 'M'
	binary.BigEndian.PutUint32(b[8:], uint32(i))
	return b
}

func TestLossyLinkDeliversInOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seed     uint64
		loss     float64
		rwsA     uint16
		rwsB     uint16
		messages int
	}{
		{"clean", 1, 0, 4, 4, 300},
		{"loss10", 2, 0.10, 8, 4, 300},
		{"loss30", 3, 0.30, 16, 1, 200},
		{"loss30-window1", 4, 0.30, 1, 1, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			mk := func(own, peer uint16) *Channel {
				cfg := testConfig()
				cfg.ReceiveWindow = own
				cfg.PeerWindow = peer
				cfg.MaxRetransmits = 40
				cfg.RetransmitCap = 2 * time.Second
				return New(cfg)
			}
			ends := [2]*simEnd{
				{c: mk(tc.rwsA, tc.rwsB), toSend: tc.messages},
				{c: mk(tc.rwsB, tc.rwsA), toSend: tc.messages},
			}
			now := t0
			nextSend := now
			deliver := func(e *simEnd, p []byte) {
				if len(p) == simMsgLen && binary.BigEndian.Uint32(p[8:]) != e.received {
					t.Fatalf("delivered index %d, want %d", binary.BigEndian.Uint32(p[8:]), e.received)
				}
				e.received++
			}
			for step := 0; ; step++ {
				if step > 1_000_000 {
					t.Fatal("no progress")
				}
				// Packets that have arrived.
				for i, e := range ends {
					kept := e.inbox[:0]
					for _, p := range e.inbox {
						if p.at.After(now) {
							kept = append(kept, p)
							continue
						}
						ns := binary.BigEndian.Uint16(p.buf[testOff:])
						nr := binary.BigEndian.Uint16(p.buf[testOff+2:])
						zlb := len(p.buf) == testZLBLen
						if e.c.Recv(now, ns, nr, zlb, p.buf) == Deliver {
							deliver(e, p.buf)
							for {
								m, ok := e.c.Next(now)
								if !ok {
									break
								}
								deliver(e, m)
							}
						}
					}
					ends[i].inbox = kept
				}
				// The application sends now and then, from both ends.
				if !now.Before(nextSend) {
					for _, e := range ends {
						if e.sent < e.toSend {
							e.c.Send(now, simMsg(e.sent))
							e.sent++
						}
					}
					nextSend = now.Add(time.Duration(rng.IntN(30)) * time.Millisecond)
				}
				// Transmit over the lossy, reordering link.
				for i, e := range ends {
					e.out = e.c.Poll(now, e.out[:0])
					if e.c.Failed() {
						t.Fatalf("end %d failed", i)
					}
					peer := ends[1-i]
					for _, p := range e.out {
						if rng.Float64() < tc.loss {
							continue
						}
						delay := time.Duration(5+rng.IntN(60)) * time.Millisecond
						peer.inbox = append(peer.inbox, simPacket{now.Add(delay), append([]byte(nil), p...)})
					}
				}
				done := true
				for _, e := range ends {
					if e.sent < e.toSend || !e.c.Idle() || e.received != uint32(tc.messages) {
						done = false
					}
				}
				if done {
					break
				}
				// Advance to the next event.
				next := time.Time{}
				consider := func(at time.Time) {
					if !at.IsZero() && (next.IsZero() || at.Before(next)) {
						next = at
					}
				}
				if ends[0].sent < ends[0].toSend || ends[1].sent < ends[1].toSend {
					consider(nextSend)
				}
				for _, e := range ends {
					consider(e.c.Deadline())
					for _, p := range e.inbox {
						consider(p.at)
					}
				}
				if next.IsZero() {
					t.Fatalf("stalled: nothing scheduled; A %+v B %+v", ends[0].c.Stats(), ends[1].c.Stats())
				}
				if next.After(now) {
					now = next
				}
			}
			for i, e := range ends {
				st := e.c.Stats()
				t.Logf("end %d at %v: %+v", i, now.Sub(t0), st)
				if st.Received != uint64(tc.messages) || st.Acked != uint64(tc.messages) {
					t.Errorf("end %d: %+v", i, st)
				}
				if tc.loss > 0 && st.Retransmits == 0 {
					t.Errorf("end %d: no retransmission over a lossy link", i)
				}
				if e.c.HeldLen() != 0 {
					t.Errorf("end %d still holds %d", i, e.c.HeldLen())
				}
			}
		})
	}
}
