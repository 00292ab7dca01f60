// Package admintest provides an in-memory admin.Backend for tests of the
// admin socket and of l2tpctl.
package admintest

import (
	"context"
	"slices"
	"sync"

	"github.com/l2tpd/l2tpd/control"
)

// Fake is an admin.Backend holding tunnels and sessions in memory.
// Clearing a tunnel removes its sessions, as the control plane does.
type Fake struct {
	mu       sync.Mutex
	tunnels  []control.TunnelInfo
	sessions []control.SessionInfo
	stats    control.Stats
	err      error
}

// New returns a fake holding copies of the given state.
func New(tunnels []control.TunnelInfo, sessions []control.SessionInfo, stats control.Stats) *Fake {
	return &Fake{
		tunnels:  slices.Clone(tunnels),
		sessions: slices.Clone(sessions),
		stats:    stats,
	}
}

// FailWith makes every later call return err (nil restores success).
func (f *Fake) FailWith(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *Fake) Tunnels(ctx context.Context) ([]control.TunnelInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.tunnels), nil
}

func (f *Fake) Sessions(ctx context.Context) ([]control.SessionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.sessions), nil
}

func (f *Fake) Stats(ctx context.Context) (control.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return control.Stats{}, f.err
	}
	s := f.stats
	s.Tunnels, s.Sessions = len(f.tunnels), len(f.sessions)
	return s, nil
}

func (f *Fake) ClearTunnel(ctx context.Context, id uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	i := slices.IndexFunc(f.tunnels, func(t control.TunnelInfo) bool { return t.TunnelID == id })
	if i < 0 {
		return control.ErrNotFound
	}
	f.tunnels = slices.Delete(f.tunnels, i, i+1)
	f.sessions = slices.DeleteFunc(f.sessions, func(s control.SessionInfo) bool { return s.TunnelID == id })
	return nil
}

func (f *Fake) ClearSession(ctx context.Context, id uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	i := slices.IndexFunc(f.sessions, func(s control.SessionInfo) bool { return s.SessionID == id })
	if i < 0 {
		return control.ErrNotFound
	}
	tid := f.sessions[i].TunnelID
	f.sessions = slices.Delete(f.sessions, i, i+1)
	for j := range f.tunnels {
		if f.tunnels[j].TunnelID == tid && f.tunnels[j].Sessions > 0 {
			f.tunnels[j].Sessions--
		}
	}
	return nil
}
