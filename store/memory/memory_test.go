package memory_test

import (
	"testing"

	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/memory"
	"github.com/l2tpd/l2tpd/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, n int) []store.Store {
		s := memory.New(memory.Config{})
		t.Cleanup(s.Close)
		out := make([]store.Store, n)
		for i := range out {
			out[i] = s
		}
		return out
	})
}
