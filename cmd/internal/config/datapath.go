package config

import (
	"gopkg.in/yaml.v3"

	"github.com/l2tpd/l2tpd/control"
)

// datapath reads the datapath section: each offload is on unless set to
// false.
func (d *decoder) datapath(path string, n *yaml.Node, dp *control.Datapath) {
	off := func(dst *bool) func(string, *yaml.Node) {
		return func(p string, v *yaml.Node) {
			var on bool
			if d.boolean(p, v, &on) {
				*dst = !on
			}
		}
	}
	d.mapping(path, n, []field{
		{"gso", off(&dp.DisableGSO)},
		{"gro", off(&dp.DisableGRO)},
		{"tun_offload", off(&dp.DisableTUNOffload)},
	})
}
