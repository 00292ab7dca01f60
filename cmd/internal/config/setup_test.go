package config

import (
	"testing"
	"time"
)

// control.session_setup_timeout bounds an answered call that never gets
// its ICCN (RFC 2661 §7.4.2): 30 s unless set, any positive duration.
func TestSessionSetupTimeout(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want time.Duration
	}{
		{"", 30 * time.Second},
		{"control: {hello_interval: 10s}\n", 30 * time.Second},
		{"control: {session_setup_timeout: 1m30s}\n", 90 * time.Second},
		{"control:\n  session_setup_timeout: 250ms\n", 250 * time.Millisecond},
	} {
		f, err := Parse([]byte(tc.doc))
		if err != nil {
			t.Fatalf("%q: %v", tc.doc, err)
		}
		if f.Channel.SessionSetupTimeout != tc.want || f.Control().SessionSetupTimeout != tc.want {
			t.Errorf("%q: file %v, control %v, want %v", tc.doc, f.Channel.SessionSetupTimeout, f.Control().SessionSetupTimeout, tc.want)
		}
	}
	for _, doc := range []string{
		"control: {session_setup_timeout: 30}\n",
		"control: {session_setup_timeout: 0s}\n",
		"control: {session_setup_timeout: -1s}\n",
		"control: {session_setup_timeout: half a minute}\n",
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%q accepted", doc)
		}
	}
}
