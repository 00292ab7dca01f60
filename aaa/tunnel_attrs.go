package aaa

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2868"
)

// Tunnel is one tunnel an Access-Accept assigns (RFC 2868 §3): the
// Tunnel-* attributes sharing a tag. A LAC tries the tunnels of a reply
// in Preference order (lower first, §3.8).
type Tunnel struct {
	Tag            uint8  // 0 for untagged attributes, else 1..31
	Type           uint32 // Tunnel-Type, 3 is L2TP (RFC 2868 §3.1)
	MediumType     uint32 // Tunnel-Medium-Type, 1 IPv4, 2 IPv6 (§3.2)
	ServerEndpoint string // the LNS: address or FQDN (§3.4)
	ClientEndpoint string // our end, when the server chose it (§3.3)
	// Password is Tunnel-Password in clear (§3.5), decrypted when the
	// reply arrived; PasswordEncrypted says it could not be (no secret).
	Password          []byte
	PasswordEncrypted bool
	AssignmentID      string // Tunnel-Assignment-Id (§3.7)
	Preference        uint32 // Tunnel-Preference (§3.8)
	HasPreference     bool
	ClientAuthID      string // Tunnel-Client-Auth-Id: our Host Name (RFC 2868 §3.9)
	ServerAuthID      string // Tunnel-Server-Auth-Id: the LNS's (§3.10)
}

// Tunnel-Type and Tunnel-Medium-Type values (RFC 2868 §3.1, §3.2).
const (
	TunnelTypeL2TP   = 3
	TunnelMediumIPv4 = 1
	TunnelMediumIPv6 = 2
)

// ServerAddr parses ServerEndpoint as an IP address ("192.0.2.1",
// "2001:db8::1"); a host name or anything else reports false.
func (t *Tunnel) ServerAddr() (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(t.ServerEndpoint))
	return a, err == nil
}

// tunnelFor returns the tunnel of tag, adding it in order of first use.
func (a *Attributes) tunnelFor(tag uint8) *Tunnel {
	for i := range a.Tunnels {
		if a.Tunnels[i].Tag == tag {
			return &a.Tunnels[i]
		}
	}
	a.Tunnels = append(a.Tunnels, Tunnel{Tag: tag})
	return &a.Tunnels[len(a.Tunnels)-1]
}

// tunnelAttr decodes one RFC 2868 attribute of a reply; it reports
// whether t was one.
func (a *Attributes) tunnelAttr(t radius.Type, v []byte) bool {
	switch t {
	case rfc2868.TunnelType_Type, rfc2868.TunnelMediumType_Type, rfc2868.TunnelPreference_Type:
		// §3.1, §3.2, §3.8: a Tag octet (0 or 1..31) and a 3-octet value.
		if len(v) != 4 || v[0] > 0x1f {
			a.Malformed++
			return true
		}
		x := binary.BigEndian.Uint32(v) & 0xffffff
		tn := a.tunnelFor(v[0])
		switch t {
		case rfc2868.TunnelType_Type:
			tn.Type = x
		case rfc2868.TunnelMediumType_Type:
			tn.MediumType = x
		default:
			tn.Preference, tn.HasPreference = x, true
		}
		return true
	case rfc2868.TunnelServerEndpoint_Type, rfc2868.TunnelClientEndpoint_Type, rfc2868.TunnelAssignmentID_Type,
		rfc2868.TunnelClientAuthID_Type, rfc2868.TunnelServerAuthID_Type:
		// §3.3 and on: an optional Tag octet, present when 0x01..0x1F;
		// anything else is the first octet of the string.
		var tag uint8
		if len(v) > 0 && v[0] >= 0x01 && v[0] <= 0x1f {
			tag, v = v[0], v[1:]
		}
		if len(v) == 0 {
			a.Malformed++
			return true
		}
		tn := a.tunnelFor(tag)
		s := string(v)
		switch t {
		case rfc2868.TunnelServerEndpoint_Type:
			tn.ServerEndpoint = s
		case rfc2868.TunnelClientEndpoint_Type:
			tn.ClientEndpoint = s
		case rfc2868.TunnelAssignmentID_Type:
			tn.AssignmentID = s
		case rfc2868.TunnelClientAuthID_Type:
			tn.ClientAuthID = s
		default:
			tn.ServerAuthID = s
		}
		return true
	case rfc2868.TunnelPassword_Type:
		a.tunnelPassword(v)
		return true
	}
	return false
}

// tunnelPassword reads a Tunnel-Password (§3.5): Tag, Salt, String. A
// Salt with its most significant bit clear is one decryptTunnelPasswords
// turned into clear text; a sender must set that bit.
func (a *Attributes) tunnelPassword(v []byte) {
	if len(v) < 3+16 || (len(v)-3)%16 != 0 || v[0] > 0x1f {
		a.Malformed++
		return
	}
	tn := a.tunnelFor(v[0])
	if v[1]&0x80 != 0 {
		tn.Password, tn.PasswordEncrypted = append([]byte(nil), v[3:]...), true
		return
	}
	n := int(v[3])
	if n > len(v)-4 {
		a.Malformed++
		return
	}
	tn.Password, tn.PasswordEncrypted = append([]byte(nil), v[4:4+n]...), false
}

// Errors of the Tunnel-Password codec.
var ErrTunnelPassword = errors.New("aaa: malformed Tunnel-Password")

// tunnelPasswordKeys runs the RFC 2868 §3.5 key stream over s, the
// String field: b(1) = MD5(S + R + A), b(i) = MD5(S + c(i-1)). With
// decrypt the c(i) are the input octets, else the output ones.
func tunnelPasswordKeys(s, secret []byte, reqAuth [16]byte, salt [2]byte, decrypt bool) {
	var prev []byte
	for i := 0; i < len(s); i += 16 {
		h := md5.New()
		h.Write(secret)
		if i == 0 {
			h.Write(reqAuth[:])
			h.Write(salt[:])
		} else {
			h.Write(prev)
		}
		b := h.Sum(nil)
		block := s[i : i+16]
		var c [16]byte
		if decrypt {
			copy(c[:], block)
		}
		for j := range block {
			block[j] ^= b[j]
		}
		if !decrypt {
			copy(c[:], block)
		}
		prev = c[:]
	}
}

// EncryptTunnelPassword encodes a Tunnel-Password value (§3.5) for
// password with tag and salt (its top bit is set here), as a RADIUS
// server sends it in a reply to the request with authenticator reqAuth.
func EncryptTunnelPassword(tag uint8, salt [2]byte, password, secret []byte, reqAuth [16]byte) ([]byte, error) {
	if len(password) > 239 { // the String field fits 240 octets of a 253-octet value
		return nil, ErrTunnelPassword
	}
	salt[0] |= 0x80
	n := (1 + len(password) + 15) / 16 * 16
	v := make([]byte, 3+n)
	v[0], v[1], v[2], v[3] = tag, salt[0], salt[1], byte(len(password))
	copy(v[4:], password)
	tunnelPasswordKeys(v[3:], secret, reqAuth, salt, false)
	return v, nil
}

// decryptTunnelPasswords decrypts the Tunnel-Password attributes of a
// verified reply in place (attrs are the octets after the header), and
// clears the top bit of their Salt so ParseAttributes reads them as
// clear text. Values of the wrong shape are left alone.
func decryptTunnelPasswords(attrs, secret []byte, reqAuth [16]byte) {
	for len(attrs) >= 2 && int(attrs[1]) >= 2 && int(attrs[1]) <= len(attrs) {
		t, v := radius.Type(attrs[0]), attrs[2:attrs[1]]
		attrs = attrs[attrs[1]:]
		if t != rfc2868.TunnelPassword_Type || len(v) < 3+16 || (len(v)-3)%16 != 0 || v[1]&0x80 == 0 {
			continue
		}
		tunnelPasswordKeys(v[3:], secret, reqAuth, [2]byte{v[1], v[2]}, true)
		v[1] &^= 0x80
	}
}
