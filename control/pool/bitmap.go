package pool

import "math/bits"

// bitmap is a fixed-size set of indices with a summary level marking the
// words that are full, so a search for a free index skips 4096 taken
// indices per summary word it reads. Padding bits past size are kept set
// in both levels so they are never found.
type bitmap struct {
	words  []uint64
	full   []uint64 // bit j set: words[j] is all ones
	size   uint64
	set    uint64 // indices set below size
	cursor uint64 // next-fit start
}

func newBitmap(size uint64) bitmap {
	nw := (size + 63) / 64
	b := bitmap{
		words: make([]uint64, nw),
		full:  make([]uint64, (nw+63)/64),
		size:  size,
	}
	if r := size % 64; r != 0 {
		b.words[nw-1] = ^uint64(0) << r
	}
	if r := nw % 64; r != 0 {
		b.full[len(b.full)-1] = ^uint64(0) << r
	}
	return b
}

func (b *bitmap) has(i uint64) bool { return b.words[i/64]&(1<<(i%64)) != 0 }

// add sets i and reports whether it was clear.
func (b *bitmap) add(i uint64) bool {
	w := i / 64
	m := uint64(1) << (i % 64)
	if b.words[w]&m != 0 {
		return false
	}
	b.words[w] |= m
	b.set++
	if b.words[w] == ^uint64(0) {
		b.full[w/64] |= 1 << (w % 64)
	}
	return true
}

// remove clears i and reports whether it was set.
func (b *bitmap) remove(i uint64) bool {
	w := i / 64
	m := uint64(1) << (i % 64)
	if b.words[w]&m == 0 {
		return false
	}
	b.words[w] &^= m
	b.set--
	b.full[w/64] &^= 1 << (w % 64)
	return true
}

// take sets and returns the first clear index at or after the cursor,
// wrapping around; false when every index is set.
func (b *bitmap) take() (uint64, bool) {
	if b.set >= b.size {
		return 0, false
	}
	w := b.cursor / 64
	if m := b.words[w] | (1<<(b.cursor%64) - 1); m != ^uint64(0) {
		return b.claim(w*64 + uint64(bits.TrailingZeros64(^m))), true
	}
	nw := uint64(len(b.words))
	j, ok := firstZero(b.full, (w+1)%nw)
	if !ok {
		return 0, false // unreachable while set < size
	}
	return b.claim(j*64 + uint64(bits.TrailingZeros64(^b.words[j]))), true
}

func (b *bitmap) claim(i uint64) uint64 {
	b.add(i)
	b.cursor = (i + 1) % b.size
	return i
}

// firstZero finds the first clear bit of a at or after start among its
// bits, wrapping around once. Padding bits must be set.
func firstZero(a []uint64, start uint64) (uint64, bool) {
	w := start / 64
	if m := a[w] | (1<<(start%64) - 1); m != ^uint64(0) {
		return w*64 + uint64(bits.TrailingZeros64(^m)), true
	}
	for k := 1; k <= len(a); k++ {
		j := (int(w) + k) % len(a)
		if a[j] != ^uint64(0) {
			return uint64(j)*64 + uint64(bits.TrailingZeros64(^a[j])), true
		}
	}
	return 0, false
}
