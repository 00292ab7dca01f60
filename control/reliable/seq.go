package reliable

// Sequence numbers are free-running counters modulo 65536 (RFC 2661 §5.8,
// RFC 3931 §4.2). A number is "less than" another when it lies in the
// 32768 values before it, so every comparison goes through the signed
// difference.

// SeqLess reports whether a comes before b in 16-bit sequence space.
func SeqLess(a, b uint16) bool { return int16(a-b) < 0 }

// SeqLessEq reports whether a is b or comes before it (RFC 2661 §5.8: the
// last received number and the preceding 32767 values are "less than or
// equal").
func SeqLessEq(a, b uint16) bool { return int16(a-b) <= 0 }

// maxWindow keeps every window below half the sequence space, so that the
// modular comparisons above stay unambiguous.
const maxWindow = 32767

func clampWindow(n uint16) uint16 {
	switch {
	case n == 0:
		return 4 // RFC 2661 §4.4.3: absent Receive Window Size means 4
	case n > maxWindow:
		return maxWindow
	}
	return n
}
