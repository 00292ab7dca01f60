package configs

import "embed"

// FS holds every *.yaml file in this directory.
//
//go:embed *.yaml
var FS embed.FS

// Default returns lns.yaml, the configuration l2tpd runs with when it is
// started without -config.
func Default() []byte {
	b, err := FS.ReadFile("lns.yaml")
	if err != nil {
		panic("configs: lns.yaml is not embedded: " + err.Error())
	}
	return b
}
