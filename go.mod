module github.com/l2tpd/l2tpd

go 1.26.8

require (
	github.com/google/gopacket v1.1.19
	go.uber.org/zap v1.28.0
	golang.org/x/sys v0.50.0
	gopkg.in/yaml.v3 v3.0.1
	layeh.com/radius v0.0.0-20231213012653-1006025d24f8
)

require (
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/net v0.10.0 // indirect
)
