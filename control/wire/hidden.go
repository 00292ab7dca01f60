package wire

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"hash"
)

// HidingKey returns the key AVP hiding uses for a control connection of
// the given version: the shared secret itself for L2TPv2 (RFC 2661
// §4.3), HMAC-MD5(secret, 0x01) for L2TPv3 (RFC 3931 §5.3). Pass the
// result as the secret of AppendHiddenAVP and Unhide. (*Message).Unhide
// derives it itself from the message version.
func HidingKey(version uint8, secret []byte) []byte {
	if version != 3 {
		return secret
	}
	mac := hmac.New(md5.New, secret)
	mac.Write([]byte{1})
	return mac.Sum(nil)
}

// hideXOR runs the RFC 2661 §4.3 chain over buf in place. When encrypt
// is true buf holds the clear subformat and becomes the ciphertext;
// otherwise the reverse. Each MD5 input after the first is the secret
// followed by the previous ciphertext block.
func hideXOR(buf []byte, t AVPType, secret, rv []byte, encrypt bool) {
	h := md5.New()
	var sum [md5.Size]byte
	var attr [2]byte
	binary.BigEndian.PutUint16(attr[:], uint16(t))
	h.Write(attr[:])
	h.Write(secret)
	h.Write(rv)
	for i := 0; i < len(buf); i += md5.Size {
		b := h.Sum(sum[:0])
		end := min(i+md5.Size, len(buf))
		chunk := buf[i:end]
		resetWith(h, secret)
		if encrypt {
			for j := range chunk {
				chunk[j] ^= b[j]
			}
			h.Write(chunk)
		} else {
			h.Write(chunk)
			for j := range chunk {
				chunk[j] ^= b[j]
			}
		}
	}
}

func resetWith(h hash.Hash, secret []byte) {
	h.Reset()
	h.Write(secret)
}

func appendHiddenAVP(b []byte, mandatory bool, vendor uint32, t AVPType, value, secret, randomVector, padding []byte) []byte {
	n := 2 + len(value) + len(padding)
	b = appendAVPHeader(b, mandatory, true, vendor, t, n)
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	b = append(b, value...)
	b = append(b, padding...)
	hideXOR(b[start:], t, secret, randomVector, true)
	return b
}

func unhide(dst []byte, t AVPType, hidden, secret, randomVector []byte) ([]byte, error) {
	if len(hidden) < 2 {
		return dst, ErrHiddenLength
	}
	start := len(dst)
	dst = append(dst, hidden...)
	plain := dst[start:]
	hideXOR(plain, t, secret, randomVector, false)
	n := int(binary.BigEndian.Uint16(plain))
	if n > len(plain)-2 {
		return dst[:start], ErrHiddenLength
	}
	copy(plain, plain[2:2+n])
	return dst[:start+n], nil
}

func (m *Message) unhide(secret, scratch []byte) ([]byte, error) {
	var rv []byte
	var key []byte
	for i := range m.AVPs {
		a := &m.AVPs[i]
		if a.Vendor == VendorIETF && a.Type == AVPRandomVector && !a.Hidden {
			rv = a.Value
			continue
		}
		if !a.Hidden {
			continue
		}
		if rv == nil {
			return scratch, ErrHiddenNoRV
		}
		if key == nil {
			key = HidingKey(m.Header.Version, secret)
		}
		start := len(scratch)
		var err error
		scratch, err = unhide(scratch, a.Type, a.Value, key, rv)
		if err != nil {
			return scratch, err
		}
		a.Value = scratch[start:len(scratch):len(scratch)]
		a.Hidden = false
	}
	return scratch, nil
}
