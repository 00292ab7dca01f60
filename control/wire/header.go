package wire

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// ErrNotControl is returned by ParseMessage for a data message.
var ErrNotControl = errors.New("wire: not a control message")

// VersionError is the error ParseHeader returns for a header whose Ver
// field is neither 2 nor 3 (or 2 over IP). errors.Is(err, ErrVersion)
// holds, and errors.As gives the version so the tunnel layer can answer
// an SCCRQ of another version (RFC 2661 §4.4.1 Protocol Version, RFC 3931
// §4.7.3) instead of only dropping it.
type VersionError struct {
	Version uint8
}

func (e *VersionError) Error() string {
	return "wire: unsupported protocol version " + strconv.Itoa(int(e.Version))
}

// Is makes errors.Is(err, ErrVersion) true.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// Pre-built errors for every version value, so rejecting a packet of an
// unknown version does not allocate.
var versionErrors = func() (v [16]VersionError) {
	for i := range v {
		v[i].Version = uint8(i)
	}
	return v
}()

func versionError(v uint8) error { return &versionErrors[v&0x0f] }

// Header sizes.
const (
	v2ControlHeaderLen = 12 // flags, length, tunnel, session, Ns, Nr
	v3ControlHeaderLen = 12 // flags, length, connection ID, Ns, Nr
	v3UDPDataHeaderLen = 8  // flags+reserved, session ID
	ipSessionIDLen     = 4  // the 32-bit session ID that opens every L2TPv3/IP packet
	versionMask        = 0x000f
)

// VersionOf returns the Ver field of the L2TP header at the start of b
// and whether b is long enough to hold one. Over IP, a data packet (non
// zero session ID) reports version 3; a control packet reports its Ver
// field. It reads at most the first 6 bytes.
func VersionOf(b []byte, enc Encap) (uint8, bool) {
	if enc == EncapIP {
		if len(b) < ipSessionIDLen {
			return 0, false
		}
		if binary.BigEndian.Uint32(b) != 0 {
			return 3, true
		}
		b = b[ipSessionIDLen:]
	}
	if len(b) < 2 {
		return 0, false
	}
	return uint8(binary.BigEndian.Uint16(b) & versionMask), true
}

func parseHeader(b []byte, enc Encap) (Header, int, error) {
	switch enc {
	case EncapUDP:
		return parseUDPHeader(b)
	case EncapIP:
		if len(b) < ipSessionIDLen {
			return Header{}, 0, ErrShort
		}
		sid := binary.BigEndian.Uint32(b)
		if sid != 0 {
			// RFC 3931 §4.1.1.1: a data packet is the session ID then the cookie.
			return Header{Version: 3, SessionID: sid}, ipSessionIDLen, nil
		}
		// RFC 3931 §4.1.1.2: zero session ID, then the control header.
		h, off, err := parseControlV3(b[ipSessionIDLen:], 3)
		if err != nil {
			return h, 0, err
		}
		return h, off + ipSessionIDLen, nil
	}
	return Header{}, 0, ErrShort
}

func parseUDPHeader(b []byte) (Header, int, error) {
	if len(b) < 2 {
		return Header{}, 0, ErrShort
	}
	flags := binary.BigEndian.Uint16(b)
	ver := uint8(flags & versionMask)
	switch ver {
	case 2:
		return parseV2(b, flags)
	case 3:
		if flags&FlagT != 0 {
			return parseControlV3(b, 3)
		}
		// RFC 3931 §4.1.2.1: T=0, Ver=3, 16 reserved bits, session ID.
		if len(b) < v3UDPDataHeaderLen {
			return Header{}, 0, ErrShort
		}
		return Header{Version: 3, SessionID: binary.BigEndian.Uint32(b[4:])}, v3UDPDataHeaderLen, nil
	}
	return Header{Version: ver}, 0, versionError(ver)
}

// parseV2 decodes an RFC 2661 §3.1 header.
func parseV2(b []byte, flags uint16) (Header, int, error) {
	h := Header{
		Control:   flags&FlagT != 0,
		HasLength: flags&FlagL != 0,
		HasSeq:    flags&FlagS != 0,
		HasOffset: flags&FlagO != 0,
		Priority:  flags&FlagP != 0,
		Version:   2,
	}
	// RFC 2661 §3.1: control messages set L and S and clear O and P.
	if h.Control && (!h.HasLength || !h.HasSeq || h.HasOffset || h.Priority) {
		return h, 0, ErrBadFlags
	}
	off := 2
	if h.HasLength {
		if len(b) < off+2 {
			return h, 0, ErrShort
		}
		h.Length = binary.BigEndian.Uint16(b[off:])
		off += 2
	}
	if len(b) < off+4 {
		return h, 0, ErrShort
	}
	h.TunnelID = uint32(binary.BigEndian.Uint16(b[off:]))
	h.SessionID = uint32(binary.BigEndian.Uint16(b[off+2:]))
	off += 4
	if h.HasSeq {
		if len(b) < off+4 {
			return h, 0, ErrShort
		}
		h.Ns = binary.BigEndian.Uint16(b[off:])
		h.Nr = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	if h.HasOffset {
		if len(b) < off+2 {
			return h, 0, ErrShort
		}
		h.OffsetSize = binary.BigEndian.Uint16(b[off:])
		off += 2 + int(h.OffsetSize)
	}
	end := len(b)
	if h.HasLength {
		end = int(h.Length)
		if end > len(b) || end < off-int(h.OffsetSize) {
			return h, 0, ErrBadLength
		}
	}
	if off > end {
		return h, 0, ErrShort
	}
	return h, off, nil
}

// parseControlV3 decodes the RFC 3931 §3.2.1 control header at b[0].
func parseControlV3(b []byte, want uint8) (Header, int, error) {
	if len(b) < 2 {
		return Header{}, 0, ErrShort
	}
	flags := binary.BigEndian.Uint16(b)
	ver := uint8(flags & versionMask)
	if ver != want {
		return Header{Version: ver}, 0, versionError(ver)
	}
	h := Header{
		Control:   flags&FlagT != 0,
		HasLength: flags&FlagL != 0,
		HasSeq:    flags&FlagS != 0,
		Version:   3,
	}
	if !h.Control || !h.HasLength || !h.HasSeq {
		return h, 0, ErrBadFlags
	}
	if len(b) < v3ControlHeaderLen {
		return h, 0, ErrShort
	}
	h.Length = binary.BigEndian.Uint16(b[2:])
	h.TunnelID = binary.BigEndian.Uint32(b[4:])
	h.Ns = binary.BigEndian.Uint16(b[8:])
	h.Nr = binary.BigEndian.Uint16(b[10:])
	if int(h.Length) > len(b) || h.Length < v3ControlHeaderLen {
		return h, 0, ErrBadLength
	}
	return h, v3ControlHeaderLen, nil
}

func appendControlHeader(b []byte, enc Encap, h Header) []byte {
	if enc == EncapIP {
		b = append(b, 0, 0, 0, 0)
	}
	ver := h.Version
	if ver != 3 {
		ver = 2
	}
	b = binary.BigEndian.AppendUint16(b, FlagT|FlagL|FlagS|uint16(ver))
	b = append(b, 0, 0) // length, patched by FinishControl
	if ver == 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(h.TunnelID))
		b = binary.BigEndian.AppendUint16(b, uint16(h.SessionID))
	} else {
		b = binary.BigEndian.AppendUint32(b, h.TunnelID)
	}
	b = binary.BigEndian.AppendUint16(b, h.Ns)
	return binary.BigEndian.AppendUint16(b, h.Nr)
}

func finishControl(b []byte, start int, enc Encap) {
	if enc == EncapIP {
		start += ipSessionIDLen
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
}

// AppendDataHeaderV2 appends an RFC 2661 §3.1 data header with no
// optional fields (T, L, S, O, P clear) for the given peer tunnel and
// session IDs; the PPP frame follows it.
func AppendDataHeaderV2(b []byte, tunnelID, sessionID uint16) []byte {
	b = append(b, 0x00, 0x02)
	b = binary.BigEndian.AppendUint16(b, tunnelID)
	return binary.BigEndian.AppendUint16(b, sessionID)
}

// AppendDataHeaderV3 appends an RFC 3931 §4.1 session header (for UDP,
// the T=0 Ver=3 word and the reserved bits; for IP, nothing before the
// session ID). The cookie and L2-specific sublayer follow it.
func AppendDataHeaderV3(b []byte, enc Encap, sessionID uint32) []byte {
	if enc == EncapUDP {
		b = append(b, 0x00, 0x03, 0x00, 0x00)
	}
	return binary.BigEndian.AppendUint32(b, sessionID)
}
