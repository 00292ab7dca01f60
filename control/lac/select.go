package lac

import (
	"encoding/binary"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Realm maps the domain part of user names to LNS candidates.
type Realm struct {
	// Name is the realm ("isp.example", matched case-insensitively); ""
	// or "*" is the default rule for users without a matching realm.
	Name string
	LNS  []LNS
}

// SelectByRealm returns the candidates for a user name: those of the
// realm after its last '@' ("user@isp.example" → isp.example), else
// those of the default rule, else none.
func SelectByRealm(user string, rules []Realm) []LNS {
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		realm := user[i+1:]
		for _, r := range rules {
			if r.Name != "" && r.Name != "*" && strings.EqualFold(r.Name, realm) {
				return r.LNS
			}
		}
	}
	for _, r := range rules {
		if r.Name == "" || r.Name == "*" {
			return r.LNS
		}
	}
	return nil
}

// order sorts candidates for one call: by Preference, lower first (RFC
// 2868 §3.8); equal preferences in random order so calls spread over
// them; LNSs in hold-down after every live one, so a call still has
// somewhere to go when all are marked dead.
func order(cands []LNS, now time.Time, dead func(netip.AddrPort, time.Time) bool, r io.Reader) []LNS {
	out := append([]LNS(nil), cands...)
	keys := make([]uint64, len(out))
	var b [4]byte
	for i := range out {
		io.ReadFull(r, b[:]) //nolint:errcheck // a short read only weakens the spread
		keys[i] = uint64(binary.BigEndian.Uint32(b[:]))
		if dead != nil && dead(out[i].Addr, now) {
			keys[i] |= 1 << 63
		}
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		da, db := ka>>63, kb>>63
		if da != db {
			return da < db
		}
		pa, pb := out[idx[a]].Preference, out[idx[b]].Preference
		if pa != pb {
			return pa < pb
		}
		return ka < kb
	})
	sorted := make([]LNS, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted
}
