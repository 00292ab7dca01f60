package datapath

import (
	"context"
	"net"
	"testing"
	"time"
)

// A released socket's port can be bound again while the engine runs
// (its reader was asleep on it), the other socket keeps delivering, and
// the engine still stops cleanly.
func TestSocketRelease(t *testing.T) {
	up := new(perfUp)
	e, err := New(Config{}, up)
	if err != nil {
		t.Fatal(err)
	}
	var socks []*Socket
	var addrs []*net.UDPAddr
	for i := 0; i < 2; i++ {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, conn.LocalAddr().(*net.UDPAddr))
		sk, err := e.AddSocket(conn)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, sk)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	time.Sleep(100 * time.Millisecond) // the readers sleep in ppoll
	if err := socks[0].Release(); err != nil {
		t.Fatal(err)
	}
	var rebound *net.UDPConn
	deadline := time.Now().Add(2 * time.Second)
	for rebound == nil {
		rebound, err = net.ListenUDP("udp4", addrs[0])
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("released port still bound: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rebound.Close()
	// The other socket still takes control messages up.
	c, err := net.DialUDP("udp4", nil, addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := up.n.Load()
	for time.Now().Before(deadline.Add(time.Second)) && up.n.Load() == before {
		c.Write([]byte{0xc8, 0x02, 0, 12, 0, 1, 0, 0, 0, 0, 0, 0}) // v2 ZLB
		time.Sleep(20 * time.Millisecond)
	}
	if up.n.Load() == before {
		t.Fatal("the other socket stopped delivering")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("engine did not stop")
	}
}
