package datapath

import (
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
)

// The session and route tables are sharded maps behind per-shard
// RWMutexes: a packet takes one read lock on one shard of 64, so readers
// on different cores rarely share a cache line, and Install/Remove cost
// O(1) however many sessions are installed.
const tableShards = 64

type sessionShard struct {
	mu sync.RWMutex
	m  map[SessionKey]*entry
	_  [40]byte // keep shards on separate cache lines
}

type sessionTable struct {
	shards [tableShards]sessionShard
}

func newSessionTable() *sessionTable {
	t := new(sessionTable)
	for i := range t.shards {
		t.shards[i].m = make(map[SessionKey]*entry)
	}
	return t
}

func (k SessionKey) shard() uint32 {
	h := k.Session*0x9e3779b1 ^ k.Tunnel*0x85ebca6b ^ uint32(k.Version)
	return (h ^ h>>15) % tableShards
}

func (t *sessionTable) get(k SessionKey) *entry {
	sh := &t.shards[k.shard()]
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	return e
}

func (t *sessionTable) set(k SessionKey, e *entry) {
	sh := &t.shards[k.shard()]
	sh.mu.Lock()
	if e == nil {
		delete(sh.m, k)
	} else {
		sh.m[k] = e
	}
	sh.mu.Unlock()
}

// routeKey is a masked prefix; IPv4 uses the first 4 bytes of addr.
type routeKey struct {
	addr [16]byte
	bits uint8
}

func (k *routeKey) shard() uint32 {
	h := uint32(2166136261)
	for _, b := range k.addr {
		h = (h ^ uint32(b)) * 16777619
	}
	h ^= uint32(k.bits)
	return (h ^ h>>16) % tableShards
}

type routeShard struct {
	mu sync.RWMutex
	m  map[routeKey]*entry
	_  [40]byte
}

// routeTable does longest-prefix matching for one address family by
// probing one exact-match map per prefix length in use, longest first.
// Subscriber routes use few lengths (/32, a delegated /56 or /64), so a
// lookup is a handful of map probes and never allocates.
type routeTable struct {
	v6     bool
	shards [tableShards]routeShard
	// lengths is a bitmap of the prefix lengths that have routes,
	// readable without locks; refs counts routes per length for writers.
	lengths [3]atomic.Uint64
	refs    [129]int
	mu      sync.Mutex // serializes writers
}

func newRouteTable(v6 bool) *routeTable {
	t := &routeTable{v6: v6}
	for i := range t.shards {
		t.shards[i].m = make(map[routeKey]*entry)
	}
	return t
}

func maskKey(addr []byte, bits int) routeKey {
	var k routeKey
	k.bits = uint8(bits)
	full := bits / 8
	copy(k.addr[:full], addr[:full])
	if rem := bits % 8; rem != 0 {
		k.addr[full] = addr[full] & (0xff << (8 - rem))
	}
	return k
}

func prefixKey(p netip.Prefix) routeKey {
	p = p.Masked()
	if p.Addr().Is4() {
		a := p.Addr().As4()
		return maskKey(a[:], p.Bits())
	}
	a := p.Addr().As16()
	return maskKey(a[:], p.Bits())
}

// insert adds or replaces the route for p.
func (t *routeTable) insert(p netip.Prefix, e *entry) {
	k := prefixKey(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	sh := &t.shards[k.shard()]
	sh.mu.Lock()
	_, had := sh.m[k]
	sh.m[k] = e
	sh.mu.Unlock()
	if !had {
		t.refs[k.bits]++
		if t.refs[k.bits] == 1 {
			w := &t.lengths[k.bits/64]
			w.Store(w.Load() | 1<<(k.bits%64))
		}
	}
}

// remove deletes the route for p if it still points to a session with
// key owner: a newer session may have taken the address over.
func (t *routeTable) remove(p netip.Prefix, owner SessionKey) {
	k := prefixKey(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	sh := &t.shards[k.shard()]
	sh.mu.Lock()
	cur, had := sh.m[k]
	if had && cur.s.Key == owner {
		delete(sh.m, k)
	} else {
		had = false
	}
	sh.mu.Unlock()
	if had {
		t.refs[k.bits]--
		if t.refs[k.bits] == 0 {
			w := &t.lengths[k.bits/64]
			w.Store(w.Load() &^ (1 << (k.bits % 64)))
		}
	}
}

// lookup returns the session of the longest prefix containing addr (4 or
// 16 bytes), or nil.
func (t *routeTable) lookup(addr []byte) *entry {
	for w := 2; w >= 0; w-- {
		set := t.lengths[w].Load()
		for set != 0 {
			top := bits.Len64(set) - 1
			set &^= 1 << top
			k := maskKey(addr, w*64+top)
			sh := &t.shards[k.shard()]
			sh.mu.RLock()
			e := sh.m[k]
			sh.mu.RUnlock()
			if e != nil {
				return e
			}
		}
	}
	return nil
}
