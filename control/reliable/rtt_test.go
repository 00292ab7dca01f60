package reliable

import (
	"testing"
	"time"
)

// Round trips are measured on messages acknowledged without
// retransmission only (Karn's rule): an ambiguous ack gives no sample.
func TestRTT(t *testing.T) {
	c := New(testConfig())
	c.Send(t0, fakeMsg('A', 0, 0))
	c.Poll(t0, nil)
	c.Recv(t0.Add(30*time.Millisecond), 0, 1, true, fakeZLB())
	if st := c.Stats(); st.RTT != 30*time.Millisecond || st.SRTT != 30*time.Millisecond {
		t.Fatalf("after one sample: %v %v", st.RTT, st.SRTT)
	}
	c.Send(t0.Add(time.Second), fakeMsg('B', 0, 0))
	c.Poll(t0.Add(time.Second), nil)
	c.Recv(t0.Add(time.Second+110*time.Millisecond), 0, 2, true, fakeZLB())
	if st := c.Stats(); st.RTT != 110*time.Millisecond || st.SRTT != 40*time.Millisecond {
		t.Fatalf("after two samples: %v %v", st.RTT, st.SRTT)
	}
	// C is retransmitted before its ack: no sample.
	c.Send(t0.Add(2*time.Second), fakeMsg('C', 0, 0))
	c.Poll(t0.Add(2*time.Second), nil)
	c.Poll(t0.Add(3*time.Second+time.Millisecond), nil)
	c.Recv(t0.Add(3*time.Second+5*time.Millisecond), 0, 3, true, fakeZLB())
	if st := c.Stats(); st.RTT != 110*time.Millisecond || st.Retransmits != 1 {
		t.Fatalf("a retransmitted message was sampled: %+v", st)
	}
}
